package codec_test

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
)

// text draws a string of pieces that make encodings interesting: empty,
// multi-byte, long enough for a two-byte length.
func text(t *rapid.T, label string) string {
	pieces := rapid.SliceOfN(rapid.SampledFrom([]string{"", "a", "c-1", "é", "日本", "🙂", "-", "_", "x\x00y", string(make([]byte, 130))}), 0, 4).Draw(t, label)
	s := ""
	for _, p := range pieces {
		s += p
	}
	return s
}

func drawEvent(t *rapid.T) order.Event {
	at := time.Unix(rapid.Int64Range(-62135596800, 253402300799).Draw(t, "sec"), int64(rapid.IntRange(0, 999_999_999).Draw(t, "nanos"))).UTC()
	if rapid.Bool().Draw(t, "zeroTime") {
		at = time.Time{}
	}
	switch rapid.IntRange(0, 4).Draw(t, "kind") {
	case 0:
		var items []order.Item
		for range rapid.IntRange(0, 4).Draw(t, "items") {
			items = append(items, order.Item{ProductID: text(t, "product"), Name: text(t, "name"),
				Quantity: rapid.Int32().Draw(t, "quantity"), UnitPrice: order.Cents(rapid.Int64().Draw(t, "price"))})
		}
		return order.Created{CustomerID: text(t, "customer"), Items: items, Total: order.Cents(rapid.Int64().Draw(t, "total")), At: at}
	case 1:
		return order.Paid{PaymentMethod: text(t, "method"), At: at}
	case 2:
		return order.Shipped{TrackingNumber: text(t, "tracking"), At: at}
	case 3:
		return order.Delivered{At: at}
	default:
		return order.Cancelled{Reason: text(t, "reason"), At: at}
	}
}

func drawEncoded(t *rapid.T) ([]byte, order.Event, string, uint64) {
	e := drawEvent(t)
	id, v := text(t, "orderID"), rapid.Uint64().Draw(t, "version")
	tp := ""
	if rapid.Bool().Draw(t, "traced") {
		tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	}
	b, err := codec.MarshalEvent(id, v, text(t, "command"), text(t, "fingerprint"), tp, text(t, "traceState"), e)
	if err != nil {
		t.Fatal(err)
	}
	return b, e, id, v
}

// sameAnswer fails unless DecodeHead and the protobuf runtime give the same
// head, or both an error.
func sameAnswer(t interface {
	Fatalf(string, ...any)
}, b []byte) {
	got, gotErr := codec.DecodeHead(b)
	want, wantErr := codec.DecodeHeadProto(b)
	if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("% x: DecodeHead gives %#v, %v; protobuf %#v, %v", b, got, gotErr, want, wantErr)
	}
	if fast, ok := codec.DecodeHeadFast(b); ok && !reflect.DeepEqual(fast, want) {
		t.Fatalf("% x: the one-pass read gives %#v; protobuf %#v", b, fast, want)
	}
}

// TestDecodeHeadIsProtoUnmarshal: every event MarshalEvent writes is read
// in one pass, to what the protobuf runtime gives (the event without a
// creation's items, which are counted).
func TestDecodeHeadIsProtoUnmarshal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b, e, id, v := drawEncoded(t)
		fast, ok := codec.DecodeHeadFast(b)
		if !ok {
			t.Fatalf("% x (%#v) was not read in one pass", b, e)
		}
		want, err := codec.DecodeHeadProto(b)
		if err != nil || !reflect.DeepEqual(fast, want) {
			t.Fatalf("one pass %#v; protobuf %#v, %v", fast, want, err)
		}
		if fast.OrderID != id || fast.Version != v {
			t.Fatalf("read %s:%d, want %s:%d", fast.OrderID, fast.Version, id, v)
		}
		if c, ok := e.(order.Created); ok {
			if fast.Items != len(c.Items) {
				t.Fatalf("%d items counted, want %d", fast.Items, len(c.Items))
			}
			c.Items = nil
			e = c
		}
		if !reflect.DeepEqual(fast.Event, e) {
			t.Fatalf("read %#v, want %#v", fast.Event, e)
		}
	})
}

// TestDecodeHeadOfDamagedBytes: bytes that are not in MarshalEvent's form
// (flipped, cut, inserted bytes, a field repeated, an unknown field, a
// second payload) get the protobuf runtime's answer.
func TestDecodeHeadOfDamagedBytes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b, _, _, _ := drawEncoded(t)
		for range rapid.IntRange(1, 3).Draw(t, "damages") {
			switch rapid.IntRange(0, 5).Draw(t, "damage") {
			case 0:
				if len(b) > 0 {
					i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
					b[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "xor"))
				}
			case 1:
				b = b[:rapid.IntRange(0, len(b)).Draw(t, "cut")]
			case 2:
				i := rapid.IntRange(0, len(b)).Draw(t, "at")
				ins := rapid.SliceOfN(rapid.Byte(), 1, 6).Draw(t, "insert")
				b = append(b[:i:i], append(ins, b[i:]...)...)
			case 3: // a field again: a string, a varint or a message
				num := protowire.Number(rapid.SampledFrom([]int{1, 2, 3, 5, 10, 11, 12, 13, 14}).Draw(t, "field"))
				if num == 2 {
					b = protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), rapid.Uint64().Draw(t, "value"))
				} else {
					b = protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), []byte(text(t, "value")))
				}
			case 4: // an unknown field
				num := protowire.Number(rapid.IntRange(6, 200).Draw(t, "unknown"))
				b = protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), 7)
			case 5: // a payload of another kind
				other, _, _, _ := drawEncoded(t)
				b = append(b, other...)
			}
		}
		sameAnswer(t, b)
	})
}

// FuzzDecodeHead: for any bytes, DecodeHead and the protobuf runtime agree
// (go test -fuzz FuzzDecodeHead ./codec/ explores further).
func FuzzDecodeHead(f *testing.F) {
	at := time.Date(2026, 12, 6, 1, 2, 3, 4, time.UTC)
	for _, e := range []order.Event{
		order.Created{CustomerID: "c-1", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 5}}, Total: 5, At: at},
		order.Paid{PaymentMethod: "card", At: at}, order.Shipped{TrackingNumber: "T", At: at},
		order.Delivered{At: at}, order.Cancelled{Reason: "r", At: at},
	} {
		b, err := codec.MarshalEvent("o-1", 3, "cmd", "fp", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v", e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { sameAnswer(t, b) })
}

// TestDecodeHeadOfAnyValues: events in MarshalEvent's form but with values
// it never writes (any varint where a time's seconds and nanoseconds, a
// version or a total go, any bytes where text goes) get the protobuf
// runtime's answer.
func TestDecodeHeadOfAnyValues(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		anyText := func(label string) []byte {
			if rapid.Bool().Draw(t, label+"Valid") {
				return []byte(text(t, label))
			}
			return rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, label)
		}
		varint := func(label string) uint64 {
			return rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(0, 1<<31+5), rapid.Just(uint64(1<<63))).Draw(t, label)
		}
		stamp := func(num protowire.Number) []byte {
			var ts []byte
			if rapid.Bool().Draw(t, "hasSec") {
				ts = protowire.AppendVarint(protowire.AppendTag(ts, 1, protowire.VarintType), varint("sec"))
			}
			if rapid.Bool().Draw(t, "hasNanos") {
				ts = protowire.AppendVarint(protowire.AppendTag(ts, 2, protowire.VarintType), varint("nanos"))
			}
			return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), ts)
		}
		kind := protowire.Number(rapid.IntRange(10, 14).Draw(t, "kind"))
		var p []byte
		switch kind {
		case 10:
			p = protowire.AppendBytes(protowire.AppendTag(p, 1, protowire.BytesType), anyText("customer"))
			for range rapid.IntRange(0, 3).Draw(t, "items") {
				p = protowire.AppendBytes(protowire.AppendTag(p, 2, protowire.BytesType), anyText("item"))
			}
			p = protowire.AppendVarint(protowire.AppendTag(p, 3, protowire.VarintType), varint("total"))
			p = append(p, stamp(4)...)
		case 13:
			p = stamp(1)
		default:
			p = protowire.AppendBytes(protowire.AppendTag(p, 1, protowire.BytesType), anyText("text"))
			p = append(p, stamp(2)...)
		}
		b := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), anyText("orderID"))
		b = protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), varint("version"))
		b = protowire.AppendBytes(protowire.AppendTag(b, 3, protowire.BytesType), anyText("command"))
		b = protowire.AppendBytes(protowire.AppendTag(b, kind, protowire.BytesType), p)
		sameAnswer(t, b)
	})
}
