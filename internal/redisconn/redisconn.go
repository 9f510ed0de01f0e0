package redisconn

import (
	"context"
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
	// and go-redis query options; rediss:// turns TLS on. A comma-separated
	// list of such addresses is the seeds of a Redis Cluster, or, with
	// MasterName, the Sentinels (see New).
	Addr string
	// MasterName, when set, makes Addr the list of Sentinels that watch the
	// master of that name: New then returns a failover client.
	MasterName string
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

// ClientOptions returns the go-redis options of a single-server o (one
// address, no MasterName): the parsed address with
// the timeouts, one dial attempt and no command retries. Every caller (an
// actor, the outbox, a health check, the lease loop) decides about retries
// itself; an unreachable server is reported within DialTimeout; a script or
// an XADD is never sent twice behind the caller's back.
func (o Options) ClientOptions() (*goredis.Options, error) {
	if o.MasterName != "" {
		return nil, fmt.Errorf("%w %s with master name %q: a Sentinel address is not the address of one server", ErrInvalidAddr, redact.URL(o.Addr), o.MasterName)
	}
	if strings.Contains(o.Addr, ",") {
		if _, err := parseList(o.Addr); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w %s: a list of addresses (a Redis Cluster) where one server's address is needed", ErrInvalidAddr, redact.URL(o.Addr))
	}
	co, err := parseAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	o.apply(co)
	return co, nil
}

// apply sets the timeouts, retries and name every client of ours has.
func (o Options) apply(co *goredis.Options) {
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
}

// Kind names the client New makes for o: "standalone", "cluster" or
// "sentinel". It does not validate o.
func (o Options) Kind() string {
	switch {
	case o.MasterName != "":
		return "sentinel"
	case strings.Contains(o.Addr, ","):
		return "cluster"
	default:
		return "standalone"
	}
}

// Validate checks o as New would, without making a client.
func (o Options) Validate() error {
	var err error
	switch o.Kind() {
	case "standalone":
		_, err = o.ClientOptions()
	case "cluster":
		_, err = o.ClusterOptions()
	default:
		_, err = o.FailoverOptions()
	}
	return err
}

// New returns a client for o. It does no I/O: an unreachable server shows
// up as errors of the first commands. The caller owns the client and closes
// it after every backend that uses it. Following go-redis' universal-client
// convention:
//
//   - one address without MasterName: a single-server *goredis.Client;
//   - a comma-separated list without MasterName: a *goredis.ClusterClient
//     that learns the cluster from these seeds. Every item has the same
//     form (all host:port, all redis:// or all rediss://), the same user
//     and password and no database number (a cluster has database 0 only);
//     the first item's query options apply to every node, and the others
//     may not carry any. With TLS each node is verified against its own
//     host name;
//   - MasterName: a failover *goredis.Client that asks the listed
//     Sentinels (one or more, same rules as a cluster's list, but a
//     database number is allowed) for the master of that name. The user
//     and password are those of the master and its replicas; the Sentinels
//     are reached without credentials.
//
// Every kind gets the timeouts, the single dial attempt and no command
// retries of ClientOptions (a cluster client still follows MOVED and ASK
// redirects, at most 3 per command). A cluster client also reloads its
// slot map after every transient failure (see reloadOnFailure).
func New(o Options) (goredis.UniversalClient, error) {
	switch o.Kind() {
	case "standalone":
		co, err := o.ClientOptions()
		if err != nil {
			return nil, err
		}
		return goredis.NewClient(co), nil
	case "cluster":
		co, err := o.ClusterOptions()
		if err != nil {
			return nil, err
		}
		c := goredis.NewClusterClient(co)
		c.AddHook(reloadOnFailure{c})
		return c, nil
	default:
		fo, err := o.FailoverOptions()
		if err != nil {
			return nil, err
		}
		return goredis.NewFailoverClient(fo), nil
	}
}

// ClusterOptions returns the go-redis options of the cluster client New
// makes for a comma-separated o.Addr (see New for the rules of the list).
func (o Options) ClusterOptions() (*goredis.ClusterOptions, error) {
	if o.MasterName != "" {
		return nil, fmt.Errorf("%w %s: master name %q means Sentinel, not Redis Cluster", ErrInvalidAddr, redact.URL(o.Addr), o.MasterName)
	}
	items, err := parseList(o.Addr)
	if err != nil {
		return nil, err
	}
	for i, it := range items {
		if it.DB != 0 {
			return nil, fmt.Errorf("%w %s: item %d selects database %d, but a Redis Cluster has database 0 only", ErrInvalidAddr, redact.URL(o.Addr), i+1, it.DB)
		}
	}
	first := items[0]
	o.apply(first)
	addrs := make([]string, len(items))
	for i, it := range items {
		addrs[i] = it.Addr
	}
	// Each node is checked against its own host.
	return universal(first, addrs).Cluster(), nil
}

// universal carries the options parsed from a list's first item over to
// the servers of the list, for the cluster and Sentinel clients. A TLS
// configuration loses its server name: each server is checked against its
// own host (Sentinel: the master is found, not named).
func universal(first *goredis.Options, addrs []string) *goredis.UniversalOptions {
	tlsConf := first.TLSConfig
	if tlsConf != nil {
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName = ""
	}
	return &goredis.UniversalOptions{
		Addrs:                    addrs,
		ClientName:               first.ClientName,
		Protocol:                 first.Protocol,
		Username:                 first.Username,
		Password:                 first.Password,
		DB:                       first.DB,
		MaxRetries:               first.MaxRetries,
		DialTimeout:              first.DialTimeout,
		DialerRetries:            first.DialerRetries,
		ReadTimeout:              first.ReadTimeout,
		WriteTimeout:             first.WriteTimeout,
		ContextTimeoutEnabled:    first.ContextTimeoutEnabled,
		PoolSize:                 first.PoolSize,
		PoolTimeout:              first.PoolTimeout,
		MinIdleConns:             first.MinIdleConns,
		MaxIdleConns:             first.MaxIdleConns,
		ConnMaxIdleTime:          first.ConnMaxIdleTime,
		ConnMaxLifetime:          first.ConnMaxLifetime,
		TLSConfig:                tlsConf,
		DisableIdentity:          first.DisableIdentity,
		MaintNotificationsConfig: first.MaintNotificationsConfig,
	}
}

// FailoverOptions returns the go-redis options of the Sentinel client New
// makes when o.MasterName is set (see New for the rules of the list).
func (o Options) FailoverOptions() (*goredis.FailoverOptions, error) {
	if o.MasterName == "" {
		return nil, fmt.Errorf("%w %s: Sentinel needs a master name", ErrInvalidAddr, redact.URL(o.Addr))
	}
	items, err := parseList(o.Addr)
	if err != nil {
		return nil, err
	}
	first := items[0]
	o.apply(first)
	addrs := make([]string, len(items))
	for i, it := range items {
		if it.DB != first.DB {
			return nil, fmt.Errorf("%w %s: item %d selects database %d, item 1 database %d", ErrInvalidAddr, redact.URL(o.Addr), i+1, it.DB, first.DB)
		}
		addrs[i] = it.Addr
	}
	u := universal(first, addrs)
	u.MasterName = o.MasterName
	return u.Failover(), nil
}

// parseList parses a comma-separated list of addresses (one item is a
// list too). Every item must parse, have the form of the first (host:port,
// redis:// or rediss://) and its user and password, and only the first may
// carry query options. Errors match ErrInvalidAddr and name items by their
// 1-based place, never showing credentials.
func parseList(list string) ([]*goredis.Options, error) {
	shown := redact.URL(list)
	raw := strings.Split(list, ",")
	out := make([]*goredis.Options, 0, len(raw))
	firstForm := ""
	for i, item := range raw {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%w %s: item %d of the list is empty (a stray comma?)", ErrInvalidAddr, shown, i+1)
		}
		co, err := parseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("item %d of %s: %w", i+1, shown, err)
		}
		form := "host:port"
		if scheme, _, ok := strings.Cut(item, "://"); ok {
			form = strings.ToLower(scheme) + "://"
		}
		if i == 0 {
			firstForm = form
		} else {
			switch first := out[0]; {
			case form != firstForm:
				return nil, fmt.Errorf("%w %s: item %d is %s but item 1 is %s: every item of a list must have the same form", ErrInvalidAddr, shown, i+1, form, firstForm)
			case co.Username != first.Username || co.Password != first.Password:
				return nil, fmt.Errorf("%w %s: item %d has another user or password than item 1: a list has one set of credentials", ErrInvalidAddr, shown, i+1)
			case strings.Contains(item, "?"):
				return nil, fmt.Errorf("%w %s: item %d carries query options: put them on item 1, they apply to every node", ErrInvalidAddr, shown, i+1)
			}
		}
		out = append(out, co)
	}
	return out, nil
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

// ServerAddr returns what messages name when a backend was handed a client
// without an address: host:port of a single-server client, the seeds of a
// cluster client joined with commas, and "" for any other kind of client.
func ServerAddr(c goredis.UniversalClient) string {
	switch o := c.(type) {
	case interface{ Options() *goredis.Options }:
		return o.Options().Addr
	case interface {
		Options() *goredis.ClusterOptions
	}:
		return strings.Join(o.Options().Addrs, ",")
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

// reloadOnFailure makes a cluster client learn a new slot map as soon as a
// command fails transiently (Transient), rather than at go-redis' periodic
// reload, every 60 s by default. go-redis reloads on a MOVED reply, but a
// killed primary answers nothing: a "connection refused" or a timeout
// leaves the dead node in the map, and a client that only ever talks to
// its slots (the membership's, which registers one key and renews another)
// kept dialing it for a minute after its replica had taken over, so every
// member that had fenced during the failover failed to rejoin for that
// long (the backend-failover drill, CI). The reload is go-redis' lazy one:
// one CLUSTER SLOTS in the background, coalesced, at most one per 200 ms.
type reloadOnFailure struct{ c *goredis.ClusterClient }

func (h reloadOnFailure) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if topologySuspect(err) {
			h.c.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		suspect := topologySuspect(err)
		for _, c := range cmds {
			suspect = suspect || topologySuspect(c.Err())
		}
		if suspect {
			h.c.ReloadState(ctx)
		}
		return err
	}
}

// topologySuspect reports whether err may mean that the slot map is out of
// date: a transient failure other than a redirect (go-redis follows those
// and reloads by itself) or the caller's own cancellation.
func topologySuspect(err error) bool {
	if !Transient(err) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply goredis.Error
	if errors.As(err, &reply) {
		code, _, _ := strings.Cut(reply.Error(), " ")
		return code != "MOVED" && code != "ASK"
	}
	return true
}
