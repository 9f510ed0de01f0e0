package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/node"
)

// GET /orders/{id}?asOf= answers the order as it was after a version or at
// a time, and refuses what it cannot read.
func TestOrderAsOf(t *testing.T) {
	tn := startNode(t)
	id := tn.create(seedOrder)
	type orderBody struct {
		OrderID string    `json:"orderId"`
		Status  string    `json:"status"`
		Version uint64    `json:"version"`
		PaidAt  time.Time `json:"paidAt"`
	}
	tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	var paid orderBody
	tn.expect(tn.do("GET", "/orders/"+id, ""), http.StatusOK).json(t, &paid)
	tn.expect(tn.do("POST", "/orders/"+id+"/ship", `{"trackingNumber":"TRACK-1"}`), http.StatusOK)

	for _, c := range []struct {
		asOf    string
		status  string
		version uint64
	}{
		{"1", "Pending", 1},
		{"2", "Paid", 2},
		{"3", "Shipped", 3},
		{paid.PaidAt.Format(time.RFC3339Nano), "Paid", 2},
		{paid.PaidAt.Add(-time.Nanosecond).Format(time.RFC3339Nano), "Pending", 1},
		{time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "Shipped", 3},
	} {
		r := tn.expect(tn.do("GET", "/orders/"+id+"?asOf="+url.QueryEscape(c.asOf), ""), http.StatusOK)
		var got orderBody
		r.json(t, &got)
		if got.OrderID != id || got.Status != c.status || got.Version != c.version || r.header.Get("X-Order-As-Of-Version") != strconv.FormatUint(c.version, 10) {
			t.Errorf("asOf=%s: %s v%d (header %q), want %s v%d", c.asOf, got.Status, got.Version, r.header.Get("X-Order-As-Of-Version"), c.status, c.version)
		}
	}
	for _, c := range []struct {
		query  string
		status int
		want   string
	}{
		{"asOf=4", http.StatusNotFound, "has 3 versions"},
		{"asOf=2000-01-01T00:00:00Z", http.StatusNotFound, "did not exist yet"},
		{"asOf=0", http.StatusBadRequest, "asOf: must be a version"},
		{"asOf=yesterday", http.StatusBadRequest, "asOf: must be a version"},
		{"asof=1", http.StatusBadRequest, "asof"},
		{"asOf=1&asOf=2", http.StatusBadRequest, "asOf"},
		{"status=Paid", http.StatusBadRequest, "status"},
	} {
		r := tn.expect(tn.do("GET", "/orders/"+id+"?"+c.query, ""), c.status)
		if !strings.Contains(string(r.body), c.want) {
			t.Errorf("?%s: %s, want it to mention %q", c.query, r.body, c.want)
		}
	}
	tn.expect(tn.do("GET", "/orders/nosuchorder?asOf=1", ""), http.StatusNotFound)
}

// The probes answer HEAD with the status of GET and no body.
func TestProbesAnswerHead(t *testing.T) {
	tn := startNode(t)
	for _, p := range []string{"/health", "/health/live", "/health/ready"} {
		r := tn.do("HEAD", p, "")
		if r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes", p, r.status, len(r.body))
		}
	}
}

// BenchmarkOrderAsOf: GET /orders/{id}?asOf= of a delivered order (its
// whole history, 4 events: the longest an order gets) next to a plain GET,
// through a real in-memory node over HTTP, one request at a time.
//
//	go test -run x -bench OrderAsOf ./node/
func BenchmarkOrderAsOf(b *testing.B) {
	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.DrainDelay = 0, "bench", 0
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	base := "http://" + n.Addr()
	post := func(path, body string) []byte {
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			b.Fatalf("POST %s: %d %s", path, res.StatusCode, out)
		}
		return out
	}
	var created struct{ OrderID string }
	_ = json.Unmarshal(post("/orders", seedOrder), &created)
	id := created.OrderID
	post("/orders/"+id+"/pay", `{"paymentMethod":"card"}`)
	post("/orders/"+id+"/ship", `{"trackingNumber":"T-1"}`)
	post("/orders/"+id+"/deliver", "")
	for _, c := range []struct{ name, query string }{
		{"current", ""},
		{"version", "?asOf=2"},
		{"time", "?asOf=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano))},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, err := http.Get(base + "/orders/" + id + c.query)
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("%v %v", err, res)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}
