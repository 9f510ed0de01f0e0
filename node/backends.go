package node

import (
	"context"
	"fmt"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/persistence"
	pmemory "github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/transport"
	tmemory "github.com/ordersystem/ordersystem/transport/memory"
)

type actorsKind = pcluster.Kind

func openPersistence(ctx context.Context, cfg Config) (persistence.Backend, error) {
	switch cfg.Persistence {
	case InMemory:
		return pmemory.New(), nil
	default:
		return nil, fmt.Errorf("--persistence=%s: not available yet", cfg.Persistence)
	}
}

func openTransport(ctx context.Context, cfg Config) (transport.Transport, error) {
	switch cfg.Transport {
	case InMemory:
		return tmemory.New(tmemory.Options{})
	default:
		return nil, fmt.Errorf("--transport=%s: not available yet", cfg.Transport)
	}
}
