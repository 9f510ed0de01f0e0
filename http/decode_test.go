package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/order"
)

func request(body string) *http.Request {
	r := httptest.NewRequest("POST", "/orders", strings.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<20)
	return r
}

func TestDecodeCreateSeedOrder(t *testing.T) {
	c, err := decodeCreate(request(`{"customerId":"customer-123","items":[{"productId":"prod-1","name":"Laptop","quantity":1,"price":999.99},{"productId":"prod-2","name":"Mouse","quantity":2,"price":29.99}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.GetCustomerId() != "customer-123" || len(c.GetItems()) != 2 || c.GetItems()[0].GetUnitPriceCents() != 99999 || c.GetItems()[1].GetQuantity() != 2 {
		t.Fatalf("decoded %v", c)
	}
}

// FuzzDecodeCreate: any body either decodes into a create that the domain
// accepts, or is refused with a 400/413 apiError; nothing panics.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		`{"customerId":"c","items":[{"productId":"p","name":"n","quantity":1,"price":1.5}]}`,
		`{"customerId":"c","items":[{"productId":"p","quantity":"2","price":"0.01"}]}`,
		`{"customerId":"c","items":[{"productId":"p","quantity":1e2,"price":1e-2}]}`,
		`{"customerId":"c","items":null}`, `{}`, `[]`, `null`, `"x"`, `{"customerId":"\u0000"}`,
		`{"customerId":"c","items":[{"productId":"p","quantity":99999999999999999999,"price":1}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		c, err := decodeCreate(request(body))
		if err != nil {
			var ae *apiError
			var mbe *http.MaxBytesError
			if errors.As(err, &ae) && (ae.status == 400 || ae.status == 413) && ae.msg != "" {
				return
			}
			if errors.As(err, &mbe) {
				return
			}
			t.Fatalf("body %q: error %v is not a 400 apiError", body, err)
		}
		if _, err := order.ValidateCreate(order.Create{CustomerID: c.GetCustomerId(), Items: itemsFromProto(c.GetItems())}); err != nil {
			t.Fatalf("body %q decoded into an invalid create: %v", body, err)
		}
	})
}

func FuzzDecodeTransition(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"paymentMethod":"card"}`, `{"trackingNumber":5}`, `{"reason":"x"} {}`} {
		f.Add("pay", s)
		f.Add("cancel", s)
	}
	f.Fuzz(func(t *testing.T, op, body string) {
		cmd, err := decodeTransition(op, request(body))
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 {
				t.Fatalf("op %q body %q: %v", op, body, err)
			}
			return
		}
		if cmd.GetCommand() == nil {
			t.Fatalf("op %q body %q: command without payload", op, body)
		}
	})
}

// order.ValidID is the regexp it replaced, on every input.
func TestValidOrderIDMatchesPattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	rapid.Check(t, func(t *rapid.T) {
		id := rapid.OneOf(rapid.StringMatching(`[A-Za-z0-9_-]{0,70}`), rapid.String()).Draw(t, "id")
		if order.ValidID(id) != pattern.MatchString(id) {
			t.Fatalf("%q: order.ValidID %v, pattern %v", id, order.ValidID(id), pattern.MatchString(id))
		}
	})
}
