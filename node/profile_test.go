package node_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/persistence"
)

// readyLine records the attributes of the node's "persistence ready" line.
type readyLine struct {
	mu    sync.Mutex
	attrs map[string]string
	lines int
}

func (h *readyLine) Enabled(context.Context, slog.Level) bool { return true }
func (h *readyLine) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "persistence ready" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines++
	h.attrs = map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		h.attrs[a.Key] = a.Value.String()
		return true
	})
	return nil
}
func (h *readyLine) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *readyLine) WithGroup(string) slog.Handler      { return h }

// TestDurabilityProfileReported starts a node on each kind of backend and
// checks the profile it names in its "persistence ready" line and in GET /
// (persistence.profile): durable only for a Redis with appendonly yes and
// appendfsync always and --redis-wait-replicas 1; default for the same
// server without the wait, for a Redis at appendfsync everysec with the
// wait, and for NATS with one replica; none in memory.
func TestDurabilityProfileReported(t *testing.T) {
	always := testservers.StartRedis(t) // appendonly yes, appendfsync always
	everysec := testservers.StartRedis(t)
	rc := goredis.NewClient(&goredis.Options{Addr: everysec.Addr()})
	if err := rc.ConfigSet(context.Background(), "appendfsync", "everysec").Err(); err != nil {
		t.Fatalf("CONFIG SET appendfsync everysec: %v", err)
	}
	_ = rc.Close()
	natsURL := testservers.StartNATS(t).URL()

	for _, c := range []struct {
		name   string
		mutate func(*node.Config)
		want   string
	}{
		{"redis always, wait 1", func(c *node.Config) { c.Persistence, c.Redis, c.RedisWaitReplicas = node.Redis, always.Addr(), 1 }, persistence.ProfileDurable},
		{"redis always, wait 0", func(c *node.Config) { c.Persistence, c.Redis = node.Redis, always.Addr() }, persistence.ProfileDefault},
		{"redis everysec, wait 1", func(c *node.Config) { c.Persistence, c.Redis, c.RedisWaitReplicas = node.Redis, everysec.Addr(), 1 }, persistence.ProfileDefault},
		{"nats R1", func(c *node.Config) { c.Persistence, c.NATS = node.NATS, natsURL }, persistence.ProfileDefault},
		{"memory", func(*node.Config) {}, persistence.ProfileNone},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &readyLine{}
			tn := startNode(t, c.mutate, func(cfg *node.Config) { cfg.Logger = slog.New(logs) })
			logs.mu.Lock()
			lines, got := logs.lines, logs.attrs["profile"]
			logs.mu.Unlock()
			if lines != 1 || got != c.want {
				t.Errorf("%d persistence ready lines, profile=%q; want one with profile=%q", lines, got, c.want)
			}
			var info struct {
				Persistence struct{ Name, Profile string }
			}
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			if info.Persistence.Profile != c.want {
				t.Errorf("GET / persistence %+v: profile %q, want %q", info.Persistence, info.Persistence.Profile, c.want)
			}
		})
	}
}
