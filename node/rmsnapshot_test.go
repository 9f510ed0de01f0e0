package node_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/persistence"
)

// restoreLog records the attributes of every "read model rebuilt".
type restoreLog struct {
	mu  sync.Mutex
	got []map[string]slog.Value
}

func (r *restoreLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *restoreLog) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "read model rebuilt" {
		return nil
	}
	m := map[string]slog.Value{}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	return nil
}
func (r *restoreLog) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *restoreLog) WithGroup(string) slog.Handler      { return r }

func (r *restoreLog) last(t *testing.T) map[string]slog.Value {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		t.Fatal(`no "read model rebuilt" logged`)
	}
	return r.got[len(r.got)-1]
}

// clientView is what GET /orders and GET /stats show, without the time.
type clientView struct {
	Orders string
	Stats  struct {
		TotalOrders  int
		ByStatus     map[string]int
		TotalRevenue float64
	}
}

func (tn *testNode) clientView() clientView {
	tn.t.Helper()
	var v clientView
	v.Orders = string(tn.expect(tn.do("GET", "/orders?limit=1000", ""), http.StatusOK).body)
	tn.expect(tn.do("GET", "/stats", ""), http.StatusOK).json(tn.t, &v.Stats)
	return v
}

// TestRestartLoadsTheReadModelSnapshots: orders created and moved on, the
// read-model snapshots of every partition written, a few more commands
// (the tail), then a restart on the same backend: the read model (GET
// /orders, /stats) is identical, every partition came from its snapshot and
// only the tail was replayed. A start with the snapshots off replays
// everything and shows the same.
func TestRestartLoadsTheReadModelSnapshots(t *testing.T) {
	for _, kind := range []string{node.Redis, node.NATS} {
		t.Run(kind, func(t *testing.T) {
			logs := &restoreLog{}
			cfg := node.Default()
			cfg.Port, cfg.NodeID, cfg.HTTPHost, cfg.DrainDelay = 0, "n1", "127.0.0.1", 0
			cfg.OutboxInterval = 50 * time.Millisecond
			cfg.Logger = slog.New(logs)
			cfg.Transport, cfg.Persistence, cfg.Partitions = kind, kind, 4
			cfg.ReadModelSnapshotEvery, cfg.ReadModelSnapshotInterval = 5, 100*time.Millisecond
			if kind == node.Redis {
				cfg.Redis = testservers.StartRedis(t).Addr()
			} else {
				cfg.NATS = testservers.StartNATS(t).URL()
			}
			start := func(c node.Config) *testNode {
				t.Helper()
				n, err := node.Start(context.Background(), c)
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				tn := &testNode{t: t, n: n, base: "http://" + n.Addr()}
				t.Cleanup(func() { stop(t, tn) })
				return tn
			}
			tn := start(cfg)
			var ids []string
			for i := range 60 {
				id := tn.create(seedOrder)
				ids = append(ids, id)
				switch i % 4 {
				case 1:
					tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
				case 2:
					tn.expect(tn.do("POST", "/orders/"+id+"/cancel", ""), http.StatusOK)
				}
			}
			store := tn.n.Backend().(persistence.ReadModelSnapshots)
			ctx := context.Background()
			// settled waits until every partition has a snapshot less than
			// Every records behind its head (none is due any more), and
			// returns the records the snapshots do not cover.
			settled := func(what string) (uncovered uint64) {
				t.Helper()
				waitForLong(t, what, 20*time.Second, func() bool {
					uncovered = 0
					for p := range tn.n.Backend().Partitions() {
						m, ok, err := store.ReadModelSnapshotManifest(ctx, p)
						if err != nil || !ok {
							return false
						}
						behind, err := tn.n.Backend().Log(p).Behind(ctx, m.Position)
						if err != nil || behind >= uint64(cfg.ReadModelSnapshotEvery) {
							return false
						}
						uncovered += behind
					}
					return true
				})
				return uncovered
			}
			settled("every partition's snapshot within 5 records of its log's head")
			if !tn.metric("readmodel_snapshot_writes_total") || tn.metric("readmodel_snapshot_writes_total 0\n") {
				t.Fatal("no snapshot write counted")
			}
			// The tail: 4 creates and a payment.
			for range 4 {
				ids = append(ids, tn.create(seedOrder))
			}
			tn.expect(tn.do("POST", "/orders/"+ids[0]+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
			paid := func(id string) bool {
				var page []struct{ OrderID string }
				tn.expect(tn.do("GET", "/orders?status=Paid&limit=1000", ""), http.StatusOK).json(t, &page)
				for _, o := range page {
					if o.OrderID == id {
						return true
					}
				}
				return false
			}
			// The payment too: the read model applies events in commit
			// order per partition, not across them.
			waitFor(t, "the tail in /orders", func() bool {
				return tn.listed(ids[len(ids)-1]) && tn.readSide().TotalOrders == 64 && paid(ids[0])
			})
			tail := settled("the snapshots settled after the tail")
			want := tn.clientView()
			stop(t, tn)

			again := start(cfg)
			if got := again.clientView(); got.Orders != want.Orders || !equalJSON(t, got.Stats, want.Stats) {
				t.Fatalf("after the restart:\n%+v\nwant\n%+v", got, want)
			}
			l := logs.last(t)
			if l["snapshot_partitions"].Int64() != 4 || l["tail_records"].Uint64() != tail || tail >= 20 || l["snapshot_orders"].Int64()+int64(tail) < 64 {
				t.Fatalf("restart log %v: want 4 partitions from snapshots and a tail of the %d records they do not cover", l, tail)
			}
			stop(t, again)

			off := cfg
			off.ReadModelSnapshotEvery = 0
			full := start(off)
			if got := full.clientView(); got.Orders != want.Orders || !equalJSON(t, got.Stats, want.Stats) {
				t.Fatalf("full replay:\n%+v\nwant\n%+v", got, want)
			}
			if l := logs.last(t); l["snapshot_partitions"].Int64() != 0 || l["tail_records"].Uint64() != 60+15+15+5 {
				t.Fatalf("start with snapshots off, log %v: want every record replayed", l)
			}
		})
	}
}

func stop(t *testing.T, tn *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
