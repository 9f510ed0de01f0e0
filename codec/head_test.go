package codec_test

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// TestEventHeadReadsEveryEvent decodes each kind of event as an EventHead:
// it is the event EventFromProto gives, but for a creation's items, which
// are counted.
func TestEventHeadReadsEveryEvent(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 123, time.UTC)
	items := []order.Item{{ProductID: "p1", Name: "Widget", Quantity: 2, UnitPrice: 1999}, {ProductID: "p2", Name: "Gadget", Quantity: 1, UnitPrice: 4999}, {ProductID: "p3", Quantity: 5, UnitPrice: 1}}
	for _, e := range []order.Event{
		order.Created{CustomerID: "c-1", Items: items, Total: 9002, At: at},
		order.Paid{PaymentMethod: "card", At: at},
		order.Shipped{TrackingNumber: "TRK-1", At: at},
		order.Delivered{At: at},
		order.Cancelled{Reason: "changed my mind", At: at},
	} {
		b, err := proto.Marshal(codec.EventToProto("o-1", 7, "cmd", "fp", e))
		if err != nil {
			t.Fatal(err)
		}
		h := &orderpb.EventHead{}
		if err := codec.HeadOptions.Unmarshal(b, h); err != nil {
			t.Fatalf("%s: %v", e.EventType(), err)
		}
		got, n, err := codec.EventFromHead(h)
		if err != nil || h.GetOrderId() != "o-1" || h.GetVersion() != 7 {
			t.Fatalf("%s: %v, %s:%d", e.EventType(), err, h.GetOrderId(), h.GetVersion())
		}
		want := e
		if c, ok := e.(order.Created); ok {
			if n != len(items) {
				t.Fatalf("created: %d items counted, want %d", n, len(items))
			}
			c.Items = nil
			want = c
		} else if n != 0 {
			t.Fatalf("%s: %d items", e.EventType(), n)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: head gives %#v, want %#v", e.EventType(), got, want)
		}
	}
	if _, _, err := codec.EventFromHead(&orderpb.EventHead{OrderId: "o-1", Version: 1}); err == nil {
		t.Fatal("a head without a payload converted")
	}
}

// TestEventHeadChecksSkippedFields: an item whose bytes are not a message
// fails the head's decoding too, though its fields are not read.
func TestEventHeadChecksSkippedFields(t *testing.T) {
	broken := protowire.AppendTag(nil, 1, protowire.BytesType)
	broken = protowire.AppendVarint(broken, 50) // a string said to be 50 bytes long, with 2
	broken = append(broken, "ab"...)
	created := protowire.AppendTag(nil, 2, protowire.BytesType)
	created = protowire.AppendBytes(created, broken)
	ev := protowire.AppendTag(nil, 10, protowire.BytesType)
	ev = protowire.AppendBytes(ev, created)
	if err := codec.HeadOptions.Unmarshal(ev, &orderpb.EventHead{}); err == nil {
		t.Fatal("an event with a truncated item decoded as a head")
	}
	if err := proto.Unmarshal(ev, &orderpb.Event{}); err == nil {
		t.Fatal("an event with a truncated item decoded")
	}
}

// TestEventHeadIsInStepWithEvent compares the schemas: every field of a
// head message is the field of the full message with the same number,
// name and kind, so that an Event always decodes as an EventHead.
func TestEventHeadIsInStepWithEvent(t *testing.T) {
	var check func(head, full protoreflect.MessageDescriptor)
	check = func(head, full protoreflect.MessageDescriptor) {
		fields := head.Fields()
		for i := range fields.Len() {
			hf := fields.Get(i)
			ff := full.Fields().ByNumber(hf.Number())
			if ff == nil || ff.Name() != hf.Name() || ff.Kind() != hf.Kind() || ff.Cardinality() != hf.Cardinality() ||
				(ff.ContainingOneof() == nil) != (hf.ContainingOneof() == nil) {
				t.Errorf("%s.%s (%d) has no like in %s", head.FullName(), hf.Name(), hf.Number(), full.FullName())
				continue
			}
			if hf.Kind() == protoreflect.MessageKind && hf.Message().FullName() != ff.Message().FullName() &&
				hf.Message().FullName() != (&orderpb.Skipped{}).ProtoReflect().Descriptor().FullName() {
				check(hf.Message(), ff.Message())
			}
		}
	}
	check((&orderpb.EventHead{}).ProtoReflect().Descriptor(), (&orderpb.Event{}).ProtoReflect().Descriptor())
}
