package node_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GET /orders/{id}?asOf= answers the order as it was after a version or at
// a time, and refuses what it cannot read.
func TestOrderAsOf(t *testing.T) {
	tn := startNode(t)
	id := tn.create(seedOrder)
	type orderBody struct {
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
		if got.Status != c.status || got.Version != c.version || r.header.Get("X-Order-As-Of-Version") != strconv.FormatUint(c.version, 10) {
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
