package redis

import (
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/persistence"
)

// Defaults applied by Options.setDefaults.
const (
	DefaultAddr     = "127.0.0.1:6379"
	DefaultPrefix   = "ordersystem:"
	DefaultTimeout  = redisconn.DefaultTimeout
	DefaultPoolSize = 64
	DefaultMaxBatch = 128
)

// Options configures a Backend. The zero value (plus an Addr or a Client) is
// usable: New fills in the defaults.
type Options struct {
	// Client is an existing client to use (a node shares one between its
	// journal, transport and membership); the backend never closes it.
	// DialTimeout and PoolSize are then the client's business, and zero
	// ReadTimeout and WriteTimeout are taken from a client made by
	// redisconn.New. Without a Client, New makes one for Addr.
	Client goredis.UniversalClient

	// Addr is "host:port", or a redis:// or rediss:// URL that may carry a
	// user, a password, a database number (redis://user:pass@host:6379/2)
	// and go-redis query options; rediss:// turns TLS on. A comma-separated
	// list of them is the seeds of a Redis Cluster (see redisconn.New; for
	// Sentinel hand New a Client). Default 127.0.0.1:6379. With a Client
	// it only names the server in messages (default: the client's address).
	Addr string

	// Partitions is the partition count of the journal: 0 takes the count
	// stored with the journal, or persistence.DefaultPartitions for a new
	// one; any other count must match the stored one (New refuses a
	// mismatch with a *persistence.PartitionMismatchError).
	Partitions int

	// Prefix starts every key this backend touches. Default "ordersystem:".
	// Two backends with different prefixes never see each other's data.
	Prefix string

	// DialTimeout, ReadTimeout and WriteTimeout bound each network step
	// (default 2 s each), so an unreachable server yields an error within
	// seconds instead of a hang. A context deadline, when shorter, wins.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	// PoolSize is the number of connections kept to the server (default 64).
	PoolSize int

	// MaxBatch is the largest number of appends the group committer sends in
	// one pipeline (default 128). 1 turns group commit off: each Append then
	// runs its script on its own connection from the caller's goroutine.
	MaxBatch int

	// WaitReplicas, when > 0, makes every append wait (Redis WAIT) until that
	// many replicas acknowledged it, for at most WaitTimeout (default 1 s,
	// and it must stay below ReadTimeout). An append that was not replicated
	// in time fails with persistence.ErrUnavailable: it is committed on the
	// primary but could be lost by a failover, and the caller must treat its
	// outcome as unknown.
	WaitReplicas int
	WaitTimeout  time.Duration

	// Logger receives what the backend finds wrong in the data it reads
	// (an entry of the global log outside the key layout). Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Client != nil {
		if o.Addr == "" {
			o.Addr = redisconn.ServerAddr(o.Client)
		}
		var read, write time.Duration
		switch c := o.Client.(type) {
		case interface{ Options() *goredis.Options }:
			read, write = c.Options().ReadTimeout, c.Options().WriteTimeout
		case interface {
			Options() *goredis.ClusterOptions
		}:
			read, write = c.Options().ReadTimeout, c.Options().WriteTimeout
		}
		if o.ReadTimeout == 0 && read > 0 {
			o.ReadTimeout = read
		}
		if o.WriteTimeout == 0 && write > 0 {
			o.WriteTimeout = write
		}
	}
	if o.Addr == "" && o.Client == nil {
		o.Addr = DefaultAddr
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultTimeout
	}
	if o.PoolSize == 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.WaitReplicas > 0 && o.WaitTimeout == 0 {
		o.WaitTimeout = min(time.Second, o.ReadTimeout/2)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first option that cannot work, naming it and its value.
func (o *Options) Validate() error {
	if o.Client == nil {
		if err := o.connOptions().Validate(); err != nil {
			return fmt.Errorf("redis option Addr: %w", err)
		}
	}
	if err := persistence.CheckPartitions(o.Partitions); err != nil {
		return fmt.Errorf("redis option Partitions: %w", err)
	}
	switch {
	case o.DialTimeout < 0:
		return fmt.Errorf("redis option DialTimeout=%s: must not be negative", o.DialTimeout)
	case o.ReadTimeout < 0:
		return fmt.Errorf("redis option ReadTimeout=%s: must not be negative", o.ReadTimeout)
	case o.WriteTimeout < 0:
		return fmt.Errorf("redis option WriteTimeout=%s: must not be negative", o.WriteTimeout)
	case o.PoolSize < 0:
		return fmt.Errorf("redis option PoolSize=%d: must not be negative", o.PoolSize)
	case o.MaxBatch < 0:
		return fmt.Errorf("redis option MaxBatch=%d: must not be negative", o.MaxBatch)
	case o.WaitReplicas < 0:
		return fmt.Errorf("redis option WaitReplicas=%d: must not be negative", o.WaitReplicas)
	case o.WaitReplicas > 0 && o.WaitTimeout <= 0:
		return fmt.Errorf("redis option WaitTimeout=%s: must be positive when WaitReplicas=%d (WAIT 0 would block forever)", o.WaitTimeout, o.WaitReplicas)
	case o.WaitReplicas > 0 && o.ReadTimeout > 0 && o.WaitTimeout >= o.ReadTimeout:
		return fmt.Errorf("redis option WaitTimeout=%s: must be below ReadTimeout=%s, or the read times out before WAIT answers", o.WaitTimeout, o.ReadTimeout)
	}
	return nil
}

// connOptions are the options of the client New makes when it is given no
// Client.
func (o *Options) connOptions() redisconn.Options {
	return redisconn.Options{
		Addr:         o.Addr,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		PoolSize:     o.PoolSize,
	}
}
