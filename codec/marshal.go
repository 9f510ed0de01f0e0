package codec

import (
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// envelope holds the messages of one wire envelope, kept in a pool so that
// MarshalEvent allocates only the bytes it returns. An order actor builds
// an envelope only to marshal it: the journal keeps bytes.
type envelope struct {
	ev        orderpb.Event
	meta      orderpb.EventMetadata
	at        timestamppb.Timestamp
	created   orderpb.OrderCreated
	paid      orderpb.OrderPaid
	shipped   orderpb.OrderShipped
	delivered orderpb.OrderDelivered
	cancelled orderpb.OrderCancelled
	items     []orderpb.Item
	itemPtrs  []*orderpb.Item
	// The oneof wrappers, one per payload.
	wCreated   orderpb.Event_Created
	wPaid      orderpb.Event_Paid
	wShipped   orderpb.Event_Shipped
	wDelivered orderpb.Event_Delivered
	wCancelled orderpb.Event_Cancelled
}

var envelopes = sync.Pool{New: func() any { return new(envelope) }}

// MarshalEvent returns the bytes of EventToProto(orderID, version,
// commandID, fingerprint, e) with the trace context traceParent and
// traceState as its metadata (none when traceParent is empty): the same
// bytes proto.Marshal gives for it.
func MarshalEvent(orderID string, version uint64, commandID, fingerprint, traceParent, traceState string, e order.Event) ([]byte, error) {
	s := envelopes.Get().(*envelope)
	s.ev.OrderId, s.ev.Version, s.ev.CommandId, s.ev.Fingerprint = orderID, version, commandID, fingerprint
	if traceParent != "" {
		s.meta.TraceParent, s.meta.TraceState = traceParent, traceState
		s.ev.Metadata = &s.meta
	}
	switch e := e.(type) {
	case order.Created:
		s.created.CustomerId, s.created.TotalCents, s.created.CreatedAt = e.CustomerID, int64(e.Total), s.stamp(e.At)
		s.created.Items = s.itemsOf(e.Items)
		s.wCreated.Created = &s.created
		s.ev.Payload = &s.wCreated
	case order.Paid:
		s.paid.PaymentMethod, s.paid.PaidAt = e.PaymentMethod, s.stamp(e.At)
		s.wPaid.Paid = &s.paid
		s.ev.Payload = &s.wPaid
	case order.Shipped:
		s.shipped.TrackingNumber, s.shipped.ShippedAt = e.TrackingNumber, s.stamp(e.At)
		s.wShipped.Shipped = &s.shipped
		s.ev.Payload = &s.wShipped
	case order.Delivered:
		s.delivered.DeliveredAt = s.stamp(e.At)
		s.wDelivered.Delivered = &s.delivered
		s.ev.Payload = &s.wDelivered
	case order.Cancelled:
		s.cancelled.Reason, s.cancelled.CancelledAt = e.Reason, s.stamp(e.At)
		s.wCancelled.Cancelled = &s.cancelled
		s.ev.Payload = &s.wCancelled
	default:
		s.ev.Payload = nil
	}
	b, err := proto.Marshal(&s.ev)
	s.release()
	return b, err
}

// stamp is ts(t) in the envelope's own Timestamp.
func (s *envelope) stamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	s.at.Seconds, s.at.Nanos = t.Unix(), int32(t.Nanosecond())
	return &s.at
}

// itemsOf is itemsToProto(items) in the envelope's own Items.
func (s *envelope) itemsOf(items []order.Item) []*orderpb.Item {
	if len(items) == 0 {
		return nil
	}
	if cap(s.items) < len(items) {
		s.items = make([]orderpb.Item, len(items))
		s.itemPtrs = make([]*orderpb.Item, len(items))
	}
	ptrs := s.itemPtrs[:len(items)]
	for i, it := range items {
		p := &s.items[i]
		p.ProductId, p.Name, p.Quantity, p.UnitPriceCents = it.ProductID, it.Name, it.Quantity, int64(it.UnitPrice)
		ptrs[i] = p
	}
	return ptrs
}

// release clears what the envelope points to (so the pool keeps no
// strings, items or metadata alive) and puts it back. An envelope that held
// unusually many items is dropped instead.
func (s *envelope) release() {
	s.ev.Reset()
	s.meta.Reset()
	s.created.Reset()
	s.paid.Reset()
	s.shipped.Reset()
	s.delivered.Reset()
	s.cancelled.Reset()
	s.at.Reset()
	if cap(s.items) > 64 {
		return
	}
	for i := range s.items {
		s.items[i].Reset()
	}
	clear(s.itemPtrs)
	envelopes.Put(s)
}
