package codec_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

func TestEventMetadata(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	pe := codec.EventToProto("o1", 2, "c1", "f1", order.Paid{PaymentMethod: "card", At: time.Unix(1, 0)})
	plain, err := proto.Marshal(pe)
	if err != nil {
		t.Fatal(err)
	}
	if m := codec.EventMetadata(plain); m != nil {
		t.Fatalf("an event without metadata gave %v", m)
	}
	pe.Metadata = &orderpb.EventMetadata{TraceParent: tp, TraceState: "k=v"}
	data, err := proto.Marshal(pe)
	if err != nil {
		t.Fatal(err)
	}
	m := codec.EventMetadata(data)
	if m.GetTraceParent() != tp || m.GetTraceState() != "k=v" {
		t.Fatalf("EventMetadata = %v, want %s and k=v", m, tp)
	}
	if m := codec.EventMetadata(data[:len(data)-3]); m != nil && m.GetTraceParent() == tp {
		t.Fatalf("truncated bytes gave the whole metadata %v", m)
	}
	if m := codec.EventMetadata([]byte{0xff, 0xff, 0xff}); m != nil {
		t.Fatalf("garbage gave %v", m)
	}
}

func FuzzEventMetadata(f *testing.F) {
	pe := codec.EventToProto("o1", 1, "c1", "f1", order.Cancelled{Reason: "r", At: time.Unix(1, 0)})
	pe.Metadata = &orderpb.EventMetadata{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	data, _ := proto.Marshal(pe)
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := codec.EventMetadata(b)
		var full orderpb.Event
		if err := proto.Unmarshal(b, &full); err == nil && m.GetTraceParent() != full.GetMetadata().GetTraceParent() {
			t.Fatalf("EventMetadata says %q, proto.Unmarshal %q", m.GetTraceParent(), full.GetMetadata().GetTraceParent())
		}
	})
}
