package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ordersystem/ordersystem/codec"
	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/readmodel"
)

// fakeOrders is a small stand-in for the order actors: it keeps orders in
// a map, follows the state machine and remembers command ids. err, if set,
// makes every call fail as if the actor could not be reached.
type fakeOrders struct {
	mu  sync.Mutex
	err error
	// refusal, if set, is the answer of the actor to every call (as an
	// order in quarantine answers).
	refusal *orderpb.Error
	orders  map[string]*orderpb.Order
	events  map[string][]*orderpb.Event
	seen    map[string]*orderpb.Reply
	// requestIDs are the request ids that the calls saw in their context.
	requestIDs []string
}

func newFakeOrders() *fakeOrders {
	return &fakeOrders{orders: map[string]*orderpb.Order{}, events: map[string][]*orderpb.Event{}, seen: map[string]*orderpb.Reply{}}
}

const fakeOwner = "fake-node"

func (f *fakeOrders) Command(ctx context.Context, id string, cmd *orderpb.Command) (*orderpb.Reply, error) {
	return f.send(ctx, id, cmd)
}

func (f *fakeOrders) Get(ctx context.Context, id string) (*orderpb.Reply, error) {
	return f.send(ctx, id, &orderpb.GetOrder{})
}

func (f *fakeOrders) History(ctx context.Context, id string) (*orderpb.Reply, error) {
	return f.send(ctx, id, &orderpb.GetHistory{})
}

func (f *fakeOrders) AsOf(ctx context.Context, id string, q *orderpb.GetOrderAsOf) (*orderpb.Reply, error) {
	return f.send(ctx, id, q)
}

func (f *fakeOrders) send(ctx context.Context, id string, msg proto.Message) (*orderpb.Reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requestIDs = append(f.requestIDs, httpapi.RequestID(ctx))
	if f.err != nil {
		return nil, f.err
	}
	if f.refusal != nil {
		return &orderpb.Reply{Owner: fakeOwner, Error: proto.Clone(f.refusal).(*orderpb.Error)}, nil
	}
	refuse := func(code orderpb.ErrorCode, format string, args ...any) *orderpb.Reply {
		return &orderpb.Reply{Owner: fakeOwner, Error: &orderpb.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
	}
	o := f.orders[id]
	switch m := msg.(type) {
	case *orderpb.GetOrder:
		if o == nil {
			return refuse(orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, "order %s not found", id), nil
		}
		return &orderpb.Reply{Owner: fakeOwner, Order: proto.Clone(o).(*orderpb.Order)}, nil
	case *orderpb.GetHistory:
		if o == nil {
			return refuse(orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, "order %s not found", id), nil
		}
		return &orderpb.Reply{Owner: fakeOwner, History: f.events[id]}, nil
	case *orderpb.GetOrderAsOf:
		// The fold from the first event, as the order actor does without a
		// snapshot.
		if o == nil {
			return refuse(orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, "order %s not found", id), nil
		}
		var state order.State
		for _, pe := range f.events[id] {
			e, err := codec.EventFromProto(pe)
			if err != nil {
				return nil, err
			}
			if (m.GetAt() != nil && order.EventTime(e).After(m.GetAt().AsTime())) || (m.GetAt() == nil && pe.GetVersion() > m.GetVersion()) {
				break
			}
			state = order.Evolve(state, e)
		}
		if m.GetAt() == nil && m.GetVersion() > o.GetVersion() {
			return refuse(orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, "asOf: order %s has %d versions, not %d", id, o.GetVersion(), m.GetVersion()), nil
		}
		if state.Version == 0 {
			return refuse(orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, "asOf: order %s did not exist yet", id), nil
		}
		state.ID = id
		return &orderpb.Reply{Owner: fakeOwner, Order: codec.StateToProto(&state)}, nil
	case *orderpb.Command:
		if r, ok := f.seen[m.GetCommandId()]; ok {
			r = proto.Clone(r).(*orderpb.Reply)
			r.Replayed = true
			return r, nil
		}
		now := timestamppb.New(time.Now())
		ev := &orderpb.Event{OrderId: id, CommandId: m.GetCommandId()}
		from := func(want orderpb.OrderStatus) *orderpb.Reply {
			if o == nil {
				return refuse(orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, "order %s not found", id)
			}
			if o.GetStatus() != want {
				return refuse(orderpb.ErrorCode_ERROR_CODE_CONFLICT, "order %s is %s", id, order.Status(o.GetStatus()))
			}
			return nil
		}
		var refused *orderpb.Reply
		switch c := m.GetCommand().(type) {
		case *orderpb.Command_Create:
			if o != nil {
				return refuse(orderpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "order %s exists", id), nil
			}
			var total int64
			for _, it := range c.Create.GetItems() {
				total += it.GetUnitPriceCents() * int64(it.GetQuantity())
			}
			o = &orderpb.Order{OrderId: id, CustomerId: c.Create.GetCustomerId(), Items: c.Create.GetItems(), Status: orderpb.OrderStatus_ORDER_STATUS_PENDING, TotalCents: total, CreatedAt: now}
			f.orders[id] = o
			ev.Payload = &orderpb.Event_Created{Created: &orderpb.OrderCreated{CustomerId: o.GetCustomerId(), Items: o.GetItems(), TotalCents: total, CreatedAt: now}}
		case *orderpb.Command_Pay:
			if refused = from(orderpb.OrderStatus_ORDER_STATUS_PENDING); refused == nil {
				o.Status, o.PaymentMethod, o.PaidAt = orderpb.OrderStatus_ORDER_STATUS_PAID, c.Pay.GetPaymentMethod(), now
				ev.Payload = &orderpb.Event_Paid{Paid: &orderpb.OrderPaid{PaymentMethod: c.Pay.GetPaymentMethod(), PaidAt: now}}
			}
		case *orderpb.Command_Ship:
			if refused = from(orderpb.OrderStatus_ORDER_STATUS_PAID); refused == nil {
				o.Status, o.TrackingNumber, o.ShippedAt = orderpb.OrderStatus_ORDER_STATUS_SHIPPED, c.Ship.GetTrackingNumber(), now
				ev.Payload = &orderpb.Event_Shipped{Shipped: &orderpb.OrderShipped{TrackingNumber: c.Ship.GetTrackingNumber(), ShippedAt: now}}
			}
		case *orderpb.Command_Deliver:
			if refused = from(orderpb.OrderStatus_ORDER_STATUS_SHIPPED); refused == nil {
				o.Status, o.DeliveredAt = orderpb.OrderStatus_ORDER_STATUS_DELIVERED, now
				ev.Payload = &orderpb.Event_Delivered{Delivered: &orderpb.OrderDelivered{DeliveredAt: now}}
			}
		case *orderpb.Command_Cancel:
			if refused = from(orderpb.OrderStatus_ORDER_STATUS_PENDING); refused != nil && o != nil && o.GetStatus() == orderpb.OrderStatus_ORDER_STATUS_PAID {
				refused = nil
			}
			if refused == nil {
				o.Status, o.CancelReason, o.CancelledAt = orderpb.OrderStatus_ORDER_STATUS_CANCELLED, c.Cancel.GetReason(), now
				ev.Payload = &orderpb.Event_Cancelled{Cancelled: &orderpb.OrderCancelled{Reason: c.Cancel.GetReason(), CancelledAt: now}}
			}
		default:
			return nil, errors.New("fake: unknown command")
		}
		if refused != nil {
			return refused, nil
		}
		o.Version++
		ev.Version = o.GetVersion()
		f.events[id] = append(f.events[id], ev)
		r := &orderpb.Reply{Owner: fakeOwner, Order: proto.Clone(o).(*orderpb.Order)}
		f.seen[m.GetCommandId()] = r
		return r, nil
	}
	return nil, fmt.Errorf("fake: unexpected message %T", msg)
}

// fakeReadModel serves a fixed page and fixed statistics.
type fakeReadModel struct{}

func (fakeReadModel) List(status order.Status, limit int, cursor string) ([]readmodel.Summary, string, error) {
	if cursor == "boom" {
		return nil, "", errors.New("read model exploded")
	}
	if cursor != "" && cursor != "next" {
		return nil, "", readmodel.ErrBadCursor
	}
	at := time.Date(2026, 11, 25, 6, 25, 25, 0, time.UTC)
	page := []readmodel.Summary{{OrderID: "o1", CustomerID: "c1", Status: order.StatusPending, Total: 1999, Items: 1, Version: 1, CreatedAt: at, UpdatedAt: at}}
	if cursor == "" && limit == 1 {
		return page, "next", nil
	}
	return page, "", nil
}

func (fakeReadModel) Stats() readmodel.Stats {
	return readmodel.Stats{TotalOrders: 1, ByStatus: map[order.Status]int{order.StatusPending: 1}, TotalRevenue: 1999}
}

// fakeHealth is live, and ready unless down is set.
type fakeHealth struct{ down bool }

func (fakeHealth) Live() error { return nil }

func (h fakeHealth) Ready(context.Context) (bool, httpapi.HealthReport) {
	if h.down {
		return false, httpapi.HealthReport{Status: "down", NodeID: fakeOwner, Components: map[string]httpapi.ComponentHealth{
			"persistence": {Status: "down", Error: "connection refused"}}}
	}
	at := time.Date(2026, 11, 25, 6, 25, 25, 0, time.UTC)
	return true, httpapi.HealthReport{Status: "up", NodeID: fakeOwner, Components: map[string]httpapi.ComponentHealth{
		"persistence": {Status: "up", LatencyMS: 0.1}},
		ReadModel: &httpapi.ReadModelHealth{
			ReadModelFigures: fakeReadModelFigures(),
			DeadLetters: []httpapi.DeadLetter{{EventID: "ghost:1", Type: "OrderPaid", Reason: "not_in_journal",
				Error: "the journal does not hold it", Attempts: 4, At: at}},
			QuarantinedOrders: []httpapi.QuarantinedOrder{{OrderID: "o9", Version: 2, Position: 17, Error: "not an event", At: at}},
		},
		// The outbox found its checkpoint ahead of the log (Redis restarted
		// empty) and reset it.
		Outbox: &httpapi.OutboxFigures{Published: 4, CheckpointAhead: true,
			CheckpointReset: &httpapi.CheckpointReset{Checkpoint: 3, Head: 0, At: at},
			Partitions:      []httpapi.OutboxPartition{{Checkpoint: 1, Head: 1}}},
	}
}

func fakeReadModelFigures() httpapi.ReadModelFigures {
	return httpapi.ReadModelFigures{Applied: 10, Repaired: 2, DeadLettered: 1, Quarantined: 1}
}
