package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
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

// seedLongOrder journals an order of n events straight into j, dated one
// millisecond apart from start: a create, then payments, and a shipment last
// if ship is set. The state machine allows only a handful of events per
// order through the API; order.Evolve folds facts without judging them, so
// repeated payments make a long stream the fold accepts (as the actors'
// BenchmarkActivation1000Events seeds it).
func seedLongOrder(b *testing.B, j persistence.Journal, id string, n int, start time.Time, ship bool) {
	b.Helper()
	recs := make([]persistence.Record, 0, n)
	for v := 1; v <= n; v++ {
		at := start.Add(time.Duration(v) * time.Millisecond)
		var e order.Event = order.Paid{PaymentMethod: "card", At: at}
		switch {
		case v == 1:
			e = order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Name: "n", Quantity: 1, UnitPrice: 100}}, Total: 100, At: at}
		case v == n && ship:
			e = order.Shipped{TrackingNumber: "T-1", At: at}
		}
		data, err := proto.Marshal(codec.EventToProto(id, uint64(v), fmt.Sprint("seed-", v), "f", e))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, persistence.Record{Type: e.EventType(), Data: data})
	}
	if _, err := j.Append(context.Background(), id, 0, recs); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOrderAsOf1000: GET /orders/{id}?asOf= of an order of 1,000
// events, with the snapshot the node leaves at version 1,000
// (--snapshot-every 100, the default) and without one (the same stream
// seeded with no snapshot, as with --snapshot-every 0), by version (early:
// 10, middle: 500, latest: 1,000) and by time (middle: event 500's time,
// latest: now), next to a plain GET. Through a real in-memory node over
// HTTP, one request at a time. Only the newest snapshot is kept, so the
// early and middle points fold from the first event either way.
//
//	go test -run x -bench OrderAsOf1000 -benchtime 2s ./node/
func BenchmarkOrderAsOf1000(b *testing.B) {
	const events = 1000
	backend := memory.NewPartitioned(persistence.DefaultPartitions)
	start := time.Now().Add(-time.Hour).UTC()
	// The snapshot's order: 999 events seeded, the 1,000th (its shipment)
	// through the API, so the node writes the snapshot as it does in use.
	seedLongOrder(b, backend, "asof-snap", events-1, start, false)
	seedLongOrder(b, backend, "asof-nosnap", events, start, true)
	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.DrainDelay, cfg.LogLevel = 0, "bench", 0, "error"
	n, err := node.Start(node.WithBackend(context.Background(), backend), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	base := "http://" + n.Addr()
	res, err := http.Post(base+"/orders/asof-snap/ship", "application/json", strings.NewReader(`{"trackingNumber":"T-1"}`))
	if err != nil || res.StatusCode != http.StatusOK {
		b.Fatalf("ship: %v %v", err, res)
	}
	res.Body.Close()
	if s, ok, err := backend.LoadSnapshot(context.Background(), "asof-snap"); err != nil || !ok || s.Version != events {
		b.Fatalf("snapshot of asof-snap: version %d ok=%v err=%v, want %d", s.Version, ok, err, events)
	}
	if _, ok, _ := backend.LoadSnapshot(context.Background(), "asof-nosnap"); ok {
		b.Fatal("asof-nosnap has a snapshot")
	}
	middle := start.Add(500 * time.Millisecond).Format(time.RFC3339Nano)
	latest := time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	for _, c := range []struct {
		name, query string
		version     uint64
	}{
		{"current", "", events},
		{"version_early", "?asOf=10", 10},
		{"version_middle", "?asOf=500", 500},
		{"version_latest", "?asOf=1000", events},
		{"time_middle", "?asOf=" + url.QueryEscape(middle), 500},
		{"time_latest", "?asOf=" + url.QueryEscape(latest), events},
	} {
		for _, o := range []struct{ name, id string }{{"snapshot", "asof-snap"}, {"no_snapshot", "asof-nosnap"}} {
			if c.query == "" && o.id == "asof-nosnap" {
				continue // a plain GET reads the active actor's state either way
			}
			b.Run(c.name+"/"+o.name, func(b *testing.B) {
				get := func() []byte {
					res, err := http.Get(base + "/orders/" + o.id + c.query)
					if err != nil {
						b.Fatal(err)
					}
					defer res.Body.Close()
					body, _ := io.ReadAll(res.Body)
					if res.StatusCode != http.StatusOK {
						b.Fatalf("%d %s", res.StatusCode, body)
					}
					return body
				}
				var got struct{ Version uint64 }
				if err := json.Unmarshal(get(), &got); err != nil || got.Version != c.version {
					b.Fatalf("version %d (%v), want %d", got.Version, err, c.version)
				}
				for b.Loop() {
					get()
				}
			})
		}
	}
}
