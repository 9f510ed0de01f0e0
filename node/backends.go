package node

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/persistence"
	pmemory "github.com/ordersystem/ordersystem/persistence/memory"
	pnats "github.com/ordersystem/ordersystem/persistence/nats"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/transport"
	tmemory "github.com/ordersystem/ordersystem/transport/memory"
	tnats "github.com/ordersystem/ordersystem/transport/nats"
	tredis "github.com/ordersystem/ordersystem/transport/redis"
)

// openPersistence connects the configured persistence backend; an
// unreachable server is an error that names it and the flag to change.
func openPersistence(ctx context.Context, cfg Config, log *slog.Logger) (persistence.Backend, error) {
	switch cfg.Persistence {
	case Redis:
		b, err := predis.New(ctx, predis.Options{Addr: cfg.Redis, WaitReplicas: cfg.RedisWaitReplicas})
		if err != nil {
			return nil, fmt.Errorf("--persistence=redis: %w (is Redis running at --redis=%s?)", err, redactURL(cfg.Redis))
		}
		return b, nil
	case NATS:
		b, err := pnats.New(ctx, pnats.Options{URL: cfg.NATS, Replicas: cfg.NATSReplicas, Storage: natsStorage(cfg.NATSStorage), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--persistence=nats: %w (is NATS with JetStream running at --nats=%s?)", err, redactURL(cfg.NATS))
		}
		return b, nil
	default:
		return pmemory.New(), nil
	}
}

// openTransport connects the configured event transport.
func openTransport(ctx context.Context, cfg Config, log *slog.Logger) (transport.Transport, error) {
	switch cfg.Transport {
	case Redis:
		t, err := tredis.New(ctx, tredis.Options{Addr: cfg.Redis, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--transport=redis: %w (is Redis running at --redis=%s?)", err, redactURL(cfg.Redis))
		}
		return t, nil
	case NATS:
		t, err := tnats.New(ctx, tnats.Options{URL: cfg.NATS, Name: "ordersystem-" + cfg.NodeID, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--transport=nats: %w (is NATS with JetStream running at --nats=%s?)", err, redactURL(cfg.NATS))
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
