package readmodel_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/readmodel"
)

// memOrders is how many orders BenchmarkReadModelBytesPerOrder puts in the
// read model, whatever b.N is: enough for the map and the sorted index to be
// well past their small sizes, small enough to run in about a second.
const memOrders = 100_000

// BenchmarkReadModelBytesPerOrder measures the read model's memory per order:
// the live heap after runtime.GC() with memOrders orders created, minus the
// live heap of an empty model, divided by memOrders. Each order is one
// OrderCreated event with a fresh order id, a customer id like
// "customer-123" and the two items the load generator sends, so every
// string is its own allocation as when events are decoded from the wire.
//
//	go test -run x -bench ReadModelBytesPerOrder -benchtime 1x ./actors/projection/
//
// Sub-benchmarks: id=hex16 is the id POST /orders makes (16 hex digits),
// id=uuid a 36-character UUID for comparison.
func BenchmarkReadModelBytesPerOrder(b *testing.B) {
	for _, idf := range []struct {
		name string
		id   func() string
	}{{"id=hex16", hex16}, {"id=uuid", uuid4}} {
		b.Run(idf.name, func(b *testing.B) {
			var perOrder float64
			for b.Loop() {
				perOrder = readModelBytes(b, memOrders, idf.id)
			}
			b.ReportMetric(perOrder, "bytes/order")
			b.ReportMetric(float64(memOrders), "orders")
		})
	}
}

// readModelBytes applies n OrderCreated events to a new read model and
// returns the growth of the live heap per order.
func readModelBytes(b *testing.B, n int, id func() string) float64 {
	ctx := context.Background()
	items := []order.Item{
		{ProductID: "p-1", Name: "Laptop", Quantity: 1, UnitPrice: 99_999},
		{ProductID: "p-2", Name: "Mouse", Quantity: 2, UnitPrice: 2_999},
	}
	total := order.Cents(99_999 + 2*2_999)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	before := liveHeap()
	m := readmodel.New(nil)
	for i := range n {
		c := order.Created{
			CustomerID: "customer-" + strconv.Itoa(i%1000),
			Items:      items,
			Total:      total,
			At:         at.Add(time.Duration(i) * time.Microsecond),
		}
		ev := codec.EventToProto(id(), 1, "cmd-"+strconv.Itoa(i), "fp", c)
		if err := m.Apply(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	after := liveHeap()
	if got := m.Stats().TotalOrders; got != n {
		b.Fatalf("read model has %d orders, want %d", got, n)
	}
	runtime.KeepAlive(m)
	return float64(int64(after)-int64(before)) / float64(n)
}

// liveHeap is the heap in use by reachable objects, after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func hex16() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func uuid4() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
