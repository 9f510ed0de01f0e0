package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// The shapes the hand-written answers must match byte for byte, encoded by
// encoding/json (the API's order answers were written this way before).

type orderJSON struct {
	OrderID        string      `json:"orderId"`
	CustomerID     string      `json:"customerId"`
	Items          []itemJSON  `json:"items"`
	Status         string      `json:"status"`
	Total          order.Cents `json:"total"`
	CreatedAt      time.Time   `json:"createdAt"`
	Version        uint64      `json:"version"`
	PaymentMethod  string      `json:"paymentMethod,omitempty"`
	PaidAt         *time.Time  `json:"paidAt,omitempty"`
	TrackingNumber string      `json:"trackingNumber,omitempty"`
	ShippedAt      *time.Time  `json:"shippedAt,omitempty"`
	DeliveredAt    *time.Time  `json:"deliveredAt,omitempty"`
	CancelReason   string      `json:"cancelReason,omitempty"`
	CancelledAt    *time.Time  `json:"cancelledAt,omitempty"`
}

type createdJSON struct {
	OrderID    string      `json:"orderId"`
	CustomerID string      `json:"customerId"`
	Total      order.Cents `json:"total"`
	CreatedAt  time.Time   `json:"createdAt"`
}

func toOrderJSON(o *orderpb.Order) orderJSON {
	j := orderJSON{
		OrderID:        o.GetOrderId(),
		CustomerID:     o.GetCustomerId(),
		Items:          itemsJSON(o.GetItems()),
		Status:         statusName(o.GetStatus()),
		Total:          order.Cents(o.GetTotalCents()),
		CreatedAt:      o.GetCreatedAt().AsTime().UTC(),
		Version:        o.GetVersion(),
		PaymentMethod:  o.GetPaymentMethod(),
		TrackingNumber: o.GetTrackingNumber(),
		CancelReason:   o.GetCancelReason(),
	}
	j.PaidAt, j.ShippedAt = tsPtr(o.GetPaidAt()), tsPtr(o.GetShippedAt())
	j.DeliveredAt, j.CancelledAt = tsPtr(o.GetDeliveredAt()), tsPtr(o.GetCancelledAt())
	return j
}

// text draws strings that exercise every escaping rule: ASCII, control
// characters, quotes and backslashes, HTML characters, multi-byte runes,
// U+2028/U+2029 and invalid UTF-8.
func text(t *rapid.T, label string) string {
	pieces := rapid.SliceOfN(rapid.SampledFrom([]string{
		"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\x00", "\x01", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t",
		"é", "€", "😀", "\u2028", "\u2029", "\xff", "\xe2\x82", "\xed\xa0\x80", "customer-123",
	}), 0, 12).Draw(t, label)
	s := ""
	for _, p := range pieces {
		s += p
	}
	return s
}

func stamp(t *rapid.T, label string, optional bool) *timestamppb.Timestamp {
	if optional && rapid.Bool().Draw(t, label+"Nil") {
		return nil
	}
	sec := rapid.Int64Range(0, 253402300799).Draw(t, label+"Sec") // years 1970 to 9999
	nanos := rapid.SampledFrom([]int32{0, 1, 500_000_000, 123_456_789, 999_999_999, 120_000_000}).Draw(t, label+"Nanos")
	return &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := &orderpb.Order{
			OrderId:        text(t, "id"),
			CustomerId:     text(t, "customer"),
			Status:         orderpb.OrderStatus(rapid.Int32Range(0, 5).Draw(t, "status")),
			TotalCents:     rapid.Int64().Draw(t, "total"),
			Version:        rapid.Uint64().Draw(t, "version"),
			CreatedAt:      stamp(t, "created", false),
			PaymentMethod:  text(t, "payment"),
			PaidAt:         stamp(t, "paid", true),
			TrackingNumber: text(t, "tracking"),
			ShippedAt:      stamp(t, "shipped", true),
			DeliveredAt:    stamp(t, "delivered", true),
			CancelReason:   text(t, "reason"),
			CancelledAt:    stamp(t, "cancelled", true),
		}
		for range rapid.IntRange(0, 3).Draw(t, "items") {
			o.Items = append(o.Items, &orderpb.Item{
				ProductId: text(t, "product"), Name: text(t, "name"),
				Quantity: rapid.Int32().Draw(t, "quantity"), UnitPriceCents: rapid.Int64().Draw(t, "price"),
			})
		}
		want, err := json.Marshal(toOrderJSON(o))
		if err != nil {
			t.Fatal(err)
		}
		st := codec.StateFromProto(o)
		if got := appendOrderJSON(nil, &st); string(got) != string(want) {
			t.Fatalf("order:\n got %s\nwant %s", got, want)
		}
		want, err = json.Marshal(createdJSON{OrderID: o.GetOrderId(), CustomerID: o.GetCustomerId(), Total: order.Cents(o.GetTotalCents()), CreatedAt: o.GetCreatedAt().AsTime().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCreatedJSON(nil, o); string(got) != string(want) {
			t.Fatalf("created:\n got %s\nwant %s", got, want)
		}
	})
}

func TestAppendJSONTimeMatchesEncodingJSON(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(0, 0).UTC(), time.Date(2026, 11, 25, 8, 0, 0, 120_000_000, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)} {
		want, _ := json.Marshal(tm)
		if got := appendJSONTime(nil, tm); string(got) != string(want) {
			t.Fatalf("%v: got %s want %s", tm, got, want)
		}
	}
}

func BenchmarkOrderJSON(b *testing.B) {
	o := &orderpb.Order{OrderId: "0b7e4c1e-9d3c-4a59-8f0b-2d1e6f3a7c55", CustomerId: "customer-123", Status: 2, TotalCents: 105997, Version: 2,
		CreatedAt: timestamppb.Now(), PaidAt: timestamppb.Now(), PaymentMethod: "card",
		Items: []*orderpb.Item{{ProductId: "laptop-1", Name: "Gaming Laptop", Quantity: 1, UnitPriceCents: 99999}, {ProductId: "mouse-1", Name: "Wireless Mouse", Quantity: 2, UnitPriceCents: 2999}}}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(toOrderJSON(o)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		st := codec.StateFromProto(o)
		for b.Loop() {
			buf = appendOrderJSON(buf[:0], &st)
		}
	})
}
