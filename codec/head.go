package codec

import (
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Head is what the read model keeps of an encoded orderpb.Event: DecodeHead's
// result.
type Head struct {
	OrderID string
	Version uint64
	// Event is the domain event, without a creation's items (Items counts
	// them); nil when the envelope carries no event.
	Event order.Event
	Items int
	// TraceParent and TraceState are the event's trace context (its
	// metadata), empty when it has none.
	TraceParent, TraceState string
}

// DecodeHead decodes an encoded orderpb.Event as its Head: what decoding it
// as an orderpb.EventHead (with HeadOptions) and EventFromHead give, and
// the same error when the bytes are not an event. Bytes in the form
// MarshalEvent writes (each field at most once, the fields Event defines)
// are read in one pass without the protobuf runtime, allocating only the
// strings kept; anything else (a repeated field, which protobuf merges, an
// unknown field, a wrong wire type, text that is not UTF-8, a broken
// length) is decoded by the protobuf runtime, so that both ways always give
// the same answer (TestDecodeHeadIsProtoUnmarshal, FuzzDecodeHead).
func DecodeHead(b []byte) (Head, error) {
	if h, ok := decodeHeadFast(b); ok {
		return h, nil
	}
	return decodeHeadProto(b)
}

// decodeHeadProto is DecodeHead with the protobuf runtime.
func decodeHeadProto(b []byte) (Head, error) {
	pe := &orderpb.EventHead{}
	if err := HeadOptions.Unmarshal(b, pe); err != nil {
		return Head{}, err
	}
	h := Head{OrderID: pe.GetOrderId(), Version: pe.GetVersion(),
		TraceParent: pe.GetMetadata().GetTraceParent(), TraceState: pe.GetMetadata().GetTraceState()}
	if pe.GetPayload() != nil {
		e, items, err := EventFromHead(pe)
		if err != nil {
			return Head{}, err
		}
		h.Event, h.Items = e, items
	}
	return h, nil
}

// Field numbers of orderpb.Event and of its payloads.
const (
	evOrderID, evVersion, evCommandID, evFingerprint, evMetadata = 1, 2, 3, 4, 5
	evCreated, evPaid, evShipped, evDelivered, evCancelled       = 10, 11, 12, 13, 14
)

// wire reads the fields of one message in the form MarshalEvent writes; a
// read that finds anything else sets bad, and every later read gives zero
// values.
type wire struct {
	b    []byte
	seen uint64 // bit n: field n was read
	bad  bool
}

// next returns the next field's number and wire type, false at the end of
// the message or when it is not in the expected form: a field number past
// 63 or read before.
func (w *wire) next() (protowire.Number, protowire.Type, bool) {
	if w.bad || len(w.b) == 0 {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(w.b)
	if n < 0 || num > 63 || w.seen&(1<<num) != 0 {
		w.bad = true
		return 0, 0, false
	}
	w.seen |= 1 << num
	w.b = w.b[n:]
	return num, typ, true
}

func (w *wire) bytes(typ protowire.Type) []byte {
	if typ != protowire.BytesType {
		w.bad = true
		return nil
	}
	v, n := protowire.ConsumeBytes(w.b)
	if n < 0 {
		w.bad = true
		return nil
	}
	w.b = w.b[n:]
	return v
}

func (w *wire) str(typ protowire.Type) string {
	v := w.bytes(typ)
	if w.bad || !utf8.Valid(v) {
		w.bad = true
		return ""
	}
	return string(v)
}

func (w *wire) varint(typ protowire.Type) uint64 {
	if typ != protowire.VarintType {
		w.bad = true
		return 0
	}
	v, n := protowire.ConsumeVarint(w.b)
	if n < 0 {
		w.bad = true
		return 0
	}
	w.b = w.b[n:]
	return v
}

// timestamp reads a google.protobuf.Timestamp as fromTS converts it.
func (w *wire) timestamp(typ protowire.Type) time.Time {
	t := wire{b: w.bytes(typ)}
	var sec, nanos uint64
	for num, typ, ok := t.next(); ok; num, typ, ok = t.next() {
		switch num {
		case 1:
			sec = t.varint(typ)
		case 2:
			nanos = t.varint(typ)
		default:
			t.bad = true
		}
	}
	w.bad = w.bad || t.bad
	return time.Unix(int64(sec), int64(int32(nanos))).UTC()
}

// skipped checks that b is a message (its fields well formed), as protobuf
// does for a field it skips; an item of a creation.
func (w *wire) skipped(typ protowire.Type) {
	b := w.bytes(typ)
	for len(b) > 0 && !w.bad {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			w.bad = true
			return
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			w.bad = true
			return
		}
		b = b[n:]
	}
}

// decodeHeadFast is DecodeHead for bytes in the form MarshalEvent writes;
// false for any other.
func decodeHeadFast(b []byte) (Head, bool) {
	var h Head
	w := wire{b: b}
	for num, typ, ok := w.next(); ok; num, typ, ok = w.next() {
		switch num {
		case evOrderID:
			h.OrderID = w.str(typ)
		case evVersion:
			h.Version = w.varint(typ)
		case evCommandID, evFingerprint:
			w.bytes(typ) // not kept; protobuf skips it unchecked too
		case evMetadata:
			m := wire{b: w.bytes(typ)}
			for num, typ, ok := m.next(); ok; num, typ, ok = m.next() {
				switch num {
				case 1:
					h.TraceParent = m.str(typ)
				case 2:
					h.TraceState = m.str(typ)
				default:
					m.bad = true
				}
			}
			w.bad = w.bad || m.bad
		case evCreated, evPaid, evShipped, evDelivered, evCancelled:
			if h.Event != nil {
				w.bad = true // a second payload: the last one wins in protobuf
				break
			}
			h.Event, h.Items = w.payload(num, typ)
		default:
			w.bad = true
		}
	}
	if w.bad {
		return Head{}, false
	}
	return h, true
}

// payload reads the payload message of field num.
func (w *wire) payload(num protowire.Number, typ protowire.Type) (order.Event, int) {
	p := wire{b: w.bytes(typ)}
	var text string
	var at time.Time
	var total uint64
	items := 0
	// Field numbers: the text (customer, payment method, tracking number,
	// reason) is 1 but in a delivery, which has none; the time is 2, but 4
	// in a creation and 1 in a delivery; a creation's items are 2, its
	// total 3.
	timeField := protowire.Number(2)
	switch num {
	case evCreated:
		timeField = 4
	case evDelivered:
		timeField = 1
	}
	for f, typ, ok := p.next(); ok; f, typ, ok = p.next() {
		switch {
		case f == timeField:
			at = p.timestamp(typ)
		case f == 1:
			text = p.str(typ)
		case num == evCreated && f == 2:
			p.seen &^= 1 << 2 // repeated
			p.skipped(typ)
			items++
		case num == evCreated && f == 3:
			total = p.varint(typ)
		default:
			p.bad = true
		}
	}
	if p.bad {
		w.bad = true
		return nil, 0
	}
	switch num {
	case evCreated:
		return order.Created{CustomerID: text, Total: order.Cents(int64(total)), At: at}, items
	case evPaid:
		return order.Paid{PaymentMethod: text, At: at}, 0
	case evShipped:
		return order.Shipped{TrackingNumber: text, At: at}, 0
	case evDelivered:
		return order.Delivered{At: at}, 0
	default:
		return order.Cancelled{Reason: text, At: at}, 0
	}
}

// Err is why h cannot be applied: nil, or the error EventFromHead gives for
// a head without an event.
func (h Head) Err() error {
	if h.Event == nil {
		_, err := laterEvent(nil, h.OrderID, h.Version)
		return err
	}
	return nil
}
