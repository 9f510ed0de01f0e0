package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

// flakySecrets is a registry whose ClusterSecret fails its first fails
// calls, as a fresh replicated NATS cluster does while its buckets get a
// leader.
type flakySecrets struct {
	*registry.MemoryRegistry
	fails int
	calls int
}

func (f *flakySecrets) ClusterSecret(ctx context.Context) ([]byte, error) {
	f.calls++
	if f.calls <= f.fails {
		return nil, context.DeadlineExceeded
	}
	return f.MemoryRegistry.ClusterSecret(ctx)
}

func (f *flakySecrets) Close() error { return nil }

func TestFirstSecretReadWaitsForTheBackend(t *testing.T) {
	reg := &flakySecrets{MemoryRegistry: registry.NewMemoryRegistry(), fails: 3}
	n := &Node{registry: reg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := n.clusterSecret(context.Background())
	if err != nil || len(s) == 0 || reg.calls != 4 {
		t.Fatalf("clusterSecret = %d bytes, %v after %d calls; want the secret after 4", len(s), err, reg.calls)
	}
	// A later incarnation does not wait: it keeps the secret read before.
	reg.calls, reg.fails = 0, 100
	start := time.Now()
	again, err := n.clusterSecret(context.Background())
	if err != nil || string(again) != string(s) || reg.calls != 1 || time.Since(start) > time.Second {
		t.Fatalf("second read = %v after %d calls in %s; want the first secret at once", err, reg.calls, time.Since(start))
	}
	// A cancelled first read gives up with the registry's error.
	fresh := &Node{registry: &flakySecrets{MemoryRegistry: registry.NewMemoryRegistry(), fails: 100}, log: n.log}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := fresh.clusterSecret(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled first read: %v; want the registry's error", err)
	}
}
