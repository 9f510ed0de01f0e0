package httpapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Wire shapes of the API (JSON, camelCase). Money is order.Cents, which
// renders as a number with two decimals.

type itemJSON struct {
	ProductID string      `json:"productId"`
	Name      string      `json:"name"`
	Quantity  int32       `json:"quantity"`
	Price     order.Cents `json:"price"`
}

type eventJSON struct {
	Type           string       `json:"type"`
	Version        uint64       `json:"version"`
	OrderID        string       `json:"orderId"`
	CustomerID     string       `json:"customerId,omitempty"`
	Items          []itemJSON   `json:"items,omitempty"`
	Total          *order.Cents `json:"total,omitempty"`
	CreatedAt      *time.Time   `json:"createdAt,omitempty"`
	PaymentMethod  string       `json:"paymentMethod,omitempty"`
	PaidAt         *time.Time   `json:"paidAt,omitempty"`
	TrackingNumber string       `json:"trackingNumber,omitempty"`
	ShippedAt      *time.Time   `json:"shippedAt,omitempty"`
	DeliveredAt    *time.Time   `json:"deliveredAt,omitempty"`
	Reason         string       `json:"reason,omitempty"`
	CancelledAt    *time.Time   `json:"cancelledAt,omitempty"`
}

type summaryJSON struct {
	OrderID    string      `json:"orderId"`
	CustomerID string      `json:"customerId"`
	Status     string      `json:"status"`
	Total      order.Cents `json:"total"`
	ItemCount  int         `json:"itemCount"`
	Version    uint64      `json:"version"`
	CreatedAt  time.Time   `json:"createdAt"`
	UpdatedAt  time.Time   `json:"updatedAt"`
}

type statsJSON struct {
	TotalOrders  int            `json:"totalOrders"`
	ByStatus     map[string]int `json:"byStatus"`
	TotalRevenue order.Cents    `json:"totalRevenue"`
	Timestamp    time.Time      `json:"timestamp"`
	Outbox       *OutboxFigures `json:"outbox,omitempty"`
	// ReadModel is what the read side applied, repaired and skipped.
	ReadModel *ReadModelFigures `json:"readModel,omitempty"`
}

type errorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
}

func tsPtr(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime().UTC()
	return &v
}

func itemsJSON(items []*orderpb.Item) []itemJSON {
	out := make([]itemJSON, len(items))
	for i, it := range items {
		out[i] = itemJSON{ProductID: it.GetProductId(), Name: it.GetName(), Quantity: it.GetQuantity(), Price: order.Cents(it.GetUnitPriceCents())}
	}
	return out
}

func statusName(s orderpb.OrderStatus) string { return order.Status(s).String() }

func toEventJSON(e *orderpb.Event) eventJSON {
	j := eventJSON{Version: e.GetVersion(), OrderID: e.GetOrderId()}
	switch p := e.GetPayload().(type) {
	case *orderpb.Event_Created:
		total := order.Cents(p.Created.GetTotalCents())
		j.Type, j.CustomerID, j.Items, j.Total, j.CreatedAt = "OrderCreated", p.Created.GetCustomerId(), itemsJSON(p.Created.GetItems()), &total, tsPtr(p.Created.GetCreatedAt())
	case *orderpb.Event_Paid:
		j.Type, j.PaymentMethod, j.PaidAt = "OrderPaid", p.Paid.GetPaymentMethod(), tsPtr(p.Paid.GetPaidAt())
	case *orderpb.Event_Shipped:
		j.Type, j.TrackingNumber, j.ShippedAt = "OrderShipped", p.Shipped.GetTrackingNumber(), tsPtr(p.Shipped.GetShippedAt())
	case *orderpb.Event_Delivered:
		j.Type, j.DeliveredAt = "OrderDelivered", tsPtr(p.Delivered.GetDeliveredAt())
	case *orderpb.Event_Cancelled:
		j.Type, j.Reason, j.CancelledAt = "OrderCancelled", p.Cancelled.GetReason(), tsPtr(p.Cancelled.GetCancelledAt())
	}
	return j
}
