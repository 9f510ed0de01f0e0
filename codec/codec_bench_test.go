package codec

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
)

func benchCreated() order.Created {
	return order.Created{CustomerID: "customer-123", Total: 105997, At: time.Now(), Items: []order.Item{
		{ProductID: "laptop-1", Name: "Gaming Laptop", Quantity: 1, UnitPrice: 99999},
		{ProductID: "mouse-1", Name: "Wireless Mouse", Quantity: 2, UnitPrice: 2999},
	}}
}

// BenchmarkEncodeEvent: domain event -> wire envelope -> protobuf bytes, as
// the order actor does before each append.
func BenchmarkEncodeEvent(b *testing.B) {
	e := benchCreated()
	b.ReportAllocs()
	for b.Loop() {
		data, err := proto.Marshal(EventToProto("0b7e4c1e-9d3c-4a59-8f0b-2d1e6f3a7c55", 1, "cmd-1", "fp", e))
		if err != nil || len(data) == 0 {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEvent: journal record -> envelope -> domain event, as an
// activation, the outbox and the read model do for each event.
func BenchmarkDecodeEvent(b *testing.B) {
	id := "0b7e4c1e-9d3c-4a59-8f0b-2d1e6f3a7c55"
	data, err := proto.Marshal(EventToProto(id, 1, "cmd-1", "fp", benchCreated()))
	if err != nil {
		b.Fatal(err)
	}
	r := persistence.Record{StreamID: id, Version: 1, Type: "OrderCreated", Data: data}
	b.ReportAllocs()
	for b.Loop() {
		pe, err := DecodeRecord(r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := EventFromProto(pe); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeHead: the read model's decoding of each event it consumes,
// in one pass (DecodeHead) and with the protobuf runtime.
func BenchmarkDecodeHead(b *testing.B) {
	data, err := MarshalEvent("0b7e4c1e9d3c4a59", 1, "0b7e4c1e9d3c4a598f0b2d1e6f3a7c55", "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", benchCreated())
	if err != nil {
		b.Fatal(err)
	}
	for _, way := range []struct {
		name   string
		decode func([]byte) (Head, error)
	}{{"one-pass", DecodeHead}, {"protobuf", decodeHeadProto}} {
		b.Run(way.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if h, err := way.decode(data); err != nil || h.Items != 2 {
					b.Fatal(err)
				}
			}
		})
	}
}
