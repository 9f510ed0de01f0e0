package redisconn

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ordersystem/ordersystem/internal/redact"
)

// ErrInvalidAddr is matched (errors.Is) by every error of
// Options.ClientOptions and New about the address. The message names the address
// without its credentials.
var ErrInvalidAddr = errors.New("invalid redis address")

// DefaultTimeout is the default of Options.DialTimeout, ReadTimeout and
// WriteTimeout.
const DefaultTimeout = 2 * time.Second

// Options configures a client made by New.
type Options struct {
	// Addr is "host:port", or a redis:// or rediss:// URL that may carry a
	// user, a password, a database number (redis://user:pass@host:6379/2)
	// and go-redis query options; rediss:// turns TLS on.
	Addr string
	// Name is set on every connection (CLIENT SETNAME), so that CLIENT LIST
	// shows whose it is; "" sets none. A name in the URL's query wins.
	Name string
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step
	// (default DefaultTimeout each), so an unreachable server yields an
	// error within seconds instead of a hang. A context deadline, when
	// shorter, wins; waiting for a free pooled connection is bounded by
	// ReadTimeout too.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// PoolSize is the number of pooled connections (0: go-redis' default,
	// 10 per CPU).
	PoolSize int
}

// ClientOptions returns the go-redis options of o: the parsed address with
// the timeouts, one dial attempt and no command retries. Every caller (an
// actor, the outbox, a health check, the lease loop) decides about retries
// itself; an unreachable server is reported within DialTimeout; a script or
// an XADD is never sent twice behind the caller's back.
func (o Options) ClientOptions() (*goredis.Options, error) {
	co, err := parseAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	set := func(d *time.Duration, v time.Duration) {
		*d = v
		if v == 0 {
			*d = DefaultTimeout
		}
	}
	set(&co.DialTimeout, o.DialTimeout)
	set(&co.ReadTimeout, o.ReadTimeout)
	set(&co.WriteTimeout, o.WriteTimeout)
	if o.PoolSize > 0 {
		co.PoolSize = o.PoolSize
	}
	co.PoolTimeout = co.ReadTimeout
	co.ContextTimeoutEnabled = true
	co.DialerRetries = 1
	co.MaxRetries = -1
	co.DisableIdentity = true
	co.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if co.ClientName == "" {
		co.ClientName = o.Name
	}
	return co, nil
}

// New returns a single-server client for o. It does no I/O: an unreachable
// server shows up as errors of the first commands. The caller owns the
// client and closes it after every backend that uses it.
func New(o Options) (*goredis.Client, error) {
	co, err := o.ClientOptions()
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(co), nil
}

// parseAddr parses a Redis address: "host:port" (port 1..65535), or a
// redis:// or rediss:// URL in go-redis' syntax. Errors match
// ErrInvalidAddr and never show the address's user-info: url.Parse and
// go-redis quote the address in theirs, so a refused URL with a user-info
// is explained by what the rest of it does wrong, or, if the rest is fine,
// by its user-info.
func parseAddr(addr string) (*goredis.Options, error) {
	shown := redact.URL(addr)
	if addr == "" {
		return nil, fmt.Errorf("%w: empty: want host:port or a redis:// or rediss:// URL", ErrInvalidAddr)
	}
	scheme, _, isURL := strings.Cut(addr, "://")
	if !isURL {
		if strings.Contains(addr, "@") {
			return nil, fmt.Errorf("%w %s: a user or password needs a URL: redis://user:password@host:port", ErrInvalidAddr, shown)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			var ae *net.AddrError
			if errors.As(err, &ae) {
				err = errors.New(ae.Err) // without the address it quotes
			}
			return nil, fmt.Errorf("%w %s: want host:port or a redis:// or rediss:// URL: %v", ErrInvalidAddr, shown, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("%w %s: port %q is not a number in 1..65535", ErrInvalidAddr, shown, port)
		}
		return &goredis.Options{Network: "tcp", Addr: net.JoinHostPort(host, port)}, nil
	}
	if s := strings.ToLower(scheme); s != "redis" && s != "rediss" {
		return nil, fmt.Errorf("%w %s: URL scheme %q, want redis:// or rediss://", ErrInvalidAddr, shown, scheme)
	}
	co, err := goredis.ParseURL(addr)
	if err == nil {
		return co, nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		// No user-info: the error may quote the address as it is.
		return nil, fmt.Errorf("%w: %v", ErrInvalidAddr, err)
	}
	// Explain with the address minus its user-info (query and path kept).
	if _, err := goredis.ParseURL(scheme + "://" + addr[at+1:]); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidAddr, shown, err)
	}
	return nil, fmt.Errorf("%w %s: not a valid URL because of its user or password: percent-encode their reserved characters (@ as %%40, : as %%3A, / as %%2F, %% as %%25, space as %%20)", ErrInvalidAddr, shown)
}

// ServerAddr returns host:port of a single-server client (one made by New),
// and "" for any other kind of client: what messages name when a backend
// was handed a client without an address.
func ServerAddr(c goredis.UniversalClient) string {
	if o, ok := c.(interface{ Options() *goredis.Options }); ok {
		return o.Options().Addr
	}
	return ""
}

// Transient reports whether err means "retry later" rather than "no": every
// error that is not a server reply (network failures, timeouts, a
// connection pool that is full, a canceled context), and the replies of a
// server that cannot serve the command now but may in a moment, unchanged:
//
//	LOADING      the server is loading its data set after a restart
//	BUSY         a script or function runs (not BUSYGROUP, BUSYKEY)
//	MASTERDOWN   a replica lost its primary and serves no stale data
//	READONLY     a replica, or a primary demoted by a failover
//	NOREPLICAS   fewer good replicas than min-replicas-to-write
//	OOM          maxmemory reached; eviction or the operator frees memory
//	MISCONF      the last RDB save failed, writes stop until one succeeds
//	TRYAGAIN     a multi-key command meets a slot being migrated
//	CLUSTERDOWN  the cluster lost a slot's owner
//	MOVED, ASK   the slot is served elsewhere: the topology moves (a
//	             cluster client follows these itself and only gives up
//	             while it does), or the client is pointed at a cluster
//	             node; either way the command itself is fine
//	ERR max number of clients reached
//
// Every other reply (WRONGTYPE, NOSCRIPT, NOAUTH, WRONGPASS, NOPERM, a
// syntax or script error, ...) is a refusal that retrying cannot change.
// The difference matters: the outbox dead-letters an event whose publish is
// refused, so a server state must never count as a refusal. The reply is
// matched on its whole first word. Transient(nil) is false, and so is
// Transient(goredis.Nil) (a reply: no value).
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return true
	}
	msg := reply.Error()
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "LOADING", "BUSY", "MASTERDOWN", "READONLY", "NOREPLICAS", "OOM", "MISCONF",
		"TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK":
		return true
	}
	return strings.HasPrefix(msg, "ERR max number of clients reached")
}
