package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/metrics"
)

// scrapeMetrics reads GET /metrics as a scraper would.
func scrapeMetrics(t *testing.T, base string, headers ...string) map[string]*dto.MetricFamily {
	t.Helper()
	res := do(t, base, "GET", "/metrics", "", headers...)
	if res.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", res.status, res.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series returns the counter value (or histogram count) of the series with
// exactly these labels, and whether it exists.
func series(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		if m.Histogram != nil {
			return float64(m.GetHistogram().GetSampleCount()), true
		}
		return m.GetCounter().GetValue() + m.GetGauge().GetValue(), true
	}
	return 0, false
}

func TestHTTPMetricsUseRouteTemplates(t *testing.T) {
	srv, _ := newFakeAPI(t)
	var ids []string
	for range 2 {
		r := do(t, srv.URL, "POST", "/orders", seedOrder, "Idempotency-Key", "k-"+strings.Repeat("x", len(ids)))
		var c struct{ OrderID string }
		_ = json.Unmarshal(r.body, &c)
		ids = append(ids, c.OrderID)
	}
	do(t, srv.URL, "POST", "/orders", seedOrder, "Idempotency-Key", "k-")   // replayed
	do(t, srv.URL, "POST", "/orders", `{"customerId":`)                     // invalid
	do(t, srv.URL, "POST", "/orders/"+ids[0]+"/ship", "")                   // conflict
	do(t, srv.URL, "POST", "/orders/"+ids[0]+"/pay", "")                    // ok
	do(t, srv.URL, "POST", "/orders/nope/pay", "")                          // not found
	do(t, srv.URL, "POST", "/orders/"+ids[0]+"/cancel", `{"reason":1}`)     // invalid, before the actor
	do(t, srv.URL, "POST", "/orders", strings.Repeat(" ", 2<<20)+seedOrder) // 413
	for _, id := range ids {
		do(t, srv.URL, "GET", "/orders/"+id, "")
	}
	do(t, srv.URL, "GET", "/orders/"+ids[0]+"/history", "")
	do(t, srv.URL, "GET", "/no/such/route/"+ids[0], "")
	do(t, srv.URL, "DELETE", "/orders/"+ids[0], "")
	do(t, srv.URL, "BREW", "/orders", "")

	fams := scrapeMetrics(t, srv.URL)
	for _, c := range []struct {
		route, method, status string
		want                  float64
	}{
		{"/orders", "POST", "201", 3},
		{"/orders", "POST", "400", 1},
		{"/orders", "POST", "413", 1},
		{"/orders/:id", "GET", "200", 2},
		{"/orders/:id/history", "GET", "200", 1},
		{"/orders/:id/ship", "POST", "409", 1},
		{"/orders/:id/pay", "POST", "200", 1},
		{"/orders/:id/pay", "POST", "404", 1},
		{"/orders/:id/cancel", "POST", "400", 1},
		{"/orders/:id", "DELETE", "405", 1},
		{"unmatched", "GET", "404", 1},
		{"/orders", "OTHER", "405", 1},
	} {
		got, ok := series(fams, "http_requests_total", map[string]string{"route": c.route, "method": c.method, "status": c.status})
		if !ok || got != c.want {
			t.Errorf("http_requests_total{route=%q,method=%q,status=%q} = %v (exists %v), want %v", c.route, c.method, c.status, got, ok, c.want)
		}
	}
	if got, _ := series(fams, "http_request_duration_seconds", map[string]string{"route": "/orders/:id", "method": "GET"}); got != 2 {
		t.Errorf("http_request_duration_seconds{/orders/:id,GET} count %v, want 2", got)
	}
	// No label value is a raw path.
	for _, name := range []string{"http_requests_total", "http_request_duration_seconds"} {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				for _, id := range ids {
					if strings.Contains(l.GetValue(), id) {
						t.Errorf("%s has label %s=%q, a raw path", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
	for _, c := range []struct {
		command, outcome string
		want             float64
	}{
		{"create", metrics.OutcomeOK, 2},
		{"create", metrics.OutcomeReplayed, 1},
		{"create", metrics.OutcomeInvalid, 1}, // the 413 by Content-Length is refused before the handler
		{"ship", metrics.OutcomeConflict, 1},
		{"pay", metrics.OutcomeOK, 1},
		{"pay", metrics.OutcomeNotFound, 1},
		{"cancel", metrics.OutcomeInvalid, 1},
		{"deliver", metrics.OutcomeOK, 0},
	} {
		got, ok := series(fams, "order_commands_total", map[string]string{"command": c.command, "outcome": c.outcome})
		if !ok || got != c.want {
			t.Errorf("order_commands_total{command=%q,outcome=%q} = %v (exists %v), want %v", c.command, c.outcome, got, ok, c.want)
		}
	}
}

func TestCommandOutcomeUnavailable(t *testing.T) {
	srv, orders := newFakeAPI(t)
	orders.err = errors.New("owner unreachable")
	if r := do(t, srv.URL, "POST", "/orders", seedOrder); r.status != http.StatusServiceUnavailable {
		t.Fatalf("create: %d", r.status)
	}
	got, _ := series(scrapeMetrics(t, srv.URL), "order_commands_total", map[string]string{"command": "create", "outcome": metrics.OutcomeUnavailable})
	if got != 1 {
		t.Fatalf("order_commands_total{create,unavailable} = %v", got)
	}
}

func TestMetricsEndpointAndToken(t *testing.T) {
	auth := []string{"Authorization", "Bearer " + testToken}
	t.Run("open by default", func(t *testing.T) {
		srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.APIToken = testToken })
		scrapeMetrics(t, srv.URL)
		if r := do(t, srv.URL, "GET", "/stats", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("/stats without token: %d", r.status)
		}
		if r := do(t, srv.URL, "GET", "/metrics/", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("/metrics/ without token: %d", r.status)
		}
	})
	t.Run("protected", func(t *testing.T) {
		srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.APIToken, c.ProtectMetrics = testToken, true })
		if r := do(t, srv.URL, "GET", "/metrics", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("/metrics without token: %d", r.status)
		}
		if r := do(t, srv.URL, "GET", "/metrics", "", "Authorization", "Bearer wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("/metrics with a wrong token: %d", r.status)
		}
		scrapeMetrics(t, srv.URL, auth...)
	})
	t.Run("no metrics", func(t *testing.T) {
		srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Metrics = nil })
		if r := do(t, srv.URL, "GET", "/metrics", ""); r.status != http.StatusNotFound {
			t.Fatalf("/metrics without Metrics: %d", r.status)
		}
		if r := do(t, srv.URL, "POST", "/orders", seedOrder); r.status != http.StatusCreated {
			t.Fatalf("create without Metrics: %d", r.status)
		}
	})
}

func TestRequestID(t *testing.T) {
	srv, orders := newFakeAPI(t)
	r := do(t, srv.URL, "POST", "/orders", seedOrder, "X-Request-Id", "client-id-42")
	if r.header.Get("X-Request-Id") != "client-id-42" {
		t.Fatalf("X-Request-Id %q, want the client's", r.header.Get("X-Request-Id"))
	}
	orders.mu.Lock()
	seen := orders.requestIDs[len(orders.requestIDs)-1]
	orders.mu.Unlock()
	if seen != "client-id-42" {
		t.Fatalf("the order client saw request id %q", seen)
	}
	minted := map[string]bool{}
	for _, sent := range []string{"", strings.Repeat("a", 129), "tab\there", "caf\u00e9"} {
		r := do(t, srv.URL, "GET", "/stats", "", "X-Request-Id", sent)
		got := r.header.Get("X-Request-Id")
		if got == "" || got == sent || len(got) > httpapi.MaxRequestIDLength || minted[got] {
			t.Fatalf("sent %q, got X-Request-Id %q", sent, got)
		}
		minted[got] = true
	}
	if r := do(t, srv.URL, "GET", "/stats", "", "X-Request-Id", strings.Repeat("b", 128)); r.header.Get("X-Request-Id") != strings.Repeat("b", 128) {
		t.Fatal("a 128-character id was not kept")
	}
	// Errors carry it too.
	if r := do(t, srv.URL, "GET", "/nothing", "", "X-Request-Id", "e-1"); r.status != 404 || r.header.Get("X-Request-Id") != "e-1" {
		t.Fatalf("404: %d %q", r.status, r.header.Get("X-Request-Id"))
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(s.b.Bytes()))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("log output: %v", err)
		}
		out = append(out, m)
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogs(t *testing.T) {
	const wrongToken = "wr0ng-Token-Value-77"
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, orders := newFakeAPI(t, func(c *httpapi.Config) { c.APIToken, c.Logger = testToken, log })
	auth := []string{"Authorization", "Bearer " + testToken}

	// 401s of every flavour, on every kind of route.
	for _, p := range []string{"/", "/stats", "/orders", "/orders/x", "/openapi.json", "/nothing"} {
		for _, h := range [][]string{nil, {"Authorization", "Bearer " + wrongToken}, {"Authorization", wrongToken},
			{"Authorization", "Basic " + testToken}, {"Authorization", "Bearer " + testToken + "x"}} {
			if r := do(t, srv.URL, "GET", p, "", h...); r.status != http.StatusUnauthorized {
				t.Fatalf("GET %s with %v: %d", p, h, r.status)
			}
		}
	}
	if r := do(t, srv.URL, "POST", "/orders?token="+testToken, seedOrder, "Authorization", "Bearer "+wrongToken); r.status != http.StatusUnauthorized {
		t.Fatalf("POST with a wrong token: %d", r.status)
	}
	// Answers with the token: 2xx, 4xx, 5xx (503 and 500).
	r := do(t, srv.URL, "POST", "/orders", seedOrder, append(auth, "X-Request-Id", "req-create")...)
	var c struct{ OrderID string }
	_ = json.Unmarshal(r.body, &c)
	do(t, srv.URL, "GET", "/orders/"+c.OrderID+"?token="+testToken, "", auth...)
	do(t, srv.URL, "POST", "/orders", `{"customerId":"`+testToken+`"`, auth...)
	do(t, srv.URL, "GET", "/health", "", "Authorization", "Bearer "+wrongToken)
	if r := do(t, srv.URL, "GET", "/orders?cursor=boom", "", append(auth, "X-Request-Id", "req-500")...); r.status != http.StatusInternalServerError {
		t.Fatalf("read model failure: %d %s", r.status, r.body)
	}
	orders.mu.Lock()
	orders.err = errors.New("owner unreachable")
	orders.mu.Unlock()
	if r := do(t, srv.URL, "GET", "/orders/"+c.OrderID, "", append(auth, "X-Request-Id", "req-503")...); r.status != http.StatusServiceUnavailable {
		t.Fatalf("unreachable owner: %d", r.status)
	}

	out := buf.String()
	for _, secret := range []string{testToken, wrongToken} {
		if strings.Contains(out, secret) {
			t.Fatalf("a log line contains the token %q:\n%s", secret, out)
		}
	}
	lines := buf.lines(t)
	var debug, warn int
	for _, l := range lines {
		if l["request_id"] == nil || l["request_id"] == "" {
			t.Errorf("log line without request_id: %v", l)
		}
		switch l["level"] {
		case "DEBUG":
			debug++
		case "WARN":
			warn++
			if l["msg"] != "request failed" || l["route"] == nil || l["status"] == nil || l["latency"] == nil {
				t.Errorf("WARN line %v", l)
			}
			if s, _ := l["status"].(float64); s < 500 {
				t.Errorf("WARN for status %v", l["status"])
			}
		case "INFO":
			t.Errorf("a request logged at INFO: %v", l)
		}
	}
	if warn != 2 || debug < 30 {
		t.Fatalf("%d WARN and %d DEBUG lines, want 2 and >= 30:\n%s", warn, debug, out)
	}
	var sawCreate, saw503 bool
	for _, l := range lines {
		sawCreate = sawCreate || (l["request_id"] == "req-create" && l["route"] == "/orders" && l["status"] == 201.0)
		saw503 = saw503 || (l["request_id"] == "req-503" && l["level"] == "WARN" && l["route"] == "/orders/:id" && l["status"] == 503.0)
	}
	if !sawCreate || !saw503 {
		t.Fatalf("missing the create (%v) or the 503 line (%v):\n%s", sawCreate, saw503, out)
	}
}

// TestNothingPerRequestAtInfo: at the info level a successful or refused
// request logs nothing.
func TestNothingPerRequestAtInfo(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Logger = log })
	do(t, srv.URL, "POST", "/orders", seedOrder)
	do(t, srv.URL, "GET", "/orders", "")
	do(t, srv.URL, "GET", "/orders/nope", "")
	do(t, srv.URL, "POST", "/orders", "{")
	if buf.String() != "" {
		t.Fatalf("logged at info:\n%s", buf.String())
	}
}
