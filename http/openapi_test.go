package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

const (
	seedOrder = `{"customerId":"customer-123","items":[
 {"productId":"prod-1","name":"Laptop","quantity":1,"price":999.99},
 {"productId":"prod-2","name":"Mouse","quantity":2,"price":29.99}]}`
	testToken = "t0ken-Secret-42"
)

// newFakeAPI serves httpapi.New over fakes of the node's interfaces.
func newFakeAPI(t *testing.T, mutate ...func(*httpapi.Config)) (*httptest.Server, *fakeOrders) {
	t.Helper()
	orders := newFakeOrders()
	cfg := httpapi.Config{
		Orders:    orders,
		ReadModel: fakeReadModel{},
		Health:    fakeHealth{},
		Info: func() httpapi.Info {
			return httpapi.Info{Service: "ordersystem", NodeID: fakeOwner, Members: []httpapi.Member{}}
		},
		Metrics: metrics.New(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	return srv, orders
}

// servedDocument fetches GET /openapi.json and loads and validates it.
func servedDocument(t *testing.T, base string, headers ...string) (*openapi3.T, []byte) {
	t.Helper()
	res := do(t, base, "GET", "/openapi.json", "", headers...)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", res.status, res.header.Get("Content-Type"))
	}
	return loadDocument(t, res.body), res.body
}

func loadDocument(t *testing.T, b []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, base, method, path, body string, headers ...string) response {
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
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	srv, _ := newFakeAPI(t)
	served, servedJSON := servedDocument(t, srv.URL)
	if served.OpenAPI != "3.0.3" || served.Info.Title == "" {
		t.Fatalf("openapi %q, title %q", served.OpenAPI, served.Info.Title)
	}
	// The served JSON is the YAML file, converted.
	yml, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromFile := loadDocument(t, yml)
	a, _ := json.Marshal(fromFile)
	b, _ := json.Marshal(served)
	if !bytes.Equal(a, b) {
		t.Fatal("GET /openapi.json differs from openapi.yaml")
	}
	if !json.Valid(servedJSON) {
		t.Fatal("GET /openapi.json is not JSON")
	}
	// Every operation documents its errors with the one error schema, and
	// every answer documents X-Request-Id.
	errSchema := served.Components.Schemas["Error"]
	if errSchema == nil || !slices.Equal(errSchema.Value.Required, []string{"error", "code"}) {
		t.Fatalf("Error schema: %+v", errSchema)
	}
	for path, item := range served.Paths.Map() {
		for method, op := range item.Operations() {
			for code, r := range op.Responses.Map() {
				if r.Value.Headers["X-Request-Id"] == nil {
					t.Errorf("%s %s %s: no X-Request-Id header", method, path, code)
				}
				if code >= "400" && path != "/health" && path != "/health/live" && path != "/health/ready" {
					if mt := r.Value.Content.Get("application/json"); mt == nil || mt.Schema.Value != errSchema.Value {
						t.Errorf("%s %s %s: not the Error schema", method, path, code)
					}
				}
			}
			if method == http.MethodPost && !hasParam(op.Parameters, "header", "Idempotency-Key") {
				t.Errorf("%s %s: no Idempotency-Key parameter", method, path)
			}
		}
	}
	if s := served.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Fatal("no bearer security scheme")
	}
}

func hasParam(ps openapi3.Parameters, in, name string) bool {
	for _, p := range ps {
		if p.Value.In == in && p.Value.Name == name {
			return true
		}
	}
	return false
}

// TestOpenAPIMatchesRoutes: every echo route is documented and every
// documented operation is a route, so that the two cannot drift apart.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	srv, _ := newFakeAPI(t)
	doc, _ := servedDocument(t, srv.URL)
	e := httpapi.New(httpapi.Config{Metrics: metrics.New()})

	var routes, documented []string
	for _, r := range e.Routes() {
		p := r.Path
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") {
				segs[i] = "{" + s[1:] + "}"
			}
		}
		routes = append(routes, r.Method+" "+strings.Join(segs, "/"))
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.yaml documents %s, which is no route", d)
		}
	}
	if len(routes) < 15 {
		t.Fatalf("only %d routes: %v", len(routes), routes)
	}
}

// validator checks real exchanges against the document.
type validator struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string
}

func newValidator(t *testing.T, doc *openapi3.T, base string) *validator {
	t.Helper()
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{t: t, doc: doc, router: router, base: base}
}

var validationOptions = &openapi3filter.Options{
	IncludeResponseStatus: true,
	MultiError:            true,
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
}

// exchange sends a request and validates the answer against the operation's
// documented answer for exactly that status (never a default). With
// validRequest it validates the request too.
func (v *validator) exchange(method, path, body string, want int, validRequest bool, headers ...string) response {
	t := v.t
	t.Helper()
	res := do(t, v.base, method, path, body, headers...)
	if res.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.status, want, res.body)
	}
	req, err := http.NewRequest(method, v.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	if route.Operation.Responses.Status(res.status) == nil {
		t.Fatalf("%s %s: status %d is not documented", method, route.Path, res.status)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: validationOptions}
	if validRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Fatalf("%s %s: the request does not match the document: %v", method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.status, Header: res.header,
		Body: io.NopCloser(bytes.NewReader(res.body)), Options: validationOptions,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Fatalf("%s %s -> %d: the answer does not match the document: %v\n%s", method, path, res.status, err, res.body)
	}
	return res
}

// errorAnswer checks an answer that no operation documents (no route, a
// method a path does not accept) against the Error schema.
func (v *validator) errorAnswer(method, path string, want int, headers ...string) response {
	t := v.t
	t.Helper()
	res := do(t, v.base, method, path, "", headers...)
	if res.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.status, want, res.body)
	}
	var body any
	if err := json.Unmarshal(res.body, &body); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, res.body)
	}
	if err := v.doc.Components.Schemas["Error"].Value.VisitJSON(body); err != nil {
		t.Fatalf("%s %s -> %d: not the Error schema: %v", method, path, res.status, err)
	}
	if res.header.Get("X-Request-Id") == "" {
		t.Fatalf("%s %s: no X-Request-Id", method, path)
	}
	return res
}

// TestOpenAPIResponsesOfARealNode runs a real in-memory node (with an API
// token) and validates its answers against the document.
func TestOpenAPIResponsesOfARealNode(t *testing.T) {
	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.HTTPHost = 0, "n1", "127.0.0.1"
	cfg.DrainDelay = 0 // nothing balances load in a test
	cfg.OutboxInterval = 50 * time.Millisecond
	cfg.APIToken = testToken
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	base := "http://" + n.Addr()
	auth := []string{"Authorization", "Bearer " + testToken}
	doc, _ := servedDocument(t, base, auth...)
	v := newValidator(t, doc, base)
	with := func(h ...string) []string { return append(append([]string{}, auth...), h...) }

	v.exchange("GET", "/", "", 200, true, auth...)
	v.exchange("GET", "/health", "", 200, true)
	v.exchange("GET", "/health/live", "", 200, true)
	v.exchange("GET", "/health/ready", "", 200, true)
	v.exchange("GET", "/openapi.json", "", 200, true, auth...)

	// Write side.
	r := v.exchange("POST", "/orders", seedOrder, 201, true, with("Idempotency-Key", "key-1")...)
	var created struct{ OrderID string }
	if err := json.Unmarshal(r.body, &created); err != nil || created.OrderID == "" {
		t.Fatalf("create: %s", r.body)
	}
	id := created.OrderID
	if r.header.Get("X-Order-Owner") != "n1" || r.header.Get("Location") != "/orders/"+id {
		t.Fatalf("create headers %v", r.header)
	}
	r = v.exchange("POST", "/orders", seedOrder, 201, true, with("Idempotency-Key", "key-1")...)
	if r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed create headers %v", r.header)
	}
	v.exchange("POST", "/orders", `{"customerId":"other","items":[{"productId":"p","quantity":1,"price":1}]}`, 422, false, with("Idempotency-Key", "key-1")...)
	v.exchange("GET", "/orders/"+id, "", 200, true, auth...)
	v.exchange("POST", "/orders/"+id+"/deliver", "", 409, true, auth...)
	v.exchange("POST", "/orders/"+id+"/pay", `{"paymentMethod":"credit_card"}`, 200, true, auth...)
	v.exchange("POST", "/orders/"+id+"/ship", `{"trackingNumber":"TRACK-12345"}`, 200, true, auth...)
	v.exchange("POST", "/orders/"+id+"/deliver", "", 200, true, auth...)
	v.exchange("POST", "/orders/"+id+"/cancel", `{"reason":"too late"}`, 409, true, auth...)
	other := v.exchange("POST", "/orders", seedOrder, 201, true, auth...)
	var created2 struct{ OrderID string }
	_ = json.Unmarshal(other.body, &created2)
	v.exchange("POST", "/orders/"+created2.OrderID+"/cancel", `{"reason":"changed my mind"}`, 200, true, auth...)
	r = v.exchange("GET", "/orders/"+id+"/history", "", 200, true, auth...)
	var hist []map[string]any
	if err := json.Unmarshal(r.body, &hist); err != nil || len(hist) != 4 {
		t.Fatalf("history %s", r.body)
	}
	r = v.exchange("GET", "/orders/"+created2.OrderID, "", 200, true, auth...)
	if !bytes.Contains(r.body, []byte(`"cancelReason":"changed my mind"`)) {
		t.Fatalf("cancelled order %s", r.body)
	}

	// Read side (eventually consistent): two orders, pages of one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st struct{ TotalOrders int }
		_ = json.Unmarshal(do(t, base, "GET", "/stats", "", auth...).body, &st)
		if st.TotalOrders == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read model did not catch up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	v.exchange("GET", "/stats", "", 200, true, auth...)
	v.exchange("GET", "/orders?limit=1&status=Cancelled", "", 200, true, auth...)
	r = v.exchange("GET", "/orders?limit=1", "", 200, true, auth...)
	cursor := r.header.Get("X-Next-Cursor")
	if cursor == "" || !strings.Contains(r.header.Get("Link"), `rel="next"`) {
		t.Fatalf("first page headers %v", r.header)
	}
	v.exchange("GET", "/orders?limit=1&cursor="+cursor, "", 200, true, auth...)

	// Errors.
	v.exchange("GET", "/orders/doesnotexist", "", 404, true, auth...)
	v.exchange("GET", "/orders/doesnotexist/history", "", 404, true, auth...)
	v.exchange("POST", "/orders/doesnotexist/pay", "", 404, true, auth...)
	v.exchange("GET", "/orders/bad!id", "", 400, false, auth...)
	v.exchange("GET", "/orders?status=Lost", "", 400, false, auth...)
	v.exchange("GET", "/orders?cursor=zzz", "", 400, true, auth...)
	v.exchange("POST", "/orders", `{"customerId":`, 400, false, auth...)
	v.exchange("POST", "/orders", `{"customerId":"c","items":[{"productId":"p","quantity":0,"price":1}]}`, 400, false, auth...)
	v.exchange("POST", "/orders/"+id+"/pay", `{"paymentMethod":1}`, 400, false, auth...)
	v.exchange("POST", "/orders", seedOrder, 400, false, with("Idempotency-Key", "has space")...)
	big := `{"customerId":"` + strings.Repeat("x", 1<<20) + `","items":[]}`
	v.exchange("POST", "/orders", big, 413, false, auth...)
	v.exchange("GET", "/stats", "", 401, false)
	v.exchange("POST", "/orders", seedOrder, 401, false, "Authorization", "Bearer wrong")
	v.errorAnswer("DELETE", "/orders/"+id, 405, auth...)
	v.errorAnswer("GET", "/nothing", 404, auth...)
}

// TestOpenAPIResponsesOfFakes covers what a healthy in-memory node does
// not answer: 503s, /metrics.
func TestOpenAPIResponsesOfFakes(t *testing.T) {
	writable := error(nil)
	srv, orders := newFakeAPI(t, func(c *httpapi.Config) {
		c.Writable = func() error { return writable }
		c.ReadModelFigures = fakeReadModelFigures
	})
	doc, _ := servedDocument(t, srv.URL)
	v := newValidator(t, doc, srv.URL)

	r := v.exchange("POST", "/orders", seedOrder, 201, true)
	var created struct{ OrderID string }
	_ = json.Unmarshal(r.body, &created)
	id := created.OrderID
	v.exchange("GET", "/orders", "", 200, true)
	v.exchange("GET", "/orders?limit=1", "", 200, true)

	// Strict input: each refusal is documented.
	v.exchange("POST", "/orders", seedOrder, 415, false, "Content-Type", "text/plain")
	v.exchange("POST", "/orders/"+id+"/cancel", `{"reason":"x"}`, 415, false, "Content-Type", "application/x-www-form-urlencoded")
	v.exchange("POST", "/orders", `{"customerId":"a","customerId":"b","items":[]}`, 400, false)
	v.exchange("POST", "/orders/"+id+"/pay", `{"PaymentMethod":"card"}`, 400, false)
	v.exchange("POST", "/orders/"+id+"/ship", `{"trackingNumber":"T\u0000"}`, 400, false)
	v.exchange("GET", "/orders?status=Paid&status=Paid", "", 400, false)
	for _, path := range []string{"/", "/stats", "/openapi.json", "/health", "/health/live", "/health/ready", "/orders/" + id, "/orders/" + id + "/history"} {
		v.exchange("GET", path+"?x=1", "", 400, false)
	}
	r = v.exchange("GET", "/stats", "", 200, true)
	if !bytes.Contains(r.body, []byte(`"readModel":{"applied":10,"repaired":2,"deadLettered":1,"quarantined":1}`)) {
		t.Fatalf("stats without the read model figures: %s", r.body)
	}
	r = v.exchange("GET", "/health", "", 200, true)
	if !bytes.Contains(r.body, []byte(`"deadLetters":[{"eventId":"ghost:1"`)) || !bytes.Contains(r.body, []byte(`"quarantinedOrders":[{"orderId":"o9","version":2`)) {
		t.Fatalf("health without the read model section: %s", r.body)
	}
	v.exchange("GET", "/", "", 200, true)
	r = v.exchange("GET", "/metrics", "", 200, true)
	if !bytes.Contains(r.body, []byte("http_requests_total")) {
		t.Fatalf("metrics: %.300s", r.body)
	}

	writable = errors.New("persistence is unavailable (connection refused)")
	r = v.exchange("POST", "/orders/"+id+"/pay", "", 503, true)
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %v", r.header)
	}
	writable = nil
	// An order in quarantine: 500 order_quarantined on every operation.
	orders.mu.Lock()
	orders.refusal = &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_QUARANTINED,
		Message: "order " + id + " is quarantined: its journal record at version 2 cannot be read (not an event)"}
	orders.mu.Unlock()
	for _, op := range []struct{ method, path, body string }{
		{"GET", "/orders/" + id, ""}, {"GET", "/orders/" + id + "/history", ""},
		{"POST", "/orders/" + id + "/pay", ""}, {"POST", "/orders/" + id + "/ship", ""},
		{"POST", "/orders/" + id + "/deliver", ""}, {"POST", "/orders/" + id + "/cancel", ""},
		{"POST", "/orders", seedOrder},
	} {
		r = v.exchange(op.method, op.path, op.body, 500, true)
		var e struct{ Error, Code string }
		if err := json.Unmarshal(r.body, &e); err != nil || e.Code != "order_quarantined" ||
			!strings.Contains(e.Error, id) || !strings.Contains(e.Error, "version 2") || r.header.Get("Retry-After") != "" {
			t.Fatalf("%s %s in quarantine: %v %s %v", op.method, op.path, err, r.body, r.header)
		}
	}
	orders.mu.Lock()
	orders.refusal = nil
	orders.err = errors.New("no route to the owner")
	orders.mu.Unlock()
	v.exchange("GET", "/orders/"+id, "", 503, true)
	v.exchange("GET", "/orders/"+id+"/history", "", 503, true)
	v.exchange("POST", "/orders", seedOrder, 503, true)

	down, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Health = fakeHealth{down: true} })
	dv := newValidator(t, doc, down.URL)
	dv.exchange("GET", "/health/ready", "", 503, true)
	dv.exchange("GET", "/health", "", 503, true)
}
