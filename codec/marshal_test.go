package codec_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

func someEvents(n int) []order.Event {
	at := time.Date(2026, 12, 3, 10, 0, 0, 987654321, time.UTC).Add(time.Duration(n) * time.Second)
	items := make([]order.Item, n%5+1)
	for i := range items {
		items[i] = order.Item{ProductID: fmt.Sprintf("p%d-%d", n, i), Name: "name", Quantity: int32(i + 1), UnitPrice: order.Cents(100*n + i)}
	}
	return []order.Event{
		order.Created{CustomerID: fmt.Sprintf("c%d", n), Items: items, Total: 42, At: at},
		order.Created{CustomerID: "no items, no time"},
		order.Paid{PaymentMethod: "card", At: at},
		order.Shipped{TrackingNumber: "T", At: at},
		order.Delivered{At: at},
		order.Delivered{},
		order.Cancelled{Reason: "r", At: at},
	}
}

// TestMarshalEventIsProtoMarshal: MarshalEvent gives the bytes of
// proto.Marshal of EventToProto, for every kind of event, with and without
// metadata, and whatever the pooled envelope held before (more items,
// another kind), also from many goroutines at once.
func TestMarshalEventIsProtoMarshal(t *testing.T) {
	traces := [][2]string{{"", ""}, {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=b"}, {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", ""}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := range 50 {
				for _, e := range someEvents(g*50 + n) {
					tc := traces[n%3]
					pe := codec.EventToProto("o-1", uint64(n+1), "cmd", "fp", e)
					if tc[0] != "" {
						pe.Metadata = &orderpb.EventMetadata{TraceParent: tc[0], TraceState: tc[1]}
					}
					want, err := proto.Marshal(pe)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := codec.MarshalEvent("o-1", uint64(n+1), "cmd", "fp", tc[0], tc[1], e)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%T (%d): MarshalEvent %x, %v; proto.Marshal %x", e, n, got, err, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkMarshalEvent(b *testing.B) {
	e := someEvents(1)[0]
	b.Run("EventToProto+Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(codec.EventToProto("o-1", 1, "cmd", "fp", e)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MarshalEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.MarshalEvent("o-1", 1, "cmd", "fp", "", "", e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
