package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	httpapi "github.com/ordersystem/ordersystem/http"
)

// send is do with full control of the headers: a nil value deletes the
// header (no Content-Type), several values send it several times.
func send(t *testing.T, base, method, path, body string, header map[string][]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

type refusal struct {
	name         string
	method, path string
	body         string
	header       map[string][]string
	status       int
	code, field  string
	msg          string // a part of the message
}

func checkRefusals(t *testing.T, base string, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := send(t, base, c.method, c.path, c.body, c.header)
			if res.status != c.status {
				t.Fatalf("status %d, want %d: %s", res.status, c.status, res.body)
			}
			if c.status < 400 {
				return
			}
			var e struct{ Error, Code, Field string }
			if err := json.Unmarshal(res.body, &e); err != nil {
				t.Fatalf("answer %s: %v", res.body, err)
			}
			if e.Code != c.code || e.Field != c.field || !strings.Contains(e.Error, c.msg) {
				t.Fatalf("code %q field %q error %q; want code %q field %q error containing %q", e.Code, e.Field, e.Error, c.code, c.field, c.msg)
			}
		})
	}
}

// createdOrder creates an order and returns its id.
func createdOrder(t *testing.T, base string, header ...string) string {
	t.Helper()
	res := do(t, base, "POST", "/orders", seedOrder, header...)
	var o struct{ OrderID string }
	if err := json.Unmarshal(res.body, &o); err != nil || res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	return o.OrderID
}

var noContentType = map[string][]string{"Content-Type": nil}

func contentType(v ...string) map[string][]string { return map[string][]string{"Content-Type": v} }

func TestBodiesMustBeJSON(t *testing.T) {
	srv, _ := newFakeAPI(t)
	id := createdOrder(t, srv.URL)
	const media = "unsupported_media_type"
	checkRefusals(t, srv.URL, []refusal{
		{"create as text/plain", "POST", "/orders", seedOrder, contentType("text/plain"), 415, media, "", `got "text/plain"`},
		{"create as a form", "POST", "/orders", "customerId=c", contentType("application/x-www-form-urlencoded"), 415, media, "", "must be application/json"},
		{"create without Content-Type", "POST", "/orders", seedOrder, noContentType, 415, media, "", "no Content-Type"},
		{"create as JSON in latin1", "POST", "/orders", seedOrder, contentType("application/json; charset=latin1"), 415, media, "", "must be application/json"},
		{"create with another parameter", "POST", "/orders", seedOrder, contentType("application/json; profile=x"), 415, media, "", "must be application/json"},
		{"create as a JSON suffix type", "POST", "/orders", seedOrder, contentType("application/merge-patch+json"), 415, media, "", "must be application/json"},
		{"two Content-Types", "POST", "/orders", seedOrder, contentType("application/json", "text/plain"), 415, media, "", "send one header"},
		{"malformed Content-Type", "POST", "/orders", seedOrder, contentType("application/json; charset"), 415, media, "", "must be application/json"},
		{"pay with a form, empty body", "POST", "/orders/" + id + "/pay", "", contentType("application/x-www-form-urlencoded"), 415, media, "", "must be application/json"},
		{"cancel as text/plain", "POST", "/orders/" + id + "/cancel", `{"reason":"x"}`, contentType("text/plain"), 415, media, "", "must be application/json"},
		{"create with charset", "POST", "/orders", seedOrder, contentType("application/json; charset=utf-8"), 201, "", "", ""},
		{"create with charset in upper case", "POST", "/orders", seedOrder, contentType("Application/JSON;charset=UTF-8"), 201, "", "", ""},
		{"create with a quoted charset", "POST", "/orders", seedOrder, contentType(`application/json; charset="utf-8"`), 201, "", "", ""},
		{"create without a body", "POST", "/orders", "", noContentType, 400, "invalid_argument", "", "request body is required"},
		{"pay without body nor Content-Type", "POST", "/orders/" + id + "/pay", "", noContentType, 200, "", "", ""},
		{"ship with an empty JSON body", "POST", "/orders/" + id + "/ship", "", contentType("application/json"), 200, "", "", ""},
	})
}

func TestJSONKeysAreExactAndUnique(t *testing.T) {
	srv, _ := newFakeAPI(t)
	id := createdOrder(t, srv.URL)
	const bad = "invalid_argument"
	item := `{"productId":"p","quantity":1,"price":1}`
	checkRefusals(t, srv.URL, []refusal{
		{"duplicate customerId", "POST", "/orders", `{"customerId":"a","customerId":"b","items":[` + item + `]}`, nil, 400, bad, "customerId", "duplicate key"},
		{"duplicate items", "POST", "/orders", `{"customerId":"a","items":[` + item + `],"items":[]}`, nil, 400, bad, "items", "duplicate key"},
		{"duplicate price", "POST", "/orders", `{"customerId":"a","items":[{"productId":"p","quantity":1,"price":1,"price":1000}]}`, nil, 400, bad, "items[0].price", "duplicate key"},
		{"duplicate after an escape", "POST", "/orders", `{"customerId":"a","customer\u0049d":"b","items":[` + item + `]}`, nil, 400, bad, "customerId", "duplicate key"},
		{"key in another case", "POST", "/orders", `{"CustomerID":"a","items":[` + item + `]}`, nil, 400, bad, "CustomerID", `unknown field "CustomerID" (field names are case-sensitive: did you mean "customerId"?)`},
		{"item key in another case", "POST", "/orders", `{"customerId":"a","items":[{"ProductId":"p","quantity":1,"price":1}]}`, nil, 400, bad, "items[0].ProductId", `did you mean "productId"`},
		{"unknown key", "POST", "/orders", `{"customerId":"a","items":[` + item + `],"coupon":"x"}`, nil, 400, bad, "coupon", `unknown field "coupon" (the fields are customerId, items)`},
		{"duplicate paymentMethod", "POST", "/orders/" + id + "/pay", `{"paymentMethod":"a","paymentMethod":"b"}`, nil, 400, bad, "paymentMethod", "duplicate key"},
		{"reason in another case", "POST", "/orders/" + id + "/cancel", `{"Reason":"x"}`, nil, 400, bad, "Reason", `did you mean "reason"`},
		{"a key on deliver", "POST", "/orders/" + id + "/deliver", `{"at":"now"}`, nil, 400, bad, "at", `unknown field "at" (no field is accepted here)`},
		{"top-level null", "POST", "/orders/" + id + "/pay", `null`, nil, 400, bad, "", "must be a JSON object (got null)"},
		{"two objects", "POST", "/orders/" + id + "/pay", `{} {}`, nil, 400, bad, "", "exactly one JSON object"},
		{"trailing comma", "POST", "/orders", `{"customerId":"a","items":[` + item + `],}`, nil, 400, bad, "", "malformed JSON at byte"},
		{"an escaped key is the key", "POST", "/orders", `{"customer\u0049d":"a","items":[` + item + `]}`, nil, 201, "", "", ""},
	})
}

func TestTextMustBeUTF8WithoutControls(t *testing.T) {
	srv, _ := newFakeAPI(t)
	pending, paid := createdOrder(t, srv.URL), createdOrder(t, srv.URL)
	if r := do(t, srv.URL, "POST", "/orders/"+paid+"/pay", ""); r.status != 200 {
		t.Fatalf("pay: %d", r.status)
	}
	const bad = "invalid_argument"
	create := func(customer, product, name string) string {
		return `{"customerId":"` + customer + `","items":[{"productId":"` + product + `","name":"` + name + `","quantity":1,"price":1}]}`
	}
	checkRefusals(t, srv.URL, []refusal{
		{"NUL in customerId", "POST", "/orders", create(`c\u0000`, "p", "n"), nil, 400, bad, "customerId", "control characters (U+0000"},
		{"invalid UTF-8 in customerId", "POST", "/orders", create("c\xff", "p", "n"), nil, 400, bad, "customerId", "must be valid UTF-8"},
		{"newline in productId", "POST", "/orders", create("c", `p\nq`, "n"), nil, 400, bad, "items[0].productId", "control characters (U+000A"},
		{"tab in name", "POST", "/orders", create("c", "p", `a\tb`), nil, 400, bad, "items[0].name", "control characters (U+0009"},
		{"raw tab in name", "POST", "/orders", create("c", "p", "a\tb"), nil, 400, bad, "items[0].name", "must be escaped"},
		{"raw NUL in customerId", "POST", "/orders", create("c\x00", "p", "n"), nil, 400, bad, "customerId", "must be escaped"},
		{"lone surrogate in name", "POST", "/orders", create("c", "p", `\ud800x`), nil, 400, bad, "items[0].name", "lone UTF-16 surrogate"},
		{"C1 control in name", "POST", "/orders", create("c", "p", `\u0085`), nil, 400, bad, "items[0].name", "control characters (U+0085"},
		{"DEL in paymentMethod", "POST", "/orders/" + pending + "/pay", `{"paymentMethod":"card\u007f"}`, nil, 400, bad, "paymentMethod", "control characters (U+007F"},
		{"invalid UTF-8 in trackingNumber", "POST", "/orders/" + paid + "/ship", "{\"trackingNumber\":\"T\xc3\x28\"}", nil, 400, bad, "trackingNumber", "must be valid UTF-8"},
		{"escape in reason", "POST", "/orders/" + pending + "/cancel", `{"reason":"\u001b[2J"}`, nil, 400, bad, "reason", "control characters (U+001B"},
		{"a surrogate pair is fine", "POST", "/orders", create("c", "p", `\ud83d\ude42`), nil, 201, "", "", ""},
		{"multi-byte UTF-8 is fine", "POST", "/orders", create("kundé", "产品", "🙂"), nil, 201, "", "", ""},
	})
}

func TestPricesAndNumbers(t *testing.T) {
	srv, _ := newFakeAPI(t)
	const bad = "invalid_argument"
	create := func(q, p string) string {
		return `{"customerId":"c","items":[{"productId":"p","quantity":` + q + `,"price":` + p + `}]}`
	}
	checkRefusals(t, srv.URL, []refusal{
		{"huge exponent", "POST", "/orders", create("1", "1e999999"), nil, 400, bad, "items[0].price", "out of range"},
		{"tiny exponent", "POST", "/orders", create("1", "1e-999999"), nil, 400, bad, "items[0].price", "more than two decimals"},
		{"long price", "POST", "/orders", create("1", "1"+strings.Repeat("0", 40)), nil, 400, bad, "items[0].price", "too long"},
		{"price as a quoted exponent", "POST", "/orders", create("1", `"1e999999"`), nil, 400, bad, "items[0].price", "out of range"},
		{"price not a number", "POST", "/orders", create("1", `"abc"`), nil, 400, bad, "items[0].price", "must be a number"},
		{"price an object", "POST", "/orders", create("1", `{}`), nil, 400, bad, "items[0].price", "must be a number (got object)"},
		{"bad number", "POST", "/orders", create("1", `-`), nil, 400, bad, "", "malformed JSON"},
		{"leading zero", "POST", "/orders", create("01", "1"), nil, 400, bad, "", "malformed JSON"},
		{"quantity huge", "POST", "/orders", create(strings.Repeat("9", 30), "1"), nil, 400, bad, "items[0].quantity", "must be between 1 and 10000"},
		{"quantity fraction", "POST", "/orders", create("1.5", "1"), nil, 400, bad, "items[0].quantity", "whole number"},
		{"an empty item", "POST", "/orders", `{"customerId":"c","items":[{}]}`, nil, 400, bad, "items[0].quantity", "is required"},
		{"more than 100 items", "POST", "/orders", `{"customerId":"c","items":[` + strings.Repeat(`{"productId":"p","quantity":1,"price":1},`, 100) + `{}]}`, nil, 400, bad, "items", "at most 100 items"},
		{"price in exponent form", "POST", "/orders", create("1", "1.5e2"), nil, 201, "", "", ""},
		{"quoted numbers", "POST", "/orders", create(`"2"`, `"0.01"`), nil, 201, "", "", ""},
	})
}

func TestQueryParameters(t *testing.T) {
	srv, _ := newFakeAPI(t)
	id := createdOrder(t, srv.URL)
	const bad = "invalid_argument"
	many := strings.Repeat("x=1&", 10_001) + "status=Paid"
	checkRefusals(t, srv.URL, []refusal{
		{"unknown on the list", "GET", "/orders?state=Paid", "", nil, 400, bad, "state", "use status, limit, cursor"},
		{"repeated status", "GET", "/orders?status=Paid&status=Pending", "", nil, 400, bad, "status", "more than once"},
		{"repeated limit", "GET", "/orders?limit=1&limit=1", "", nil, 400, bad, "limit", "more than once"},
		{"bad escape in a value", "GET", "/orders?limit=%zz", "", nil, 400, bad, "limit", "malformed escape"},
		{"bad escape in a name", "GET", "/orders?%zz=1", "", nil, 400, bad, "", "malformed escape"},
		{"semicolon", "GET", "/orders?status=Paid;limit=1", "", nil, 400, bad, "", "';' does not separate"},
		{"past 10,000 parameters", "GET", "/orders?" + many, "", nil, 400, bad, "x", "unknown query parameter"},
		{"on an order", "GET", "/orders/" + id + "?fields=all", "", nil, 400, bad, "fields", "(use asOf)"},
		{"on the history", "GET", "/orders/" + id + "/history?limit=1", "", nil, 400, bad, "limit", "this route takes none"},
		{"on a command", "POST", "/orders?dryRun=1", seedOrder, nil, 400, bad, "dryRun", "this route takes none"},
		{"on the stats", "GET", "/stats?x", "", nil, 400, bad, "x", "this route takes none"},
		{"on a probe", "GET", "/health/live?verbose=1", "", nil, 400, bad, "verbose", "this route takes none"},
		{"a bad escape elsewhere", "GET", "/stats?%zz", "", nil, 400, bad, "", "malformed escape"},
		{"the list's own", "GET", "/orders?status=paid&limit=1&cursor=next", "", nil, 200, "", "", ""},
		{"escaped names and values", "GET", "/orders?st%61tus=Pa%69d&limit=+1", "", nil, 400, bad, "limit", "must be an integer"},
		{"empty parts", "GET", "/orders?&status=Paid&&", "", nil, 200, "", "", ""},
		{"metrics are Prometheus'", "GET", "/metrics?x=1", "", nil, 200, "", "", ""},
		{"an unknown route stays 404", "GET", "/nothing?x=1", "", nil, 404, "not_found", "", "no route"},
	})
	// The next link carries the parameters that were given, and the cursor.
	res := do(t, srv.URL, "GET", "/orders?limit=1&status=Pending", "")
	if l := res.header.Get("Link"); l != `</orders?cursor=next&limit=1&status=Pending>; rel="next"` {
		t.Fatalf("Link %q", l)
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.APIToken = testToken })
	auth := func(v ...string) map[string][]string { return map[string][]string{"Authorization": v} }
	const unauth = "unauthorized"
	checkRefusals(t, srv.URL, []refusal{
		{"Bearer", "GET", "/stats", "", auth("Bearer " + testToken), 200, "", "", ""},
		{"bearer", "GET", "/stats", "", auth("bearer " + testToken), 200, "", "", ""},
		{"BEARER", "GET", "/stats", "", auth("BEARER " + testToken), 200, "", "", ""},
		{"two spaces", "GET", "/stats", "", auth("Bearer  " + testToken), 200, "", "", ""},
		{"wrong token", "GET", "/stats", "", auth("bearer x" + testToken), 401, unauth, "", "bearer token"},
		{"token in another case", "GET", "/stats", "", auth("Bearer " + strings.ToUpper(testToken)), 401, unauth, "", "bearer token"},
		{"prefix of the token", "GET", "/stats", "", auth("Bearer " + testToken[:4]), 401, unauth, "", "bearer token"},
		{"no space", "GET", "/stats", "", auth("Bearer" + testToken), 401, unauth, "", "bearer token"},
		{"scheme only", "GET", "/stats", "", auth("Bearer "), 401, unauth, "", "bearer token"},
		{"another scheme", "GET", "/stats", "", auth("Basic " + testToken), 401, unauth, "", "bearer token"},
		{"two headers", "GET", "/stats", "", auth("Bearer "+testToken, "Bearer "+testToken), 401, unauth, "", "bearer token"},
		{"no header", "GET", "/stats", "", nil, 401, unauth, "", "bearer token"},
		{"refused before the body is read", "POST", "/orders", seedOrder, contentType("text/plain"), 401, unauth, "", "bearer token"},
	})
}

// firstRead signals once the first time its body is read.
type firstRead struct {
	io.ReadCloser
	once    *sync.Once
	reading chan struct{}
}

func (f firstRead) Read(p []byte) (int, error) {
	f.once.Do(func() { close(f.reading) })
	return f.ReadCloser.Read(p)
}

// A client that sends its headers and dribbles its body holds a
// connection, not one of the MaxInFlight slots.
func TestSlowBodyHoldsNoInFlightSlot(t *testing.T) {
	orders := newFakeOrders()
	api := httpapi.New(httpapi.Config{Orders: orders, ReadModel: fakeReadModel{}, Health: fakeHealth{}, MaxInFlight: 1})
	reading := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Slow") != "" {
			r.Body = firstRead{r.Body, &once, reading}
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /orders HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(seedOrder))
	half := len(seedOrder) / 2
	if _, err := io.WriteString(conn, seedOrder[:half]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reading: // the slow request is past the middleware that used to take the slot
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start reading the slow body")
	}
	for range 3 {
		if res := do(t, srv.URL, "POST", "/orders", seedOrder); res.status != http.StatusCreated {
			t.Fatalf("create while a body is dribbling in: %d %s", res.status, res.body)
		}
	}
	if _, err := io.WriteString(conn, seedOrder[half:]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("the slow create: %d", res.StatusCode)
	}
}

// FuzzAPINeverFails5xx: whatever a client sends (route, id, query, body,
// Content-Type, Authorization), the answer is not a 5xx, and an error is
// the Error shape with a message.
func FuzzAPINeverFails5xx(f *testing.F) {
	f.Add(uint8(0), "", "", seedOrder, "application/json", "Bearer "+testToken)
	f.Add(uint8(1), "", "status=Paid&limit=2", "", "", "bearer "+testToken)
	f.Add(uint8(4), "o1", "", `{"paymentMethod":"card"}`, "application/json; charset=utf-8", "Bearer "+testToken)
	f.Add(uint8(7), "o1", "x=1", `{"reason":"\u0000"}`, "text/plain", "Basic x")
	f.Add(uint8(2), "bad id!", "%zz", "{", "", "")
	api := httpapi.New(httpapi.Config{Orders: newFakeOrders(), ReadModel: fakeReadModel{}, Health: fakeHealth{}, APIToken: testToken, MaxInFlight: 4})
	routes := []struct{ method, path string }{
		{"POST", "/orders"}, {"GET", "/orders"}, {"GET", "/orders/{id}"}, {"GET", "/orders/{id}/history"},
		{"POST", "/orders/{id}/pay"}, {"POST", "/orders/{id}/ship"}, {"POST", "/orders/{id}/deliver"}, {"POST", "/orders/{id}/cancel"},
		{"GET", "/stats"}, {"GET", "/"}, {"GET", "/health/live"}, {"DELETE", "/orders/{id}"}, {"POST", "/nothing"},
	}
	f.Fuzz(func(t *testing.T, route uint8, id, rawQuery, body, ct, auth string) {
		rt := routes[int(route)%len(routes)]
		req := &http.Request{
			Method: rt.method, Host: "x", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			URL:    &url.URL{Path: strings.ReplaceAll(rt.path, "{id}", id), RawQuery: rawQuery},
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s %q (Content-Type %q): %d %s", rt.method, req.URL.Path, rawQuery, body, ct, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct{ Error, Code string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
				t.Fatalf("%s %s: %d %s is not the Error shape", rt.method, req.URL.Path, rec.Code, rec.Body)
			}
		}
	})
}

func TestCrossOriginBrowserRequestsRefused(t *testing.T) {
	srv, _ := newFakeAPI(t)
	id := createdOrder(t, srv.URL)
	json := "application/json"
	checkRefusals(t, srv.URL, []refusal{
		{"create from another site", "POST", "/orders", seedOrder, map[string][]string{"Content-Type": {json}, "Sec-Fetch-Site": {"cross-site"}}, 403, "cross_origin", "", "cross-origin request refused"},
		{"empty cancel from another site", "POST", "/orders/" + id + "/cancel", "", map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, 403, "cross_origin", "", "cross-origin"},
		{"pay from another origin (old browser)", "POST", "/orders/" + id + "/pay", "", map[string][]string{"Origin": {"https://evil.example"}}, 403, "cross_origin", "", "cross-origin"},
		{"create from the same origin", "POST", "/orders", seedOrder, map[string][]string{"Content-Type": {json}, "Sec-Fetch-Site": {"same-origin"}}, 201, "", "", ""},
		{"read from another site", "GET", "/orders/" + id, "", map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, 200, "", "", ""},
		{"pay from a non-browser client", "POST", "/orders/" + id + "/pay", "", nil, 200, "", "", ""},
	})
}
