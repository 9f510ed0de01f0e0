package redisreg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/redisconn"
)

// Options configure a Registry. The zero value of each field takes its
// default.
type Options struct {
	// Client is an existing client to use (a node shares one between its
	// journal, transport and membership); the registry never closes it,
	// and the timeouts below are then the client's business (the lease
	// loop bounds every call with a context deadline). Without a Client,
	// New makes one for Addr.
	Client goredis.UniversalClient
	// RenewClient, if set, takes the renewals (and only them); the
	// registry never closes it. A client of one connection that nothing
	// else uses keeps the renewal one round trip: on a pool shared with
	// the listing, a renewal that overlaps a listing gets the pool's other
	// connection, which may never have been used and then costs its
	// handshake first (HELLO, CLIENT SETNAME: two more round trips, which
	// at +600 ms round trip exceed the renewal's TTL/2 timeout and fenced
	// every member in the slow-backend drill). Without it, Client renews.
	RenewClient goredis.UniversalClient
	// Addr is host:port or a redis:// or rediss:// URL (default
	// 127.0.0.1:6379); unused with a Client.
	Addr string
	// Prefix starts every key (default "<Cluster>:", so "ordersystem:" for
	// the default cluster).
	Prefix string
	// Cluster is the cluster name: members of different clusters in one
	// Redis do not see each other (default "ordersystem").
	Cluster string
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step of
	// a client made by New (default redisconn.DefaultTimeout, 2 s). They are
	// a backstop only: the lease provider bounds every call with a context
	// deadline derived from the lease TTL (the client honours it), so a
	// short fixed timeout here would only break the lease on a slow link
	// that the TTL can carry.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:6379"
	}
	if o.Cluster == "" {
		o.Cluster = "ordersystem"
	}
	if o.Prefix == "" {
		o.Prefix = o.Cluster + ":"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = redisconn.DefaultTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = redisconn.DefaultTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = redisconn.DefaultTimeout
	}
}

// Registry is a registry.Registry on Redis. Safe for concurrent use; Close
// releases the client if New made it.
type Registry struct {
	client    goredis.UniversalClient
	renew     goredis.UniversalClient // Options.RenewClient, else client
	ownClient bool                    // made by New (no Options.Client): Close closes it
	keyPrefix string                  // <Prefix>members:<Cluster>:
	closeOnce sync.Once
	closeErr  error
}

var _ registry.Registry = (*Registry)(nil)

// New returns a registry for opts. It does no I/O: an unreachable Redis
// shows up as errors of the registry's methods.
func New(opts Options) (*Registry, error) {
	opts.setDefaults()
	if err := registry.ValidateKeyToken("cluster name", opts.Cluster); err != nil {
		return nil, fmt.Errorf("redis membership registry: %w", err)
	}
	r := &Registry{client: opts.Client, keyPrefix: KeyPrefix(opts.Prefix, opts.Cluster)}
	if r.client == nil {
		c, err := redisconn.New(redisconn.Options{
			Addr:         opts.Addr,
			DialTimeout:  opts.DialTimeout,
			ReadTimeout:  opts.ReadTimeout,
			WriteTimeout: opts.WriteTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("redis membership registry: %w", err)
		}
		r.client, r.ownClient = c, true
	}
	r.renew = opts.RenewClient
	if r.renew == nil {
		r.renew = r.client
	}
	return r, nil
}

// KeyPrefix returns the start of the keys of cluster's members in a
// registry with Options.Prefix prefix ("" for the default):
// <prefix>members:<cluster>:.
func KeyPrefix(prefix, cluster string) string {
	o := Options{Prefix: prefix, Cluster: cluster}
	o.setDefaults()
	return o.Prefix + "members:" + o.Cluster + ":"
}

// Close closes the client if New made it (a client from Options.Client
// stays open). Idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		if r.ownClient {
			r.closeErr = r.client.Close()
		}
	})
	return r.closeErr
}

func (r *Registry) key(memberID string) string { return r.keyPrefix + memberID }

// renewScript extends the lease only while the key holds our record.
// Returns 1 renewed, 0 gone, -1 another record.
var renewScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// deregisterScript deletes the key only while it holds our record.
var deregisterScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func checkTTL(op, id string, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("%s %s: ttl %v must be at least 1ms", op, id, ttl)
	}
	return nil
}

// Register implements registry.Registry with SET NX PX and an SADD to the
// index in one transaction: one round trip on a single server (the lease provider
// counts the lease from the moment it sent the call, so every round trip
// here would be lease lost). The SADD runs even when the SET finds a live
// record: an id in the index that has no record is harmless (List prunes
// it).
func (r *Registry) Register(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	if err := checkTTL("register", rec.MemberID, ttl); err != nil {
		return err
	}
	var set *goredis.BoolCmd
	var add *goredis.IntCmd
	// MULTI/EXEC rather than a plain pipeline: measured with go-redis
	// 9.23, a plain pipeline of two commands first takes a connection of
	// its own (a dial and a handshake more), a transaction does not. A
	// cluster client runs one transaction per slot. The pipeline's own
	// error is that of its first failed command: the SET and the SADD are
	// checked one by one.
	//
	// On a Redis Cluster the record and the index lie in different slots,
	// which one MULTI cannot hold (CROSSSLOT): a plain pipeline, which the
	// cluster client splits by node, sends both at once instead.
	steps := func(p goredis.Pipeliner) error {
		set = p.SetNX(ctx, r.key(rec.MemberID), data, ttl)
		add = p.SAdd(ctx, r.indexKey(), rec.MemberID)
		return nil
	}
	if r.isCluster() {
		_, _ = r.client.Pipelined(ctx, steps)
	} else {
		_, _ = r.client.TxPipelined(ctx, steps)
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("redis register %s: %w", rec.MemberID, err)
	}
	if !set.Val() {
		return fmt.Errorf("redis register %s: %w", rec.MemberID, registry.ErrMemberExists)
	}
	if err := add.Err(); err != nil {
		// The record is stored but List cannot find it: take it back.
		_ = r.Deregister(ctx, rec)
		return fmt.Errorf("redis register %s: index: %w", rec.MemberID, err)
	}
	return nil
}

// indexKey is the set of member ids that may have a record: List reads it
// instead of scanning the database (which may hold millions of order keys).
// Ids whose record expired are removed from it by List.
func (r *Registry) indexKey() string { return strings.TrimSuffix(r.keyPrefix, ":") + ":index" }

// Renew implements registry.Registry: a Lua script compares the stored
// record with rec and PEXPIREs the key only if they are equal.
func (r *Registry) Renew(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	if err := checkTTL("renew", rec.MemberID, ttl); err != nil {
		return err
	}
	// EVAL, not EVALSHA-then-EVAL (Script.Run): measured on Redis 7.0, the
	// script EVAL runs does not make a later EVALSHA find it, so Run took two
	// round trips every time. The script is a few hundred bytes; one round
	// trip, whatever the server's script cache holds after a restart or a
	// failover, is what the lease needs.
	res, err := renewScript.Eval(ctx, r.renew, []string{r.key(rec.MemberID)}, data, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redis renew %s: %w", rec.MemberID, err)
	}
	switch res {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("redis renew %s: key expired or deleted: %w", rec.MemberID, registry.ErrLeaseLost)
	default:
		return fmt.Errorf("redis renew %s: key holds another incarnation's record: %w", rec.MemberID, registry.ErrLeaseLost)
	}
}

// Deregister implements registry.Registry: DEL only if the key holds rec.
func (r *Registry) Deregister(ctx context.Context, rec registry.MemberRecord) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	if err := deregisterScript.Run(ctx, r.client, []string{r.key(rec.MemberID)}, data).Err(); err != nil {
		return fmt.Errorf("redis deregister %s: %w", rec.MemberID, err)
	}
	if exists, err := r.client.Exists(ctx, r.key(rec.MemberID)).Result(); err == nil && exists == 0 {
		_ = r.client.SRem(ctx, r.indexKey(), rec.MemberID).Err()
	}
	return nil
}

// isCluster reports whether the client is a Redis Cluster client.
func (r *Registry) isCluster() bool {
	_, ok := r.client.(*goredis.ClusterClient)
	return ok
}

// getAll returns the values of keys (nil for a missing key): one MGET, or
// on a Redis Cluster (whose MGET refuses keys of several slots) one
// pipeline of GETs, split by node.
func (r *Registry) getAll(ctx context.Context, keys []string) ([]any, error) {
	if !r.isCluster() {
		return r.client.MGet(ctx, keys...).Result()
	}
	cmds := make([]*goredis.StringCmd, len(keys))
	_, _ = r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	out := make([]any, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, goredis.Nil):
		case err != nil:
			return nil, err
		default:
			out[i] = v
		}
	}
	return out, nil
}

// List implements registry.Registry: the index set, then MGET of the
// members' keys (GETs on a Redis Cluster). Values that do not decode are skipped (they expire with
// their lease).
func (r *Registry) List(ctx context.Context) ([]registry.MemberRecord, error) {
	ids, err := r.client.SMembers(ctx, r.indexKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list members: %w", err)
	}
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, r.key(id))
	}
	var expired []any
	out := make([]registry.MemberRecord, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), 256)
		vals, err := r.getAll(ctx, keys[:n])
		if err != nil {
			return nil, fmt.Errorf("redis list members: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				expired = append(expired, strings.TrimPrefix(keys[i], r.keyPrefix))
				continue // the lease ran out
			}
			rec, err := registry.DecodeMemberRecord([]byte(s))
			if err != nil || r.key(rec.MemberID) != keys[i] || seen[rec.MemberID] {
				continue // not a record of ours, or an id listed twice
			}
			seen[rec.MemberID] = true
			out = append(out, rec)
		}
		keys = keys[n:]
	}
	if len(expired) > 0 {
		_ = r.client.SRem(ctx, r.indexKey(), expired...).Err() // best effort
	}
	registry.SortRecords(out)
	return out, nil
}
