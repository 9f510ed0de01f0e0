package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// The answers of the hot routes (an order, a created order) are written by
// hand instead of by encoding/json's reflection, which was 8% of the CPU of
// GET /orders/{id}. The bytes are exactly those encoding/json writes for
// orderJSON and createdJSON in appendjson_test.go (the test checks it on
// random orders), HTML-safe escaping included.

var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeJSON answers status with the JSON that fill appends, and a newline
// as json.Encoder (and so echo's c.JSON) ends it.
func writeJSON(c echo.Context, status int, fill func([]byte) []byte) error {
	bp := jsonBufs.Get().(*[]byte)
	b := append(fill((*bp)[:0]), '\n')
	err := c.Blob(status, echo.MIMEApplicationJSON, b)
	if cap(b) <= 64<<10 { // do not keep a buffer grown by a huge order
		*bp = b
		jsonBufs.Put(bp)
	}
	return err
}

func writeOrder(c echo.Context, s *order.State) error {
	return writeJSON(c, http.StatusOK, func(b []byte) []byte { return appendOrderJSON(b, s) })
}

// writeOrderReply writes the order of an actor's reply.
func writeOrderReply(c echo.Context, o *orderpb.Order) error {
	s := codec.StateFromProto(o)
	return writeOrder(c, &s)
}

func writeCreated(c echo.Context, o *orderpb.Order) error {
	return writeJSON(c, http.StatusCreated, func(b []byte) []byte { return appendCreatedJSON(b, o) })
}

// appendCreatedJSON appends what json.Marshal of createdJSON would.
func appendCreatedJSON(b []byte, o *orderpb.Order) []byte {
	b = append(b, `{"orderId":`...)
	b = appendJSONString(b, o.GetOrderId())
	b = append(b, `,"customerId":`...)
	b = appendJSONString(b, o.GetCustomerId())
	b = append(b, `,"total":`...)
	b = order.Cents(o.GetTotalCents()).AppendText(b)
	b = append(b, `,"createdAt":`...)
	b = appendJSONTime(b, o.GetCreatedAt().AsTime().UTC())
	return append(b, '}')
}

// appendOrderJSON appends what json.Marshal(toOrderJSON(codec.StateToProto(s)))
// would: the order as its state, which a read of an active order has
// without converting it to protobuf first.
func appendOrderJSON(b []byte, s *order.State) []byte {
	b = append(b, `{"orderId":`...)
	b = appendJSONString(b, s.ID)
	b = append(b, `,"customerId":`...)
	b = appendJSONString(b, s.CustomerID)
	b = append(b, `,"items":[`...)
	for i, it := range s.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"productId":`...)
		b = appendJSONString(b, it.ProductID)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, it.Name)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(it.Quantity), 10)
		b = append(b, `,"price":`...)
		b = it.UnitPrice.AppendText(b)
		b = append(b, '}')
	}
	b = append(b, `],"status":`...)
	b = appendJSONString(b, s.Status.String())
	b = append(b, `,"total":`...)
	b = s.Total.AppendText(b)
	b = append(b, `,"createdAt":`...)
	b = appendJSONTime(b, s.CreatedAt.UTC())
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, s.Version, 10)
	b = appendOptString(b, `,"paymentMethod":`, s.PaymentMethod)
	b = appendOptTime(b, `,"paidAt":`, s.PaidAt)
	b = appendOptString(b, `,"trackingNumber":`, s.TrackingNumber)
	b = appendOptTime(b, `,"shippedAt":`, s.ShippedAt)
	b = appendOptTime(b, `,"deliveredAt":`, s.DeliveredAt)
	b = appendOptString(b, `,"cancelReason":`, s.CancelReason)
	b = appendOptTime(b, `,"cancelledAt":`, s.CancelledAt)
	return append(b, '}')
}

func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

func appendOptTime(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return appendJSONTime(append(b, key...), t.UTC())
}

// appendJSONTime writes t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, quoted). Timestamps of orders are always within its range.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping on:
// ", \ and control characters escaped, <, > and & as \u003c..., invalid
// UTF-8 as \ufffd, and U+2028/U+2029 escaped for JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
