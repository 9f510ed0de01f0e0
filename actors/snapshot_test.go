package actors_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

type fromRecorder struct {
	actors.Journal
	lastFrom atomic.Uint64
}

func (r *fromRecorder) Load(ctx context.Context, id string, from uint64) ([]persistence.Record, error) {
	r.lastFrom.Store(from)
	return r.Journal.Load(ctx, id, from)
}

func startWith(t testing.TB, cfg actors.OrderConfig) *actors.OrderClient {
	t.Helper()
	n, err := cluster.Start(cluster.Config{NodeID: "test-node", Kinds: []*pcluster.Kind{actors.NewOrderKind(cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })
	return actors.NewOrderClient(n)
}

func TestSnapshotsShortenActivation(t *testing.T) {
	mem := memory.New()
	j := &fromRecorder{Journal: mem}
	c := startWith(t, actors.OrderConfig{Journal: j, Snapshots: mem, SnapshotEvery: 2, NodeID: "test-node", IdleTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	send := func(msg proto.Message) *orderpb.Reply {
		t.Helper()
		r, err := ask(ctx, c, "s1", msg)
		if err != nil || r.GetError() != nil {
			t.Fatalf("send: %v %v", err, r.GetError())
		}
		return r
	}
	send(createCmd("c1"))
	send(payCmd("c2"))
	send(shipCmd("c3"))
	snap, ok, err := mem.LoadSnapshot(ctx, "s1")
	if err != nil || !ok || snap.Version != 2 {
		t.Fatalf("snapshot after 3 events: %+v ok=%v err=%v, want version 2", snap, ok, err)
	}
	// After passivation the actor starts from the snapshot and reads only
	// the tail (from version 3).
	deadline := time.Now().Add(5 * time.Second)
	for j.lastFrom.Load() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("re-activation read from version %d, want 3", j.lastFrom.Load())
		}
		time.Sleep(150 * time.Millisecond)
		r := send(&orderpb.GetOrder{})
		if r.GetOrder().GetStatus() != orderpb.OrderStatus_ORDER_STATUS_SHIPPED || r.GetOrder().GetVersion() != 3 || r.GetOrder().GetTotalCents() != 105997 {
			t.Fatalf("state after re-activation: %v", r.GetOrder())
		}
	}
	// Command ids kept in the snapshot still deduplicate.
	if r := send(payCmd("c2")); !r.GetReplayed() {
		t.Fatalf("retry of a command inside the snapshot not recognised: %v", r)
	}
}

// longStream journals an order with n events (a create and n-1 payments:
// Evolve folds facts without judging them).
func longStream(b testing.TB, j interface {
	Append(ctx context.Context, id string, exp uint64, rs []persistence.Record) (uint64, error)
}, id string, n int) {
	ctx := context.Background()
	recs := make([]persistence.Record, 0, n)
	for v := 1; v <= n; v++ {
		var e order.Event = order.Paid{PaymentMethod: "card", At: time.Now()}
		if v == 1 {
			e = order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 100}}, Total: 100, At: time.Now()}
		}
		data, _ := proto.Marshal(codec.EventToProto(id, uint64(v), fmt.Sprint("cmd", v), "f", e))
		recs = append(recs, persistence.Record{Type: e.EventType(), Data: data})
	}
	if _, err := j.Append(ctx, id, 0, recs); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkActivation1000Events: activation (load + fold + first reply) of an
// order with 1,000 events, without and with a snapshot at version 1,000, on
// the in-memory journal and on Redis.
func BenchmarkActivation1000Events(b *testing.B) {
	type store interface {
		actors.Journal
		actors.Snapshots
		Append(ctx context.Context, id string, exp uint64, rs []persistence.Record) (uint64, error)
	}
	backends := map[string]func(b *testing.B) store{
		"memory": func(*testing.B) store { return memory.New() },
		"redis": func(b *testing.B) store {
			addr, prefix := testservers.Redis(b), fmt.Sprintf("bench-%d:", time.Now().UnixNano())
			be, err := predis.New(context.Background(), predis.Options{Addr: addr, Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_ = be.Close()
				rdb := goredis.NewClient(&goredis.Options{Addr: addr})
				defer rdb.Close()
				ctx := context.Background()
				iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
				for iter.Next(ctx) {
					rdb.Del(ctx, iter.Val())
				}
			})
			return be
		},
	}
	for _, name := range []string{"memory", "redis"} {
		for _, withSnap := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/snapshot=%v", name, withSnap), func(b *testing.B) {
				st := backends[name](b)
				cfg := actors.OrderConfig{Journal: st, NodeID: "bench", IdleTimeout: time.Hour}
				if withSnap {
					cfg.Snapshots, cfg.SnapshotEvery = st, 100
				}
				c := startWith(b, cfg)
				ctx := context.Background()
				ids := make([]string, b.N)
				for i := range ids {
					ids[i] = fmt.Sprint("long-", i)
					longStream(b, st, ids[i], 1000)
					if withSnap {
						state := order.State{ID: ids[i]}
						recs, _ := st.Load(ctx, ids[i], 1)
						for _, r := range recs {
							pe, _ := codec.DecodeRecord(r)
							e, _ := codec.EventFromProto(pe)
							state = order.Evolve(state, e)
						}
						data, _ := proto.Marshal(&orderpb.OrderSnapshot{Order: codec.StateToProto(&state)})
						_ = st.SaveSnapshot(ctx, persistence.Snapshot{StreamID: ids[i], Version: 1000, Data: data})
					}
				}
				b.ResetTimer()
				for i := range b.N {
					r, err := c.Get(ctx, ids[i])
					if err != nil || r.GetOrder().GetVersion() != 1000 {
						b.Fatalf("activation: %v %v", err, r)
					}
				}
			})
		}
	}
}
