package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

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

// connections are the node's one Redis client and one NATS connection,
// shared by the journal, the transport and the membership registry (which
// never close them) and closed by the node after all of them.
type connections struct {
	redis goredis.UniversalClient // nil unless a backend is Redis
	nats  *natsgo.Conn            // nil unless a backend is NATS
}

// open opens what the configured backends use. A NATS server that cannot
// be reached is an error that names the flag that needs it.
func (c *connections) open(ctx context.Context, cfg Config, log *slog.Logger) error {
	if user := cfg.backendUser(Redis); user != "" {
		rdb, err := redisconn.New(redisconn.Options{
			Addr:     cfg.Redis,
			Name:     "ordersystem-" + cfg.NodeID,
			PoolSize: predis.DefaultPoolSize, // the journal's group committer is its busiest user
		})
		if err != nil {
			return fmt.Errorf("%s: --redis: %w", user, err)
		}
		c.redis = rdb
	}
	if user := cfg.backendUser(NATS); user != "" {
		nc, err := natsconn.Connect(ctx, natsconn.Options{URL: cfg.NATS, Name: "ordersystem-" + cfg.NodeID, Logger: log})
		if err != nil {
			return fmt.Errorf("%s: connect to NATS: %w (is NATS with JetStream running at --nats=%s?)", user, err, redact.URL(cfg.NATS))
		}
		c.nats = nc
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

// openPersistence opens the configured persistence backend on the node's
// connections; an unreachable server is an error that names it and the
// flag to change.
func openPersistence(ctx context.Context, cfg Config, conns connections, log *slog.Logger) (persistence.Backend, error) {
	switch cfg.Persistence {
	case Redis:
		b, err := predis.New(ctx, predis.Options{Client: conns.redis, Addr: cfg.Redis, WaitReplicas: cfg.RedisWaitReplicas})
		if err != nil {
			return nil, fmt.Errorf("--persistence=redis: %w (is Redis running at --redis=%s?)", err, redact.URL(cfg.Redis))
		}
		return b, nil
	case NATS:
		b, err := pnats.New(ctx, pnats.Options{Conn: conns.nats, URL: cfg.NATS, Replicas: cfg.NATSReplicas, Storage: natsStorage(cfg.NATSStorage), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--persistence=nats: %w (is NATS with JetStream running at --nats=%s?)", err, redact.URL(cfg.NATS))
		}
		return b, nil
	default:
		return pmemory.New(), nil
	}
}

// openTransport opens the configured event transport on the node's
// connections.
func openTransport(ctx context.Context, cfg Config, conns connections, log *slog.Logger) (transport.Transport, error) {
	switch cfg.Transport {
	case Redis:
		t, err := tredis.New(ctx, tredis.Options{Client: conns.redis, Addr: cfg.Redis, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--transport=redis: %w (is Redis running at --redis=%s?)", err, redact.URL(cfg.Redis))
		}
		return t, nil
	case NATS:
		t, err := tnats.New(ctx, tnats.Options{Conn: conns.nats, URL: cfg.NATS, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--transport=nats: %w (is NATS with JetStream running at --nats=%s?)", err, redact.URL(cfg.NATS))
		}
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
