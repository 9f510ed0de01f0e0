package codec

import (
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// MarshalEvent returns the bytes of EventToProto(orderID, version,
// commandID, fingerprint, e) with the trace context traceParent and
// traceState as its metadata (none when traceParent is empty): the same
// bytes proto.Marshal gives for it. It writes them itself, in one pass after
// measuring them, into a slice of exactly their size, without building the
// protobuf messages (an order actor builds an event's envelope only to
// marshal it); proto.Marshal writes known fields in field-number order and
// leaves out proto3 zero values, and so does this. A string that is not
// UTF-8, which proto.Marshal refuses, goes to proto.Marshal for its error
// (TestMarshalEventIsProtoMarshal, TestMarshalEventOfAnyValues).
func MarshalEvent(orderID string, version uint64, commandID, fingerprint, traceParent, traceState string, e order.Event) ([]byte, error) {
	w := eventWriter{orderID: orderID, version: version, commandID: commandID, fingerprint: fingerprint,
		traceParent: traceParent, traceState: traceState, e: e}
	if !w.utf8() {
		pe := EventToProto(orderID, version, commandID, fingerprint, e)
		if traceParent != "" {
			pe.Metadata = &orderpb.EventMetadata{TraceParent: traceParent, TraceState: traceState}
		}
		return proto.Marshal(pe)
	}
	b := w.append(make([]byte, 0, w.size()))
	return b, nil
}

// eventWriter writes one orderpb.Event in the wire format.
type eventWriter struct {
	orderID                 string
	version                 uint64
	commandID, fingerprint  string
	traceParent, traceState string
	e                       order.Event
}

// utf8 reports whether every string the event holds is UTF-8.
func (w *eventWriter) utf8() bool {
	ok := utf8.ValidString(w.orderID) && utf8.ValidString(w.commandID) && utf8.ValidString(w.fingerprint) &&
		utf8.ValidString(w.traceParent) && utf8.ValidString(w.traceState)
	switch e := w.e.(type) {
	case order.Created:
		ok = ok && utf8.ValidString(e.CustomerID)
		for _, it := range e.Items {
			ok = ok && utf8.ValidString(it.ProductID) && utf8.ValidString(it.Name)
		}
	case order.Paid:
		ok = ok && utf8.ValidString(e.PaymentMethod)
	case order.Shipped:
		ok = ok && utf8.ValidString(e.TrackingNumber)
	case order.Cancelled:
		ok = ok && utf8.ValidString(e.Reason)
	}
	return ok
}

func (w *eventWriter) size() int {
	n := sizeString(evOrderID, w.orderID) + sizeVarint(evVersion, w.version) +
		sizeString(evCommandID, w.commandID) + sizeString(evFingerprint, w.fingerprint)
	if w.traceParent != "" {
		n += sizeMessage(evMetadata, w.metadataSize())
	}
	if num, body := w.payload(); num != 0 {
		n += sizeMessage(num, body)
	}
	return n
}

func (w *eventWriter) append(b []byte) []byte {
	b = appendString(b, evOrderID, w.orderID)
	b = appendVarint(b, evVersion, w.version)
	b = appendString(b, evCommandID, w.commandID)
	b = appendString(b, evFingerprint, w.fingerprint)
	if w.traceParent != "" {
		b = protowire.AppendTag(b, evMetadata, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(w.metadataSize()))
		b = appendString(b, 1, w.traceParent)
		b = appendString(b, 2, w.traceState)
	}
	num, body := w.payload()
	if num == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(body))
	switch e := w.e.(type) {
	case order.Created:
		b = appendString(b, 1, e.CustomerID)
		for _, it := range e.Items {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(itemSize(it)))
			b = appendString(b, 1, it.ProductID)
			b = appendString(b, 2, it.Name)
			b = appendVarint(b, 3, uint64(int64(it.Quantity)))
			b = appendVarint(b, 4, uint64(it.UnitPrice))
		}
		b = appendVarint(b, 3, uint64(e.Total))
		b = appendTime(b, 4, e.At)
	case order.Paid:
		b = appendString(b, 1, e.PaymentMethod)
		b = appendTime(b, 2, e.At)
	case order.Shipped:
		b = appendString(b, 1, e.TrackingNumber)
		b = appendTime(b, 2, e.At)
	case order.Delivered:
		b = appendTime(b, 1, e.At)
	case order.Cancelled:
		b = appendString(b, 1, e.Reason)
		b = appendTime(b, 2, e.At)
	}
	return b
}

// metadataSize is the size of the orderpb.EventMetadata's body.
func (w *eventWriter) metadataSize() int {
	return sizeString(1, w.traceParent) + sizeString(2, w.traceState)
}

// payload returns the field number of the event's payload in the oneof
// (0 for an event EventToProto gives no payload) and the size of its body.
func (w *eventWriter) payload() (protowire.Number, int) {
	switch e := w.e.(type) {
	case order.Created:
		n := sizeString(1, e.CustomerID) + sizeVarint(3, uint64(e.Total)) + sizeTime(4, e.At)
		for _, it := range e.Items {
			n += sizeMessage(2, itemSize(it))
		}
		return evCreated, n
	case order.Paid:
		return evPaid, sizeString(1, e.PaymentMethod) + sizeTime(2, e.At)
	case order.Shipped:
		return evShipped, sizeString(1, e.TrackingNumber) + sizeTime(2, e.At)
	case order.Delivered:
		return evDelivered, sizeTime(1, e.At)
	case order.Cancelled:
		return evCancelled, sizeString(1, e.Reason) + sizeTime(2, e.At)
	}
	return 0, 0
}

// itemSize is the size of an orderpb.Item's body.
func itemSize(it order.Item) int {
	return sizeString(1, it.ProductID) + sizeString(2, it.Name) +
		sizeVarint(3, uint64(int64(it.Quantity))) + sizeVarint(4, uint64(it.UnitPrice))
}

// A zero time is no Timestamp (ts); any other is one, even at the epoch.
func sizeTime(num protowire.Number, t time.Time) int {
	if t.IsZero() {
		return 0
	}
	return sizeMessage(num, timestampSize(t))
}

func timestampSize(t time.Time) int {
	return sizeVarint(1, uint64(t.Unix())) + sizeVarint(2, uint64(t.Nanosecond()))
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(timestampSize(t)))
	b = appendVarint(b, 1, uint64(t.Unix()))
	return appendVarint(b, 2, uint64(t.Nanosecond()))
}

func sizeMessage(num protowire.Number, body int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(body)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
