package codec_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

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
// metadata, one after another (more items, another kind), also from many
// goroutines at once.
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

// TestMarshalEventOfAnyValues: for any event, of any kind or none, with any
// values (negative quantities and prices, times before the epoch or zero,
// text that is not UTF-8, which proto.Marshal refuses), MarshalEvent gives
// what proto.Marshal gives: the same bytes, or an error.
func TestMarshalEventOfAnyValues(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		str := func(label string) string {
			if rapid.IntRange(0, 9).Draw(t, label+"Broken") == 0 {
				return text(t, label) + string([]byte{rapid.SampledFrom([]byte{0x80, 0xff, 0xc3}).Draw(t, label+"Byte")})
			}
			return text(t, label)
		}
		var e order.Event
		switch rapid.IntRange(0, 7).Draw(t, "kind") {
		case 0:
			e = nil
		case 1:
			e = &order.Paid{PaymentMethod: str("method")} // not a value: EventToProto gives it no payload
		case 2:
			var items []order.Item
			for range rapid.IntRange(0, 3).Draw(t, "items") {
				items = append(items, order.Item{ProductID: str("product"), Name: str("name"),
					Quantity: rapid.Int32().Draw(t, "quantity"), UnitPrice: order.Cents(rapid.Int64().Draw(t, "price"))})
			}
			e = order.Created{CustomerID: str("customer"), Items: items, Total: order.Cents(rapid.Int64().Draw(t, "total"))}
		case 3:
			e = order.Paid{PaymentMethod: str("method")}
		case 4:
			e = order.Cancelled{Reason: str("reason"), At: time.Unix(0, 0)}
		default:
			e = drawEvent(t)
		}
		id, v, cmd, fp := str("orderID"), rapid.Uint64().Draw(t, "version"), str("command"), str("fingerprint")
		tp, ts := "", ""
		if rapid.Bool().Draw(t, "traced") {
			tp, ts = str("traceParent"), str("traceState")
		}
		pe := codec.EventToProto(id, v, cmd, fp, e)
		if tp != "" {
			pe.Metadata = &orderpb.EventMetadata{TraceParent: tp, TraceState: ts}
		}
		want, wantErr := proto.Marshal(pe)
		got, err := codec.MarshalEvent(id, v, cmd, fp, tp, ts, e)
		if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("%#v: MarshalEvent % x, %v; proto.Marshal % x, %v", e, got, err, want, wantErr)
		}
	})
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
