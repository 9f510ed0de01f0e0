package codec

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTS(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func itemsToProto(items []order.Item) []*orderpb.Item {
	out := make([]*orderpb.Item, len(items))
	for i, it := range items {
		out[i] = &orderpb.Item{ProductId: it.ProductID, Name: it.Name, Quantity: it.Quantity, UnitPriceCents: int64(it.UnitPrice)}
	}
	return out
}

func itemsFromProto(items []*orderpb.Item) []order.Item {
	out := make([]order.Item, len(items))
	for i, it := range items {
		out[i] = order.Item{ProductID: it.GetProductId(), Name: it.GetName(), Quantity: it.GetQuantity(), UnitPrice: order.Cents(it.GetUnitPriceCents())}
	}
	return out
}

// CommandFromProto converts a wire command into a domain command.
func CommandFromProto(c *orderpb.Command) (order.Command, error) {
	switch x := c.GetCommand().(type) {
	case *orderpb.Command_Create:
		return order.Create{CustomerID: x.Create.GetCustomerId(), Items: itemsFromProto(x.Create.GetItems())}, nil
	case *orderpb.Command_Pay:
		return order.Pay{PaymentMethod: x.Pay.GetPaymentMethod()}, nil
	case *orderpb.Command_Ship:
		return order.Ship{TrackingNumber: x.Ship.GetTrackingNumber()}, nil
	case *orderpb.Command_Deliver:
		return order.Deliver{}, nil
	case *orderpb.Command_Cancel:
		return order.Cancel{Reason: x.Cancel.GetReason()}, nil
	default:
		return nil, &order.ValidationError{Field: "command", Reason: "is missing"}
	}
}

// EventToProto wraps a domain event in the wire envelope.
func EventToProto(orderID string, version uint64, commandID, fingerprint string, e order.Event) *orderpb.Event {
	pe := &orderpb.Event{OrderId: orderID, Version: version, CommandId: commandID, Fingerprint: fingerprint}
	switch e := e.(type) {
	case order.Created:
		pe.Payload = &orderpb.Event_Created{Created: &orderpb.OrderCreated{
			CustomerId: e.CustomerID, Items: itemsToProto(e.Items), TotalCents: int64(e.Total), CreatedAt: ts(e.At)}}
	case order.Paid:
		pe.Payload = &orderpb.Event_Paid{Paid: &orderpb.OrderPaid{PaymentMethod: e.PaymentMethod, PaidAt: ts(e.At)}}
	case order.Shipped:
		pe.Payload = &orderpb.Event_Shipped{Shipped: &orderpb.OrderShipped{TrackingNumber: e.TrackingNumber, ShippedAt: ts(e.At)}}
	case order.Delivered:
		pe.Payload = &orderpb.Event_Delivered{Delivered: &orderpb.OrderDelivered{DeliveredAt: ts(e.At)}}
	case order.Cancelled:
		pe.Payload = &orderpb.Event_Cancelled{Cancelled: &orderpb.OrderCancelled{Reason: e.Reason, CancelledAt: ts(e.At)}}
	}
	return pe
}

// EventFromProto unwraps the domain event of a wire envelope.
func EventFromProto(pe *orderpb.Event) (order.Event, error) {
	if x, ok := pe.GetPayload().(*orderpb.Event_Created); ok {
		c := x.Created
		return order.Created{CustomerID: c.GetCustomerId(), Items: itemsFromProto(c.GetItems()), Total: order.Cents(c.GetTotalCents()), At: fromTS(c.GetCreatedAt())}, nil
	}
	return laterEvent(pe.GetPayload(), pe.GetOrderId(), pe.GetVersion())
}

// HeadOptions decode an Event's bytes as an orderpb.EventHead: the fields
// the head leaves out are skipped.
var HeadOptions = proto.UnmarshalOptions{DiscardUnknown: true}

// EventFromHead unwraps the domain event of an EventHead (an Event read
// for the read model) and, for an order.Created, the number of its items:
// the head does not carry their contents, so the Created's Items are nil.
func EventFromHead(h *orderpb.EventHead) (e order.Event, items int, err error) {
	if x, ok := h.GetPayload().(*orderpb.EventHead_Created); ok {
		c := x.Created
		return order.Created{CustomerID: c.GetCustomerId(), Total: order.Cents(c.GetTotalCents()), At: fromTS(c.GetCreatedAt())}, len(c.GetItems()), nil
	}
	e, err = laterEvent(h.GetPayload(), h.GetOrderId(), h.GetVersion())
	return e, 0, err
}

// laterEvent converts the payload of an Event or an EventHead that is not a
// creation (the two share those payload messages).
func laterEvent(payload any, orderID string, version uint64) (order.Event, error) {
	switch x := payload.(type) {
	case *orderpb.Event_Paid:
		return paid(x.Paid), nil
	case *orderpb.EventHead_Paid:
		return paid(x.Paid), nil
	case *orderpb.Event_Shipped:
		return shipped(x.Shipped), nil
	case *orderpb.EventHead_Shipped:
		return shipped(x.Shipped), nil
	case *orderpb.Event_Delivered:
		return order.Delivered{At: fromTS(x.Delivered.GetDeliveredAt())}, nil
	case *orderpb.EventHead_Delivered:
		return order.Delivered{At: fromTS(x.Delivered.GetDeliveredAt())}, nil
	case *orderpb.Event_Cancelled:
		return cancelled(x.Cancelled), nil
	case *orderpb.EventHead_Cancelled:
		return cancelled(x.Cancelled), nil
	default:
		return nil, fmt.Errorf("event %s:%d has no payload", orderID, version)
	}
}

func paid(p *orderpb.OrderPaid) order.Event {
	return order.Paid{PaymentMethod: p.GetPaymentMethod(), At: fromTS(p.GetPaidAt())}
}

func shipped(p *orderpb.OrderShipped) order.Event {
	return order.Shipped{TrackingNumber: p.GetTrackingNumber(), At: fromTS(p.GetShippedAt())}
}

func cancelled(p *orderpb.OrderCancelled) order.Event {
	return order.Cancelled{Reason: p.GetReason(), At: fromTS(p.GetCancelledAt())}
}

// ErrCorrupt means a journal record cannot be read as the event it claims
// to be. Errors that match it are *CorruptError values.
var ErrCorrupt = errors.New("corrupt journal record")

// CorruptError names the journal record that cannot be read: its bytes are
// not an orderpb.Event, the envelope names another order or version, it
// carries no event, or its version does not follow the one before. Whoever
// can write the backend can cause it; the order it belongs to is
// quarantined, not the node.
type CorruptError struct {
	OrderID string
	Version uint64
	// Partition and Position are the record's place in its partition's log
	// (Position 0 when the record came from a stream read that does not
	// tell it).
	Partition int
	Position  uint64
	Err       error
}

func (e *CorruptError) Error() string {
	if e.Position != 0 {
		return fmt.Sprintf("journal record %s:%d (partition %d, position %d) is corrupt: %v", e.OrderID, e.Version, e.Partition, e.Position, e.Err)
	}
	return fmt.Sprintf("journal record %s:%d is corrupt: %v", e.OrderID, e.Version, e.Err)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// corrupt wraps why record r cannot be read.
func corrupt(r persistence.Record, err error) *CorruptError {
	return &CorruptError{OrderID: r.StreamID, Version: r.Version, Partition: r.Partition, Position: r.Position, Err: err}
}

// DecodeRecord decodes a journal record into its wire envelope, checking
// that the record and the envelope agree on order and version. Errors are
// *CorruptError values.
func DecodeRecord(r persistence.Record) (*orderpb.Event, error) {
	pe := &orderpb.Event{}
	if err := proto.Unmarshal(r.Data, pe); err != nil {
		return nil, corrupt(r, fmt.Errorf("not an event: %w", err))
	}
	if pe.GetOrderId() != r.StreamID || pe.GetVersion() != r.Version {
		return nil, corrupt(r, fmt.Errorf("the envelope says %s:%d", pe.GetOrderId(), pe.GetVersion()))
	}
	return pe, nil
}

// DecodeEvent decodes a journal record into its envelope and its domain
// event (DecodeRecord, then EventFromProto). Errors are *CorruptError values.
func DecodeEvent(r persistence.Record) (*orderpb.Event, order.Event, error) {
	pe, err := DecodeRecord(r)
	if err != nil {
		return nil, nil, err
	}
	e, err := EventFromProto(pe)
	if err != nil {
		return nil, nil, corrupt(r, err)
	}
	return pe, e, nil
}

// CheckFollows returns a *CorruptError unless record r, holding event e,
// can come right after version prev of its stream: its version is prev+1,
// and it is an OrderCreated exactly when it is the first.
func CheckFollows(r persistence.Record, prev uint64, e order.Event) error {
	if r.Version != prev+1 {
		return corrupt(r, fmt.Errorf("version %d does not follow version %d", r.Version, prev))
	}
	if _, isCreated := e.(order.Created); isCreated != (r.Version == 1) {
		return corrupt(r, fmt.Errorf("%s at version %d (an order starts with OrderCreated, once)", e.EventType(), r.Version))
	}
	return nil
}

// StateToProto renders the state as the wire order.
func StateToProto(s *order.State) *orderpb.Order {
	return &orderpb.Order{
		OrderId:        s.ID,
		CustomerId:     s.CustomerID,
		Items:          itemsToProto(s.Items),
		Status:         orderpb.OrderStatus(s.Status),
		TotalCents:     int64(s.Total),
		Version:        s.Version,
		CreatedAt:      ts(s.CreatedAt),
		PaymentMethod:  s.PaymentMethod,
		PaidAt:         ts(s.PaidAt),
		TrackingNumber: s.TrackingNumber,
		ShippedAt:      ts(s.ShippedAt),
		DeliveredAt:    ts(s.DeliveredAt),
		CancelReason:   s.CancelReason,
		CancelledAt:    ts(s.CancelledAt),
	}
}

// CreatedToProto is the order a create command answers: what the answer to
// POST /orders shows (id, customer, total, creation time) with its status
// and version, not its items, which the caller just sent.
func CreatedToProto(s *order.State) *orderpb.Order {
	return &orderpb.Order{
		OrderId:    s.ID,
		CustomerId: s.CustomerID,
		Status:     orderpb.OrderStatus(s.Status),
		TotalCents: int64(s.Total),
		Version:    s.Version,
		CreatedAt:  ts(s.CreatedAt),
	}
}

// StateFromProto is the inverse of StateToProto.
func StateFromProto(o *orderpb.Order) order.State {
	return order.State{
		ID:             o.GetOrderId(),
		CustomerID:     o.GetCustomerId(),
		Items:          itemsFromProto(o.GetItems()),
		Status:         order.Status(o.GetStatus()),
		Total:          order.Cents(o.GetTotalCents()),
		Version:        o.GetVersion(),
		CreatedAt:      fromTS(o.GetCreatedAt()),
		PaymentMethod:  o.GetPaymentMethod(),
		PaidAt:         fromTS(o.GetPaidAt()),
		TrackingNumber: o.GetTrackingNumber(),
		ShippedAt:      fromTS(o.GetShippedAt()),
		DeliveredAt:    fromTS(o.GetDeliveredAt()),
		CancelReason:   o.GetCancelReason(),
		CancelledAt:    fromTS(o.GetCancelledAt()),
	}
}
