package node_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// ownedGoroutines are the functions of the node's long-running loops; none
// may outlive the node.
var ownedGoroutines = []string{"actors.(*OutboxDriver).Run", "cluster.(*Member)"}

// noneLeft fails t if a goroutine of the node's own loops that was not
// running when before was taken still runs (protoactor's leftovers, which
// nothing can stop, are not checked here; see clustertest's TestMain).
func noneLeft(t *testing.T, before goleak.Option) {
	t.Helper()
	err := goleak.Find(before)
	if err == nil {
		return
	}
	for _, f := range ownedGoroutines {
		if strings.Contains(err.Error(), f) {
			t.Fatalf("a goroutine of %s outlived the node: %v", f, err)
		}
	}
}

// messages records the messages a node logs.
type messages struct {
	mu   sync.Mutex
	seen map[string]int
}

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *messages) Handle(_ context.Context, r slog.Record) error {
	m.mu.Lock()
	m.seen[r.Message]++
	m.mu.Unlock()
	return nil
}
func (m *messages) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m *messages) WithGroup(string) slog.Handler      { return m }
func (m *messages) count(msg string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[msg]
}

// A start that fails after the member joined (here: an unreadable HTTPS
// certificate) returns its error at once and leaves nothing running.
func TestStartFailureAfterJoinLeavesNothing(t *testing.T) {
	before := goleak.IgnoreCurrent()
	cfg := node.Default()
	cfg.Port, cfg.NodeID = 0, "n1"
	cfg.TLSCert, cfg.TLSKey = t.TempDir()+"/missing.crt", t.TempDir()+"/missing.key"
	done := make(chan error, 1)
	go func() {
		n, err := node.Start(context.Background(), cfg)
		if n != nil {
			t.Error("Start returned a node with its error")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "--tls-cert") {
			t.Fatalf("start with a missing certificate: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Start hangs after a failure past the join")
	}
	noneLeft(t, before)
}

// A shutdown while the node keeps failing to rejoin (its registry is gone)
// returns, and stops the rejoin and the outbox driver.
func TestShutdownDuringFailingRejoin(t *testing.T) {
	before := goleak.IgnoreCurrent()
	redis := testservers.StartRedis(t)
	logs := &messages{seen: map[string]int{}}
	cfg := node.Default()
	cfg.Port, cfg.RemotePort, cfg.NodeID = 0, 0, "n1"
	cfg.Cluster, cfg.Persistence, cfg.Redis = true, node.Redis, redis.Addr()
	cfg.LeaseTTL = time.Second
	cfg.DrainDelay = 0
	cfg.Logger = slog.New(logs)
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	redis.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for logs.count("rejoin failed") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("fenced %d times, %d failed rejoins in 20 s", logs.count("fenced: this node lost its cluster lease; stopping its actors and rejoining"), logs.count("rejoin failed"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- n.Shutdown(ctx) }()
	select {
	case err := <-shut:
		t.Logf("shutdown with the registry gone: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown during a failing rejoin hangs")
	}
	noneLeft(t, before)
}
