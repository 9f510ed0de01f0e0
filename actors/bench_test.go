package actors_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
)

func benchNode(b *testing.B, j actors.Journal) *actors.OrderClient {
	b.Helper()
	kind := actors.NewOrderKind(actors.OrderConfig{Journal: j, NodeID: "bench", IdleTimeout: time.Hour})
	n, err := cluster.Start(cluster.Config{NodeID: "bench", Kinds: []*pcluster.Kind{kind}, LocalCalls: []string{actors.OrderKind}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Stop(false) })
	return actors.NewOrderClient(n)
}

// BenchmarkCreateOrder: the create path through the cluster client, a new
// order actor activation, decide, journal append (in memory) and reply.
func BenchmarkCreateOrder(b *testing.B) {
	c := benchNode(b, memory.New())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer() // not the node's start
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		prefix := fmt.Sprintf("%p", pb)
		for pb.Next() {
			i++
			r, err := c.Command(ctx, fmt.Sprintf("%s-%d", prefix, i), createCmd(fmt.Sprint(i)))
			if err != nil || r.GetError() != nil {
				b.Fatalf("create: %v %v", err, r.GetError())
			}
		}
	})
}

// BenchmarkGetOrder: a query to a live (activated) order actor.
func BenchmarkGetOrder(b *testing.B) {
	c := benchNode(b, memory.New())
	ctx := context.Background()
	if r, err := c.Command(ctx, "hot", createCmd("c")); err != nil || r.GetError() != nil {
		b.Fatal(err, r.GetError())
	}
	b.ReportAllocs()
	b.ResetTimer() // not the node's start
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r, err := c.Get(ctx, "hot"); err != nil || r.GetError() != nil {
				b.Fatal(err, r.GetError())
			}
		}
	})
}

// BenchmarkIdleActorMemory reports the heap an activated, idle order actor
// costs (bytes/actor): orders are journaled first, then activated with a
// query each, and the heap growth is divided by their number.
func BenchmarkIdleActorMemory(b *testing.B) {
	const n = 20000
	for range b.N {
		j := memory.New()
		ctx := context.Background()
		for i := range n {
			ev := codec.EventToProto(fmt.Sprint("m", i), 1, "c", "f", order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 100}}, Total: 100, At: time.Now()})
			data, _ := proto.Marshal(ev)
			if _, err := j.Append(ctx, fmt.Sprint("m", i), 0, []persistence.Record{{Type: "OrderCreated", Data: data}}); err != nil {
				b.Fatal(err)
			}
		}
		c := benchNode(b, j)
		// Warm the cluster machinery with one activation.
		if _, err := c.Get(ctx, "m0"); err != nil {
			b.Fatal(err)
		}
		before := heap()
		for i := 1; i < n; i++ {
			if r, err := c.Get(ctx, fmt.Sprint("m", i)); err != nil || r.GetError() != nil {
				b.Fatal(err, r.GetError())
			}
		}
		after := heap()
		b.ReportMetric(float64(after-before)/float64(n-1), "bytes/actor")
	}
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
