package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/order"
)

func TestDecodeCreateSeedOrder(t *testing.T) {
	c, err := decodeCreate([]byte(`{"customerId":"customer-123","items":[{"productId":"prod-1","name":"Laptop","quantity":1,"price":999.99},{"productId":"prod-2","name":"Mouse","quantity":2,"price":29.99}]}`))
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
		`{"customerId":"c","customerId":"d","items":[{"productId":"p","quantity":1,"price":1}]}`,
		`{"CustomerId":"c","items":[{"productId":"p","quantity":1,"price":1}]}`,
		`{"customerId":"c\ud800","items":[{"productId":"p\u0000","quantity":1,"price":1e999999}]}`,
		"{\"customerId\":\"c\xff\",\"items\":[{\"productId\":\"p\",\"quantity\":1,\"price\":\"1e-99\"}]}",
		`{"customerId":"\u00e9\ud83d\ude42","items":[{"productId":"p","name":"a\/b\"c","quantity":1,"price":-0}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		c, err := decodeCreate([]byte(body))
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.status == 400 && ae.msg != "" && (ae.field == "" || strings.Contains(ae.msg, ae.field) || strings.Contains(ae.msg, strconv.Quote(ae.field))) {
				return
			}
			t.Fatalf("body %q: error %v is not a 400 apiError naming its field", body, err)
		}
		if _, err := order.ValidateCreate(order.Create{CustomerID: c.GetCustomerId(), Items: itemsFromProto(c.GetItems())}); err != nil {
			t.Fatalf("body %q decoded into an invalid create: %v", body, err)
		}
	})
}

func FuzzDecodeTransition(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"paymentMethod":"card"}`, `{"trackingNumber":5}`, `{"reason":"x"} {}`,
		`{"paymentMethod":"a","paymentMethod":"b"}`, `{"Reason":"x"}`, `{"reason":"\u0000"}`, ` null `, `{"trackingNumber":"\ud83d"}`} {
		f.Add("pay", s)
		f.Add("ship", s)
		f.Add("cancel", s)
		f.Add("deliver", s)
	}
	f.Fuzz(func(t *testing.T, op, body string) {
		cmd, err := decodeTransition(op, []byte(body))
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

// The decoding of the bodies before the hand-written reader, kept as an
// oracle: encoding/json with unknown fields refused and numbers as text.
type (
	oracleCreate struct {
		CustomerID string       `json:"customerId"`
		Items      []oracleItem `json:"items"`
	}
	oracleItem struct {
		ProductID string      `json:"productId"`
		Name      string      `json:"name"`
		Quantity  json.Number `json:"quantity"`
		Price     json.Number `json:"price"`
	}
)

func oracleDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// FuzzDecodeCreateAgreesWithEncodingJSON: the reader is stricter than
// encoding/json (exact unique keys, no U+FFFD for bad bytes), never looser:
// what it accepts, encoding/json reads the same.
func FuzzDecodeCreateAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"customerId":"customer-123","items":[{"productId":"prod-1","name":"Laptop","quantity":1,"price":999.99}]}`,
		` {"items":[{"price":"1.50","quantity":"3","productId":"p\u00e9","name":null}],"customerId":"\ud83d\ude42"} `,
		`{"customerId":"a\/b","items":[{"productId":"p","quantity":1,"price":1e2,"name":"\"\\"}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, err := decodeCreate([]byte(body))
		if err != nil {
			return
		}
		var want oracleCreate
		if err := oracleDecode([]byte(body), &want); err != nil {
			t.Fatalf("%q: accepted, but encoding/json says %v", body, err)
		}
		if got.GetCustomerId() != want.CustomerID || len(got.GetItems()) != len(want.Items) {
			t.Fatalf("%q: got %v, encoding/json %+v", body, got, want)
		}
		for i, it := range got.GetItems() {
			w := want.Items[i]
			p, _ := order.ParseCents(w.Price.String())
			if it.GetProductId() != w.ProductID || it.GetName() != w.Name || w.Quantity.String() != fmt.Sprint(it.GetQuantity()) || it.GetUnitPriceCents() != int64(p) {
				t.Fatalf("%q: item %d: got %v, encoding/json %+v", body, i, it, w)
			}
		}
	})
}

func TestDecodeTransitionAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range []string{`{"paymentMethod":"card"}`, `{"paymentMethod":"\u00e9"}`, ` { } `, `{"paymentMethod":null}`} {
		cmd, err := decodeTransition("pay", []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var want struct {
			PaymentMethod string `json:"paymentMethod"`
		}
		if err := oracleDecode([]byte(body), &want); err != nil || cmd.GetPay().GetPaymentMethod() != want.PaymentMethod {
			t.Fatalf("%s: got %v, encoding/json %+v (%v)", body, cmd, want, err)
		}
	}
}

// FuzzParseQuery: a query is read strictly or refused with a 400; what is
// read agrees with url.ParseQuery.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "status=Paid", "status=Paid&limit=1&cursor=x", "status=a&status=b", "limit=%zz", "%zz",
		"a;b", "&&status=&", "st%61tus=P+d", "x=1", strings.Repeat("x=1&", 20), "cursor=a%3Db%26c", "status"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q := []queryParam{{name: "status"}, {name: "limit"}, {name: "cursor"}}
		if err := parseQuery(raw, q); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.msg == "" {
				t.Fatalf("%q: %v is not a 400", raw, err)
			}
			return
		}
		vals, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("%q: accepted, but url.ParseQuery says %v", raw, err)
		}
		for _, p := range q {
			if got := vals[p.name]; p.set != (len(got) == 1) || (p.set && got[0] != p.value) {
				t.Fatalf("%q: %s = %q (set %v), url.ParseQuery %q", raw, p.name, p.value, p.set, got)
			}
			delete(vals, p.name)
		}
		if len(vals) != 0 {
			t.Fatalf("%q: url.ParseQuery also reads %v", raw, vals)
		}
		if err := parseQuery(raw, nil); raw != "" && strings.Trim(raw, "&") != "" && err == nil {
			t.Fatalf("%q: accepted on a route without parameters", raw)
		}
	})
}

// FuzzBearerToken: the scheme is "Bearer" in any case, then spaces, then
// a non-empty token, which is returned as sent.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer tok", "bearer tok", "BEARER  tok", "Bearer", "Bearer ", "Basic x", "Bearertok", "bEaReR t o k", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		want := len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && strings.TrimLeft(h[7:], " ") != ""
		if ok != want {
			t.Fatalf("%q: ok %v, want %v", h, ok, want)
		}
		if ok && tok != strings.TrimLeft(h[7:], " ") {
			t.Fatalf("%q: token %q", h, tok)
		}
	})
}

// FuzzJSONMediaType: only application/json, with at most charset=utf-8.
func FuzzJSONMediaType(f *testing.F) {
	for _, s := range []string{"application/json", "Application/JSON; charset=UTF-8", "application/json;charset=\"utf-8\"", "text/plain", "application/json; charset=latin1", "application/json; x=y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		if !jsonMediaType(ct) {
			return
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" || len(params) > 1 || (len(params) == 1 && !strings.EqualFold(params["charset"], "utf-8")) {
			t.Fatalf("%q accepted: %q %v %v", ct, mt, params, err)
		}
	})
}

const benchCreate = `{"customerId":"customer-123","items":[{"productId":"prod-1","name":"Laptop","quantity":1,"price":999.99},{"productId":"prod-2","name":"Mouse","quantity":2,"price":29.99}]}`

// BenchmarkDecodeCreate: the hot path of POST /orders, the README's two-item order.
func BenchmarkDecodeCreate(b *testing.B) {
	body := []byte(benchCreate)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreate(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCreateWorstPrice: the most expensive price a client can
// send (see order.BenchmarkParseCentsWorstPrice).
func BenchmarkDecodeCreateWorstPrice(b *testing.B) {
	body := []byte(`{"customerId":"c","items":[{"productId":"p","quantity":1,"price":1e999999}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreate(body); err == nil {
			b.Fatal("accepted")
		}
	}
}

// TestFingerprint: a keyed command's fingerprint tells its content apart
// (what refuses a reused key with another request); a key-less command has
// none, since its random id is never sent again by a client.
func TestFingerprint(t *testing.T) {
	a, err := decodeCreate([]byte(`{"customerId":"c1","items":[{"productId":"p","quantity":1,"price":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeCreate([]byte(`{"customerId":"c2","items":[{"productId":"p","quantity":1,"price":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := fingerprint(true, "create", "", a), fingerprint(true, "create", "", b)
	if fa == "" || fa == fb || fa != fingerprint(true, "create", "", a) {
		t.Fatalf("keyed fingerprints %q and %q (of different creates), want distinct, stable, non-empty", fa, fb)
	}
	if fingerprint(true, "pay", "o1", nil) == fingerprint(true, "pay", "o2", nil) {
		t.Fatal("the same transition of two orders has one fingerprint")
	}
	if f := fingerprint(false, "create", "", a); f != "" {
		t.Fatalf("key-less fingerprint %q, want none", f)
	}
}
