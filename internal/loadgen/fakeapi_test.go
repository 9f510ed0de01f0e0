package loadgen

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a tiny in-memory imitation of the OrderSystem HTTP API, only
// good enough to test the generator: it enforces the state machine (so a
// generator that sends transitions out of order sees 409s) and counts every
// request by status.
type fakeAPI struct {
	token      string              // when set, requests need "Bearer <token>"
	noLocation bool                // create answers without a Location header
	liveStatus func(n int) int     // status of the n-th (1-based) live probe
	delay      time.Duration       // added to requests, cut short by their context
	slow       int                 // when positive, only the first slow requests get delay
	refuse     map[string]struct{} // patterns answering 503
	// owner, when set, names the node that owns order id; create and order
	// answers carry it as X-Order-Owner (r is the request being answered).
	owner func(r *http.Request, id string) string

	mu      sync.Mutex
	nextID  int
	orders  map[string]*fakeOrder
	total   int
	status  map[int]uint64
	byRoute map[string]int
	live    int
	seen    int
}

type fakeOrder struct {
	ID, CustomerID, Status string
	Version                int
	Events                 []map[string]any
}

func newFakeServer(t *testing.T, f *fakeAPI) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return srv
}

// handler initializes f and returns its HTTP handler.
func (f *fakeAPI) handler() http.Handler {
	f.orders = map[string]*fakeOrder{}
	f.status = map[int]uint64{}
	f.byRoute = map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.live++
		n := f.live
		f.mu.Unlock()
		code := http.StatusOK
		if f.liveStatus != nil {
			code = f.liveStatus(n)
		}
		writeJSON(w, code, map[string]string{"status": http.StatusText(code)})
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("POST /orders", f.create)
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.withOrder(w, r, func(o *fakeOrder) (int, any) { return http.StatusOK, o.view() })
	})
	mux.HandleFunc("GET /orders/{id}/history", func(w http.ResponseWriter, r *http.Request) {
		f.withOrder(w, r, func(o *fakeOrder) (int, any) { return http.StatusOK, o.Events })
	})
	for _, tr := range []struct {
		path, to string
		from     []string
	}{
		{"pay", "Paid", []string{"Pending"}},
		{"ship", "Shipped", []string{"Paid"}},
		{"deliver", "Delivered", []string{"Shipped"}},
		{"cancel", "Cancelled", []string{"Pending", "Paid"}},
	} {
		mux.HandleFunc("POST /orders/{id}/"+tr.path, func(w http.ResponseWriter, r *http.Request) {
			f.withOrder(w, r, func(o *fakeOrder) (int, any) {
				for _, s := range tr.from {
					if o.Status == s {
						o.Status = tr.to
						o.Version++
						o.Events = append(o.Events, map[string]any{"type": "Order" + tr.to, "version": o.Version, "orderId": o.ID})
						return http.StatusOK, o.view()
					}
				}
				return http.StatusConflict, map[string]string{"error": "cannot " + tr.path + " a " + o.Status + " order", "code": "conflict"}
			})
		})
	}
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []any{})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := len(f.orders)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"totalOrders": n})
	})

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			f.mu.Lock()
			f.total++
			f.status[rec.code]++
			f.byRoute[r.Method+" "+r.URL.Path]++
			f.mu.Unlock()
		}()
		f.mu.Lock()
		f.seen++
		delay := f.delay
		if f.slow > 0 && f.seen > f.slow {
			delay = 0
		}
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			writeJSON(rec, http.StatusUnauthorized, map[string]string{"error": "missing or wrong token", "code": "unauthorized"})
			return
		}
		if _, p := mux.Handler(r); p != "" {
			if _, no := f.refuse[p]; no {
				writeJSON(rec, http.StatusServiceUnavailable, map[string]string{"error": "unavailable", "code": "unavailable"})
				return
			}
		}
		mux.ServeHTTP(rec, r)
	})
	return h
}

func (f *fakeAPI) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		CustomerID string `json:"customerId"`
		Items      []struct {
			Quantity int     `json:"quantity"`
			Price    float64 `json:"price"`
		} `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.CustomerID == "" || len(in.Items) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad order", "code": "invalid"})
		return
	}
	f.mu.Lock()
	f.nextID++
	id := "o-" + strconv.Itoa(f.nextID)
	o := &fakeOrder{ID: id, CustomerID: in.CustomerID, Status: "Pending", Version: 1}
	o.Events = append(o.Events, map[string]any{"type": "OrderCreated", "version": 1, "orderId": id})
	f.orders[id] = o
	f.mu.Unlock()
	if !f.noLocation {
		w.Header().Set("Location", "/orders/"+id)
	}
	if f.owner != nil {
		w.Header().Set(OwnerHeader, f.owner(r, id))
	}
	writeJSON(w, http.StatusCreated, map[string]any{"orderId": id, "customerId": in.CustomerID, "total": 1059.97, "createdAt": time.Now()})
}

func (f *fakeAPI) withOrder(w http.ResponseWriter, r *http.Request, fn func(*fakeOrder) (int, any)) {
	f.mu.Lock()
	o, ok := f.orders[r.PathValue("id")]
	var code int
	var body any
	if ok {
		code, body = fn(o)
	}
	f.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order", "code": "not_found"})
		return
	}
	if f.owner != nil {
		w.Header().Set(OwnerHeader, f.owner(r, o.ID))
	}
	writeJSON(w, code, body)
}

func (o *fakeOrder) view() map[string]any {
	return map[string]any{"orderId": o.ID, "customerId": o.CustomerID, "status": o.Status, "version": o.Version}
}

// counts returns copies of the request total and the status counts.
func (f *fakeAPI) counts() (int, map[int]uint64, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := make(map[int]uint64, len(f.status))
	for k, v := range f.status {
		st[k] = v
	}
	rt := make(map[string]int, len(f.byRoute))
	for k, v := range f.byRoute {
		rt[k] = v
	}
	return f.total, st, rt
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fakeNode is one member of a fake cluster: its own server and node id in
// front of the cluster's shared fakeAPI, so that every node knows every
// order, as the nodes of a real cluster do.
type fakeNode struct {
	id  string
	srv *httptest.Server

	mu      sync.Mutex
	byOwner map[string]int // order reads this node answered, by X-Order-Owner
}

// newFakeCluster starts a node per id in front of f. GET / on a node
// answers {"nodeId": id, "members": [...]}, like an OrderSystem node.
func newFakeCluster(t *testing.T, f *fakeAPI, ids ...string) []*fakeNode {
	t.Helper()
	h := f.handler()
	members := make([]map[string]string, len(ids))
	for i, id := range ids {
		members[i] = map[string]string{"id": id}
	}
	nodes := make([]*fakeNode, len(ids))
	for i, id := range ids {
		n := &fakeNode{id: id, byOwner: map[string]int{}}
		n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/" {
				writeJSON(w, http.StatusOK, map[string]any{"service": "ordersystem", "nodeId": n.id, "members": members})
				return
			}
			h.ServeHTTP(w, r)
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/orders/") {
				n.mu.Lock()
				n.byOwner[w.Header().Get(OwnerHeader)]++
				n.mu.Unlock()
			}
		}))
		t.Cleanup(n.srv.Close)
		nodes[i] = n
	}
	return nodes
}

// reads returns a copy of the node's order reads by owner.
func (n *fakeNode) reads() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int, len(n.byOwner))
	for k, v := range n.byOwner {
		out[k] = v
	}
	return out
}

// spreadOwners makes order "o-N" owned by ids[N % len(ids)].
func spreadOwners(ids ...string) func(*http.Request, string) string {
	return func(_ *http.Request, id string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "o-"))
		return ids[n%len(ids)]
	}
}
