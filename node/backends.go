package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/persistence"
	pmemory "github.com/ordersystem/ordersystem/persistence/memory"
	pnats "github.com/ordersystem/ordersystem/persistence/nats"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/transport"
	tmemory "github.com/ordersystem/ordersystem/transport/memory"
	tnats "github.com/ordersystem/ordersystem/transport/nats"
	tredis "github.com/ordersystem/ordersystem/transport/redis"
)

// connections are the node's Redis client and NATS connection, shared by
// the journal, the transport and the membership registry (which never
// close them) and closed by the node after all of them. Membership on
// Redis has clients of its own: a lease renewal must not wait behind
// journal traffic for a pooled connection, nor pay a new connection's
// handshake (HELLO, CLIENT SETNAME: two extra round trips) when the
// journal's load grew the shared pool or a listing holds the warm
// connection; so the renewals have one connection of their own
// (redisLease), the listings and registrations another pool
// (redisMembers).
type connections struct {
	redis        goredis.UniversalClient // nil unless a backend is Redis
	redisMembers goredis.UniversalClient // nil unless membership is on Redis
	redisLease   goredis.UniversalClient // the renewals' (nil unless membership is on Redis)
	nats         *natsgo.Conn            // nil unless a backend is NATS
}

// open opens what the configured backends use. A NATS server that cannot
// be reached is an error that names the flag that needs it.
func (c *connections) open(ctx context.Context, cfg Config, log *slog.Logger) error {
	if user := cfg.backendUser(Redis); user != "" {
		rdb, err := redisconn.New(redisconn.Options{
			Addr:       cfg.Redis,
			MasterName: cfg.RedisMasterName,
			Name:       "ordersystem-" + cfg.NodeID,
			PoolSize:   predis.DefaultPoolSize, // the journal's group committer is its busiest user
		})
		if err != nil {
			return fmt.Errorf("%s: --redis: %w", user, err)
		}
		c.redis = rdb
	}
	// A standalone Redis: the membership gets clients of its own, so that a
	// renewal never waits behind the journal or pays a new pooled
	// connection's handshake. On a Redis Cluster or Sentinel the membership
	// shares the node's client: a pool of one or two per shard waited out
	// dial timeouts to a killed primary and fenced every member for a
	// minute in the backend-failover drill, where the shared pool
	// followed the failover in seconds.
	replicated := strings.Contains(cfg.Redis, ",") || cfg.RedisMasterName != ""
	if cfg.Cluster && cfg.discovery() == Redis && !replicated {
		for _, m := range []struct {
			c    *goredis.UniversalClient
			name string
			size int
		}{{&c.redisMembers, "-membership", 2}, {&c.redisLease, "-lease", 1}} {
			rdb, err := redisconn.New(redisconn.Options{
				Addr:       cfg.Redis,
				MasterName: cfg.RedisMasterName,
				Name:       "ordersystem-" + cfg.NodeID + m.name,
				PoolSize:   m.size,
			})
			if err != nil {
				return fmt.Errorf("cluster membership on Redis: --redis: %w", err)
			}
			*m.c = rdb
		}
	}
	if user := cfg.backendUser(NATS); user != "" {
		nc, err := natsconn.Connect(ctx, natsconn.Options{URL: cfg.NATS, Name: "ordersystem-" + cfg.NodeID, Logger: log})
		if err != nil {
			return fmt.Errorf("%s: connect to NATS: %w (is NATS with JetStream running at --nats=%s?)", user, err, redact.URL(cfg.NATS))
		}
		c.nats = nc
	}
	if cfg.Cluster {
		ns := clusterNamespace(cfg.ClusterName)
		switch cfg.discovery() {
		case Redis:
			log.Info("membership namespace", slog.String("cluster_name", ns.cluster), slog.String("redis_keys", ns.redisMember+"*"))
		case NATS:
			log.Info("membership namespace", slog.String("cluster_name", ns.cluster), slog.String("nats_bucket", ns.natsMembers))
		}
	}
	return nil
}

// close closes the client and the connection; idempotent.
func (c *connections) close() error {
	var errs []error
	if c.redis != nil {
		errs = append(errs, c.redis.Close())
		c.redis = nil
	}
	for _, m := range []*goredis.UniversalClient{&c.redisMembers, &c.redisLease} {
		if *m != nil {
			errs = append(errs, (*m).Close())
			*m = nil
		}
	}
	if c.nats != nil {
		c.nats.Close()
		c.nats = nil
	}
	return errors.Join(errs...)
}

// backendUser names the first part of the node that uses backend b (for
// messages), or "" when none does.
func (c *Config) backendUser(b string) string {
	switch {
	case c.Persistence == b:
		return "--persistence=" + b
	case c.Transport == b:
		return "--transport=" + b
	case c.Cluster && c.discovery() == b:
		return "cluster membership on " + map[string]string{Redis: "Redis", NATS: "NATS"}[b]
	}
	return ""
}

// DefaultClusterName is the default --cluster-name. Its cluster keeps
// exactly the backend names of the releases before cluster names
// namespaced the data, so existing data loads and the documented wire
// (orders:events, ORDER_EVENTS) stays as it was.
const DefaultClusterName = "ordersystem"

// reservedClusterName cannot be a cluster name: its Redis prefix "orders:"
// and NATS subject token "orders" would hold the default cluster's
// transport stream orders:events and subjects orders.events.*.
const reservedClusterName = "orders"

// namespace is where one cluster keeps its data in a shared Redis or NATS:
// two clusters with different names share no key, stream, subject or
// bucket. clusterNamespace derives it from the cluster name.
type namespace struct {
	cluster string

	// Redis.
	redisPrefix string // journal: <prefix>meta, {p<N>}:log, seq, stream:<id>, checkpoint:outbox-<N>, snapshot:<id>
	redisEvents string // transport stream (its consumer groups live in it)
	redisMember string // membership keys <redisMember><member id> and <redisMember>index

	// NATS JetStream.
	natsJournal         string // journal stream
	natsJournalSubjects string // its subjects are <natsJournalSubjects>.<order id>
	natsCheckpoints     string // KV bucket (outbox checkpoints)
	natsSnapshots       string // KV bucket
	natsEvents          string // transport stream (its durable consumers live in it)
	natsEventSubjects   string // its subjects are <natsEventSubjects>.<Type>
	natsMembers         string // membership KV bucket, keys <cluster>.<member id>
}

// clusterNamespace returns the names of cluster name's data. The default
// cluster keeps the legacy names; cluster <name> (lower case, no '.' or
// ':', see validClusterName) puts every Redis key under "<name>:" and its
// journal and event subjects under "<name>.", and suffixes "_<NAME>"
// (upper case) to the NATS stream names:
//
//	                      default (ordersystem)        <name>
//	Redis journal keys    ordersystem:...              <name>:...
//	Redis events stream   orders:events                <name>:orders:events
//	Redis membership      ordersystem:members:...      <name>:members:<name>:...
//	NATS journal          ORDERS_JOURNAL               ORDERS_JOURNAL_<NAME>
//	  subjects            orders.journal.<id>          <name>.orders.journal.<id>
//	  KV buckets          ORDERS_JOURNAL_checkpoints   ORDERS_JOURNAL_<NAME>_checkpoints
//	                      ORDERS_JOURNAL_snapshots     ORDERS_JOURNAL_<NAME>_snapshots
//	NATS events           ORDER_EVENTS                 ORDER_EVENTS_<NAME>
//	  subjects            orders.events.<Type>         <name>.orders.events.<Type>
//	NATS membership       ordersystem_members          <name>_members
//
// The default's subjects have three tokens and another cluster's four,
// so no stream's subjects overlap another's (JetStream refuses that).
// The journal's KV bucket names follow from the stream name
// (persistence/nats), the membership names from the cluster name
// (cluster/redisreg, cluster/natsreg); they are repeated here for the log.
func clusterNamespace(name string) namespace {
	if name == "" {
		name = DefaultClusterName
	}
	ns := namespace{
		cluster:             name,
		redisPrefix:         predis.DefaultPrefix,
		redisEvents:         tredis.DefaultKey,
		natsJournal:         pnats.DefaultStream,
		natsJournalSubjects: pnats.DefaultSubjectPrefix,
		natsEvents:          tnats.DefaultStream,
		natsEventSubjects:   tnats.DefaultSubjectPrefix,
	}
	if name != DefaultClusterName {
		upper := strings.ToUpper(name)
		ns.redisPrefix = name + ":"
		ns.redisEvents = name + ":" + tredis.DefaultKey
		ns.natsJournal = pnats.DefaultStream + "_" + upper
		ns.natsJournalSubjects = name + "." + pnats.DefaultSubjectPrefix
		ns.natsEvents = tnats.DefaultStream + "_" + upper
		ns.natsEventSubjects = name + "." + tnats.DefaultSubjectPrefix
	}
	ns.natsCheckpoints = ns.natsJournal + "_checkpoints"
	ns.natsSnapshots = ns.natsJournal + "_snapshots"
	ns.redisMember = redisreg.KeyPrefix("", name)
	ns.natsMembers = natsreg.BucketFor(name)
	return ns
}

// openPersistence opens the configured persistence backend on the node's
// connections; an unreachable server is an error that names it and the
// flag to change.
func openPersistence(ctx context.Context, cfg Config, conns connections, log *slog.Logger) (persistence.Backend, error) {
	ns := clusterNamespace(cfg.ClusterName)
	switch cfg.Persistence {
	case Redis:
		b, err := predis.New(ctx, predis.Options{Client: conns.redis, Addr: cfg.Redis, Prefix: ns.redisPrefix, WaitReplicas: cfg.RedisWaitReplicas, Partitions: cfg.Partitions, Logger: log})
		if errors.Is(err, persistence.ErrInvalidArgument) || errors.Is(err, persistence.ErrCorrupt) {
			return nil, fmt.Errorf("--persistence=redis: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("--persistence=redis: %w (is Redis running at --redis=%s?)", err, redact.URL(cfg.Redis))
		}
		log.Info("persistence namespace", slog.String("cluster_name", ns.cluster), slog.String("redis_prefix", ns.redisPrefix))
		return b, nil
	case NATS:
		b, err := pnats.New(ctx, pnats.Options{
			Conn: conns.nats, URL: cfg.NATS,
			Stream: ns.natsJournal, SubjectPrefix: ns.natsJournalSubjects,
			Replicas: cfg.NATSReplicas, Storage: natsStorage(cfg.NATSStorage), Partitions: cfg.Partitions, Logger: log,
		})
		if errors.Is(err, persistence.ErrInvalidArgument) || errors.Is(err, persistence.ErrCorrupt) || errors.Is(err, pnats.ErrLegacyJournal) {
			return nil, fmt.Errorf("--persistence=nats: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("--persistence=nats: %w (is NATS with JetStream running at --nats=%s?)", err, redact.URL(cfg.NATS))
		}
		last := b.Partitions() - 1
		log.Info("persistence namespace", slog.String("cluster_name", ns.cluster),
			slog.String("nats_streams", fmt.Sprintf("%s_P0..%s_P%d", ns.natsJournal, ns.natsJournal, last)),
			slog.String("nats_subjects", fmt.Sprintf("%s.p0.*..%s.p%d.*", ns.natsJournalSubjects, ns.natsJournalSubjects, last)),
			slog.String("nats_buckets", ns.natsJournal+"_meta,"+ns.natsCheckpoints+","+ns.natsSnapshots+","+ns.natsJournal+"_rmsnap"))
		return b, nil
	default:
		return pmemory.NewPartitioned(cfg.Partitions), nil
	}
}

// openTransport opens the configured event transport on the node's
// connections.
func openTransport(ctx context.Context, cfg Config, conns connections, log *slog.Logger) (transport.Transport, error) {
	ns := clusterNamespace(cfg.ClusterName)
	switch cfg.Transport {
	case Redis:
		t, err := tredis.New(ctx, tredis.Options{Client: conns.redis, Addr: cfg.Redis, Key: ns.redisEvents, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--transport=redis: %w (is Redis running at --redis=%s?)", err, redact.URL(cfg.Redis))
		}
		log.Info("transport namespace", slog.String("cluster_name", ns.cluster), slog.String("redis_stream", ns.redisEvents))
		return t, nil
	case NATS:
		t, err := tnats.New(ctx, tnats.Options{Conn: conns.nats, URL: cfg.NATS, Stream: ns.natsEvents, SubjectPrefix: ns.natsEventSubjects, Replicas: cfg.NATSReplicas, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--transport=nats: %w (is NATS with JetStream running at --nats=%s?)", err, redact.URL(cfg.NATS))
		}
		log.Info("transport namespace", slog.String("cluster_name", ns.cluster), slog.String("nats_stream", ns.natsEvents),
			slog.String("nats_subjects", ns.natsEventSubjects+".*"))
		return t, nil
	default:
		return tmemory.New(tmemory.Options{Logger: log})
	}
}

func natsStorage(s string) jetstream.StorageType {
	if s == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}
