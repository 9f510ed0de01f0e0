package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/node"
)

const seedOrder = `{"customerId":"customer-123","items":[
 {"productId":"prod-1","name":"Laptop","quantity":1,"price":999.99},
 {"productId":"prod-2","name":"Mouse","quantity":2,"price":29.99}]}`

type testNode struct {
	t    *testing.T
	n    *node.Node
	base string
}

func startNode(t *testing.T, mutate ...func(*node.Config)) *testNode {
	t.Helper()
	cfg := node.Default()
	cfg.Port = 0
	cfg.NodeID = "n1"
	cfg.DrainDelay = 0 // TestShutdownDrainsBeforeClosing tests the delay
	cfg.OutboxInterval = 50 * time.Millisecond
	for _, m := range mutate {
		m(&cfg)
	}
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
	return &testNode{t: t, n: n, base: "http://" + n.Addr()}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (tn *testNode) do(method, path, body string, headers ...string) response {
	tn.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tn.base+path, rd)
	if err != nil {
		tn.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (tn *testNode) expect(r response, status int) response {
	tn.t.Helper()
	if r.status != status {
		tn.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

func (tn *testNode) create(body string, headers ...string) string {
	tn.t.Helper()
	r := tn.expect(tn.do("POST", "/orders", body, headers...), http.StatusCreated)
	var c struct{ OrderID string }
	r.json(tn.t, &c)
	return c.OrderID
}

// waitFor polls until cond holds (the read side is eventually consistent).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Eventually(t, 5*time.Second, poll.True(what, cond))
}

func TestSeedFlow(t *testing.T) {
	tn := startNode(t)
	r := tn.expect(tn.do("POST", "/orders", seedOrder), http.StatusCreated)
	var created map[string]any
	r.json(t, &created)
	id, _ := created["orderId"].(string)
	if loc := r.header.Get("Location"); loc != "/orders/"+id {
		t.Fatalf("Location %q for order %q", loc, id)
	}
	if r.header.Get("X-Order-Owner") != "n1" {
		t.Fatalf("X-Order-Owner %q", r.header.Get("X-Order-Owner"))
	}
	if !bytes.Contains(r.body, []byte(`"total":1059.97`)) || created["customerId"] != "customer-123" || created["createdAt"] == nil {
		t.Fatalf("create response %s", r.body)
	}

	r = tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod": "credit_card"}`), http.StatusOK)
	var o map[string]any
	r.json(t, &o)
	if o["status"] != "Paid" || o["paymentMethod"] != "credit_card" || o["paidAt"] == nil || o["version"] != 2.0 {
		t.Fatalf("after pay: %s", r.body)
	}
	r = tn.expect(tn.do("POST", "/orders/"+id+"/ship", `{"trackingNumber": "TRACK-12345"}`), http.StatusOK)
	r.json(t, &o)
	if o["status"] != "Shipped" || o["trackingNumber"] != "TRACK-12345" || o["shippedAt"] == nil {
		t.Fatalf("after ship: %s", r.body)
	}

	r = tn.expect(tn.do("GET", "/orders/"+id+"/history", ""), http.StatusOK)
	var hist []map[string]any
	r.json(t, &hist)
	if len(hist) != 3 {
		t.Fatalf("history has %d events, want 3: %s", len(hist), r.body)
	}
	for i, want := range []string{"OrderCreated", "OrderPaid", "OrderShipped"} {
		if hist[i]["type"] != want || hist[i]["version"] != float64(i+1) || hist[i]["orderId"] != id {
			t.Fatalf("event %d: %v", i, hist[i])
		}
	}
	if hist[0]["customerId"] != "customer-123" || hist[0]["total"] != 1059.97 || hist[0]["createdAt"] == nil ||
		hist[1]["paymentMethod"] != "credit_card" || hist[1]["paidAt"] == nil ||
		hist[2]["trackingNumber"] != "TRACK-12345" || hist[2]["shippedAt"] == nil {
		t.Fatalf("history fields: %s", r.body)
	}

	r = tn.expect(tn.do("POST", "/orders/"+id+"/deliver", ""), http.StatusOK)
	r.json(t, &o)
	if o["status"] != "Delivered" || o["deliveredAt"] == nil {
		t.Fatalf("after deliver: %s", r.body)
	}
	r = tn.expect(tn.do("GET", "/orders/"+id, ""), http.StatusOK)
	r.json(t, &o)
	if o["status"] != "Delivered" || o["version"] != 4.0 || len(o["items"].([]any)) != 2 {
		t.Fatalf("get: %s", r.body)
	}

	// The read side catches up: list and stats.
	waitFor(t, "stats to show the delivered order", func() bool {
		var st struct {
			TotalOrders int
			ByStatus    map[string]int
		}
		tn.expect(tn.do("GET", "/stats", ""), http.StatusOK).json(t, &st)
		return st.TotalOrders == 1 && st.ByStatus["Delivered"] == 1
	})
	r = tn.expect(tn.do("GET", "/stats", ""), http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"totalRevenue":1059.97`)) || !bytes.Contains(r.body, []byte(`"timestamp"`)) {
		t.Fatalf("stats %s", r.body)
	}
	var list []map[string]any
	tn.expect(tn.do("GET", "/orders", ""), http.StatusOK).json(t, &list)
	if len(list) != 1 || list[0]["orderId"] != id || list[0]["status"] != "Delivered" {
		t.Fatalf("list %v", list)
	}
}

func TestCancelAndStateMachineConflicts(t *testing.T) {
	tn := startNode(t)
	id := tn.create(seedOrder)
	tn.expect(tn.do("POST", "/orders/"+id+"/ship", ""), http.StatusConflict)
	tn.expect(tn.do("POST", "/orders/"+id+"/deliver", ""), http.StatusConflict)
	r := tn.expect(tn.do("POST", "/orders/"+id+"/cancel", `{"reason":"changed my mind"}`), http.StatusOK)
	var o map[string]any
	r.json(t, &o)
	if o["status"] != "Cancelled" || o["cancelledAt"] == nil || o["cancelReason"] != "changed my mind" {
		t.Fatalf("cancel: %s", r.body)
	}
	for _, op := range []string{"pay", "ship", "deliver", "cancel"} {
		r := tn.expect(tn.do("POST", "/orders/"+id+"/"+op, ""), http.StatusConflict)
		var e struct{ Error, Code string }
		r.json(t, &e)
		if e.Code != "invalid_transition" || !strings.Contains(e.Error, "Cancelled") {
			t.Fatalf("%s on a cancelled order: %s", op, r.body)
		}
	}
	// Cancel from Paid is allowed; from Shipped it is not.
	id2 := tn.create(seedOrder)
	tn.expect(tn.do("POST", "/orders/"+id2+"/pay", ""), http.StatusOK)
	tn.expect(tn.do("POST", "/orders/"+id2+"/cancel", ""), http.StatusOK)
	id3 := tn.create(seedOrder)
	tn.expect(tn.do("POST", "/orders/"+id3+"/pay", ""), http.StatusOK)
	tn.expect(tn.do("POST", "/orders/"+id3+"/ship", ""), http.StatusOK)
	tn.expect(tn.do("POST", "/orders/"+id3+"/cancel", ""), http.StatusConflict)
	// Revenue excludes cancelled orders.
	waitFor(t, "stats", func() bool {
		r := tn.do("GET", "/stats", "")
		return bytes.Contains(r.body, []byte(`"totalRevenue":1059.97`)) && bytes.Contains(r.body, []byte(`"Cancelled":2`))
	})
}

func TestErrorPaths(t *testing.T) {
	tn := startNode(t)
	id := tn.create(seedOrder)
	cases := []struct {
		name, method, path, body string
		status                   int
		code, contains           string
	}{
		{"unknown order", "GET", "/orders/doesnotexist", "", 404, "not_found", "doesnotexist"},
		{"unknown order history", "GET", "/orders/doesnotexist/history", "", 404, "not_found", "doesnotexist"},
		{"pay unknown order", "POST", "/orders/doesnotexist/pay", "", 404, "not_found", "doesnotexist"},
		{"bad order id", "GET", "/orders/bad%20id!", "", 400, "invalid_argument", "orderId"},
		{"long order id", "GET", "/orders/" + strings.Repeat("a", 65), "", 400, "invalid_argument", "orderId"},
		{"no body", "POST", "/orders", "", 400, "invalid_argument", "body is required"},
		{"malformed json", "POST", "/orders", `{"customerId":`, 400, "invalid_argument", "malformed JSON"},
		{"not an object", "POST", "/orders", `[1,2]`, 400, "invalid_argument", "JSON object"},
		{"two objects", "POST", "/orders", seedOrder + seedOrder, 400, "invalid_argument", "exactly one"},
		{"unknown field", "POST", "/orders", `{"customerId":"c","items":[],"extra":1}`, 400, "invalid_argument", `"extra"`},
		{"wrong type", "POST", "/orders", `{"customerId":5,"items":[]}`, 400, "invalid_argument", "customerId"},
		{"empty customer", "POST", "/orders", `{"customerId":"","items":[{"productId":"p","quantity":1,"price":1}]}`, 400, "invalid_argument", "customerId"},
		{"no items", "POST", "/orders", `{"customerId":"c","items":[]}`, 400, "invalid_argument", "items"},
		{"zero quantity", "POST", "/orders", `{"customerId":"c","items":[{"productId":"p","quantity":0,"price":1}]}`, 400, "invalid_argument", "items[0].quantity"},
		{"fractional quantity", "POST", "/orders", `{"customerId":"c","items":[{"productId":"p","quantity":1.5,"price":1}]}`, 400, "invalid_argument", "1.5"},
		{"negative price", "POST", "/orders", `{"customerId":"c","items":[{"productId":"p","quantity":1,"price":-3}]}`, 400, "invalid_argument", "items[0].price"},
		{"three decimals", "POST", "/orders", `{"customerId":"c","items":[{"productId":"p","quantity":1,"price":1.999}]}`, 400, "invalid_argument", "1.999"},
		{"missing price", "POST", "/orders", `{"customerId":"c","items":[{"productId":"p","quantity":1}]}`, 400, "invalid_argument", "items[0].price"},
		{"missing product", "POST", "/orders", `{"customerId":"c","items":[{"quantity":1,"price":1}]}`, 400, "invalid_argument", "items[0].productId"},
		{"bad pay body", "POST", "/orders/" + id + "/pay", `{"paymentMethod":1}`, 400, "invalid_argument", "paymentMethod"},
		{"unknown pay field", "POST", "/orders/" + id + "/pay", `{"method":"x"}`, 400, "invalid_argument", `"method"`},
		{"bad status filter", "GET", "/orders?status=Lost", "", 400, "invalid_argument", "Lost"},
		{"bad limit", "GET", "/orders?limit=0", "", 400, "invalid_argument", "limit"},
		{"huge limit", "GET", "/orders?limit=1001", "", 400, "invalid_argument", "1000"},
		{"bad cursor", "GET", "/orders?cursor=zzz", "", 400, "invalid_argument", "cursor"},
		{"unknown query", "GET", "/orders?sort=asc", "", 400, "invalid_argument", "sort"},
		{"no route", "GET", "/nothing", "", 404, "not_found", "/nothing"},
		{"wrong method", "DELETE", "/orders/" + id, "", 405, "method_not_allowed", "DELETE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tn.expect(tn.do(c.method, c.path, c.body), c.status)
			var e struct{ Error, Code string }
			r.json(t, &e)
			if e.Code != c.code || !strings.Contains(e.Error, c.contains) {
				t.Fatalf("error %s, want code %s containing %q", r.body, c.code, c.contains)
			}
		})
	}
	t.Run("body over 1 MiB", func(t *testing.T) {
		big := `{"customerId":"` + strings.Repeat("x", 1<<20) + `","items":[]}`
		r := tn.expect(tn.do("POST", "/orders", big), http.StatusRequestEntityTooLarge)
		if !bytes.Contains(r.body, []byte("payload_too_large")) {
			t.Fatalf("413 body %s", r.body)
		}
	})
	t.Run("bad idempotency key", func(t *testing.T) {
		tn.expect(tn.do("POST", "/orders", seedOrder, "Idempotency-Key", "has space"), http.StatusBadRequest)
	})
}

func TestIdempotencyKey(t *testing.T) {
	tn := startNode(t)
	first := tn.expect(tn.do("POST", "/orders", seedOrder, "Idempotency-Key", "create-abc"), http.StatusCreated)
	again := tn.expect(tn.do("POST", "/orders", seedOrder, "Idempotency-Key", "create-abc"), http.StatusCreated)
	if !bytes.Equal(first.body, again.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried create answered %s, first %s", again.body, first.body)
	}
	var c struct{ OrderID string }
	first.json(t, &c)
	// The same key with another body is refused.
	other := strings.Replace(seedOrder, "customer-123", "customer-999", 1)
	tn.expect(tn.do("POST", "/orders", other, "Idempotency-Key", "create-abc"), http.StatusUnprocessableEntity)

	p1 := tn.expect(tn.do("POST", "/orders/"+c.OrderID+"/pay", `{"paymentMethod":"card"}`, "Idempotency-Key", "pay-1"), http.StatusOK)
	p2 := tn.expect(tn.do("POST", "/orders/"+c.OrderID+"/pay", `{"paymentMethod":"card"}`, "Idempotency-Key", "pay-1"), http.StatusOK)
	if !bytes.Equal(p1.body, p2.body) {
		t.Fatalf("retried pay: %s vs %s", p2.body, p1.body)
	}
	// Without a key, a second pay is a conflict.
	tn.expect(tn.do("POST", "/orders/"+c.OrderID+"/pay", `{"paymentMethod":"card"}`), http.StatusConflict)
	var hist []any
	tn.expect(tn.do("GET", "/orders/"+c.OrderID+"/history", ""), http.StatusOK).json(t, &hist)
	if len(hist) != 2 {
		t.Fatalf("history has %d events, want 2 (create and one pay)", len(hist))
	}
	waitFor(t, "one order in the read model", func() bool {
		var st struct{ TotalOrders int }
		tn.do("GET", "/stats", "").json(t, &st)
		return st.TotalOrders == 1
	})
}

func TestConcurrentPaysOneWins(t *testing.T) {
	tn := startNode(t)
	id := tn.create(seedOrder)
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[200] != 1 || counts[409] != 49 {
		t.Fatalf("statuses %v, want one 200 and 49 409", counts)
	}
	var hist []map[string]any
	tn.expect(tn.do("GET", "/orders/"+id+"/history", ""), http.StatusOK).json(t, &hist)
	if len(hist) != 2 || hist[1]["type"] != "OrderPaid" {
		t.Fatalf("history %v, want create and exactly one payment", hist)
	}
}

func TestListPaginationAndFilter(t *testing.T) {
	tn := startNode(t)
	var ids []string
	for i := range 7 {
		id := tn.create(seedOrder)
		ids = append(ids, id)
		if i%2 == 0 {
			tn.expect(tn.do("POST", "/orders/"+id+"/pay", ""), http.StatusOK)
		}
	}
	waitFor(t, "7 orders listed", func() bool {
		var l []any
		tn.do("GET", "/orders", "").json(t, &l)
		return len(l) == 7
	})
	var seen []string
	path := "/orders?limit=3"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		r := tn.expect(tn.do("GET", path, ""), http.StatusOK)
		var page []struct{ OrderID string }
		r.json(t, &page)
		for _, p := range page {
			seen = append(seen, p.OrderID)
		}
		path = ""
		if next := r.header.Get("X-Next-Cursor"); next != "" {
			path = "/orders?limit=3&cursor=" + next
		}
	}
	if len(seen) != 7 {
		t.Fatalf("pages listed %d orders, want 7: %v", len(seen), seen)
	}
	for i := range seen {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("order %d is %s, want newest first %v", i, seen[i], ids)
		}
	}
	waitFor(t, "4 paid orders", func() bool {
		var paid []struct{ Status string }
		tn.do("GET", "/orders?status=paid", "").json(t, &paid)
		if len(paid) != 4 {
			return false
		}
		for _, p := range paid {
			if p.Status != "Paid" {
				t.Fatalf("filter returned %s", p.Status)
			}
		}
		return true
	})
}

func TestInfoHealthAndToken(t *testing.T) {
	tn := startNode(t, func(c *node.Config) { c.APIToken = "s3cret" })
	for _, p := range []string{"/health", "/health/live", "/health/ready"} {
		tn.expect(tn.do("GET", p, ""), http.StatusOK)
	}
	for _, p := range []string{"/", "/orders", "/stats", "/orders/x"} {
		r := tn.expect(tn.do("GET", p, ""), http.StatusUnauthorized)
		if !bytes.Contains(r.body, []byte("unauthorized")) {
			t.Fatalf("401 body %s", r.body)
		}
		tn.expect(tn.do("GET", p, "", "Authorization", "Bearer wrong"), http.StatusUnauthorized)
	}
	r := tn.expect(tn.do("GET", "/", "", "Authorization", "Bearer s3cret"), http.StatusOK)
	var info map[string]any
	r.json(t, &info)
	if info["nodeId"] != "n1" || info["mode"] != "standalone" || info["transport"] != "inmemory" || len(info["members"].([]any)) != 1 {
		t.Fatalf("info %s", r.body)
	}
	if bytes.Contains(r.body, []byte("s3cret")) {
		t.Fatal("GET / shows the token")
	}
	var h struct {
		Status     string
		Components map[string]struct{ Status string }
	}
	tn.expect(tn.do("GET", "/health", ""), http.StatusOK).json(t, &h)
	if h.Status != "up" || h.Components["persistence"].Status != "up" || h.Components["transport"].Status != "up" {
		t.Fatalf("health %+v", h)
	}
}

func TestShutdownStopsServingAndIsIdempotent(t *testing.T) {
	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.DrainDelay = 0, "n1", 0
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.Addr()
	res, err := http.Get(base + "/health/ready")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("ready before shutdown: %v %v", res, err)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get(base + "/health/live"); err == nil {
		t.Fatal("node still serves after shutdown")
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	tn := startNode(t)
	cfg := node.Default()
	var port int
	fmt.Sscanf(tn.n.Addr()[strings.LastIndex(tn.n.Addr(), ":")+1:], "%d", &port)
	cfg.Port = port
	_, err := node.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "--port") {
		t.Fatalf("start on a used port: %v", err)
	}
	cfg = node.Default()
	cfg.Transport = "kafka"
	if _, err := node.Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--transport=kafka") {
		t.Fatalf("bad transport: %v", err)
	}
}

func TestMetricsMoveAfterTraffic(t *testing.T) {
	tn := startNode(t, func(c *node.Config) { c.APIToken = "tok" })
	r := tn.expect(tn.do("POST", "/orders", seedOrder, "Authorization", "Bearer tok"), http.StatusCreated)
	var c struct{ OrderID string }
	r.json(t, &c)
	tn.expect(tn.do("POST", "/orders/"+c.OrderID+"/pay", "", "Authorization", "Bearer tok"), http.StatusOK)
	waitFor(t, "the outbox to publish", func() bool {
		body := string(tn.expect(tn.do("GET", "/metrics", ""), http.StatusOK).body) // open without the token
		return strings.Contains(body, "outbox_published_total 2")
	})
	body := string(tn.do("GET", "/metrics", "").body)
	for _, want := range []string{
		`order_commands_total{command="create",outcome="ok"} 1`,
		`order_commands_total{command="pay",outcome="ok"} 1`,
		"journal_append_duration_seconds_count 2",
		"order_actors_active 1",
		`backend_up{component="persistence"} 1`,
		"cluster_members 1",
		`http_requests_total{method="POST",route="/orders",status="201"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, c.OrderID) {
		t.Error("/metrics has an order id in a label")
	}
}

// TestShutdownDrainsBeforeClosing: for the drain delay after Shutdown
// begins, readiness answers 503 while every route, order writes included,
// still serves; then the port closes.
func TestShutdownDrainsBeforeClosing(t *testing.T) {
	const delay = 2 * time.Second
	tn := startNode(t, func(c *node.Config) { c.DrainDelay = delay })
	id := tn.create(seedOrder)
	tn.expect(tn.do("GET", "/health/ready", ""), http.StatusOK)

	start := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- tn.n.Shutdown(ctx)
	}()
	waitFor(t, "readiness 503", func() bool { return tn.do("GET", "/health/ready", "").status == http.StatusServiceUnavailable })
	var ready struct {
		Components map[string]struct{ Status, Error string }
	}
	tn.do("GET", "/health/ready", "").json(t, &ready)
	if c := ready.Components["node"]; c.Status != "down" || c.Error != "shutting down" {
		t.Fatalf("readiness during the drain: %+v", ready)
	}
	tn.expect(tn.do("GET", "/health/live", ""), http.StatusOK)
	created := tn.create(seedOrder)
	tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	tn.expect(tn.do("GET", "/orders/"+created, ""), http.StatusOK)
	tn.expect(tn.do("GET", "/orders/"+id+"/history", ""), http.StatusOK)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned after %s (%v), before the drain delay of %s ended", time.Since(start), err, delay)
	default:
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took < delay {
		t.Fatalf("Shutdown took %s, less than the drain delay %s", took, delay)
	}
	if c, err := net.DialTimeout("tcp", tn.n.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the HTTP port still accepts connections after the drain")
	}
}

// TestShutdownDeadlineCutsTheDrainDelay: the delay counts against the
// shutdown's context; when it ends, the node closes at once.
func TestShutdownDeadlineCutsTheDrainDelay(t *testing.T) {
	cfg := node.Default()
	cfg.Port, cfg.NodeID = 0, "n1"
	cfg.DrainDelay, cfg.ShutdownTimeout = time.Minute, 2*time.Minute
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = n.Shutdown(ctx)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Shutdown took %s with a 300ms deadline (%v)", took, err)
	}
	// The outbox flush has no time left: the error says so.
	t.Logf("shutdown with its deadline inside the drain delay: %v", err)
	if c, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the HTTP port still accepts connections")
	}
}

func TestDrainDelayValidation(t *testing.T) {
	for _, c := range []struct {
		delay, timeout time.Duration
		want           string
	}{
		{-time.Second, 30 * time.Second, "--drain-delay=-1s: must be 0"},
		{30 * time.Second, 30 * time.Second, "--drain-delay=30s: must be shorter than --shutdown-timeout=30s"},
		{time.Minute, 30 * time.Second, "--drain-delay=1m0s: must be shorter than --shutdown-timeout=30s"},
		{0, 30 * time.Second, ""},
		{29 * time.Second, 30 * time.Second, ""},
	} {
		cfg := node.Default()
		cfg.DrainDelay, cfg.ShutdownTimeout = c.delay, c.timeout
		err := cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("drain delay %s, shutdown timeout %s: %v, want %q", c.delay, c.timeout, err, c.want)
		}
	}
	cfg := node.Default()
	cfg.MaxInFlightReads = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--max-in-flight-reads=-1") {
		t.Errorf("max-in-flight-reads -1: %v", err)
	}
}
