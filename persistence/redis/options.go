package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults applied by Options.setDefaults.
const (
	DefaultAddr     = "127.0.0.1:6379"
	DefaultPrefix   = "ordersystem:"
	DefaultTimeout  = 2 * time.Second
	DefaultPoolSize = 64
	DefaultMaxBatch = 128
)

// Options configures a Backend. The zero value (plus an Addr) is usable: New
// fills in the defaults.
type Options struct {
	// Addr is "host:port", or a redis:// or rediss:// URL that may carry a
	// user, a password, a database number (redis://user:pass@host:6379/2)
	// and go-redis query options; rediss:// turns TLS on. Default
	// 127.0.0.1:6379.
	Addr string

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
}

func (o *Options) setDefaults() {
	if o.Addr == "" {
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
}

// Validate reports the first option that cannot work, naming it and its value.
func (o *Options) Validate() error {
	if _, err := o.clientOptions(); err != nil {
		return err
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

// isURL tells a redis:// or rediss:// URL from host:port.
func isURL(addr string) bool { return strings.Contains(addr, "://") }

// clientOptions turns Options into go-redis options.
func (o *Options) clientOptions() (*goredis.Options, error) {
	var co *goredis.Options
	if isURL(o.Addr) {
		u, err := url.Parse(o.Addr)
		if err != nil {
			// url.Parse echoes the input, which may hold a password.
			return nil, fmt.Errorf("redis option Addr: not a valid URL: %w", errors.Unwrap(err))
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, fmt.Errorf("redis option Addr: URL scheme %q, want redis:// or rediss://", u.Scheme)
		}
		co, err = goredis.ParseURL(o.Addr)
		if err != nil {
			return nil, fmt.Errorf("redis option Addr=%s: %w", redact(o.Addr), err)
		}
	} else {
		host, port, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return nil, fmt.Errorf("redis option Addr=%q: want host:port or a redis:// URL: %w", o.Addr, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("redis option Addr=%q: port %q is not a number in 1..65535", o.Addr, port)
		}
		co = &goredis.Options{Network: "tcp", Addr: net.JoinHostPort(host, port)}
	}
	co.DialTimeout = o.DialTimeout
	co.ReadTimeout = o.ReadTimeout
	co.WriteTimeout = o.WriteTimeout
	co.PoolSize = o.PoolSize
	co.PoolTimeout = o.ReadTimeout
	co.ContextTimeoutEnabled = true
	// One dial attempt and no command retries: the caller (an actor, the
	// outbox, a health check) decides about retries, an unreachable server
	// is reported within DialTimeout, and a script is never sent twice.
	co.DialerRetries = 1
	co.MaxRetries = -1
	co.DisableIdentity = true
	co.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return co, nil
}

// redact returns addr without credentials: host:port as given, a URL as
// scheme://host:port[/db].
func redact(addr string) string {
	if !isURL(addr) {
		return addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "(unparsable redis URL)"
	}
	out := url.URL{Scheme: u.Scheme, Host: u.Host}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		out.Path = "/" + p
	}
	return out.String()
}
