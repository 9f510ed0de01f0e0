package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// blockingOrders holds every call until release is closed.
type blockingOrders struct {
	entered chan struct{}
	release chan struct{}
}

func (b blockingOrders) Command(ctx context.Context, id string, _ *orderpb.Command) (*orderpb.Reply, error) {
	return b.Get(ctx, id)
}

func (b blockingOrders) Get(_ context.Context, id string) (*orderpb.Reply, error) {
	b.entered <- struct{}{}
	<-b.release
	return &orderpb.Reply{Order: &orderpb.Order{OrderId: id}}, nil
}

func (b blockingOrders) History(ctx context.Context, id string) (*orderpb.Reply, error) {
	return b.Get(ctx, id)
}

func (b blockingOrders) AsOf(ctx context.Context, id string, _ *orderpb.GetOrderAsOf) (*orderpb.Reply, error) {
	return b.Get(ctx, id)
}

func TestMaxInFlightRefusesInsteadOfQueueing(t *testing.T) {
	bo := blockingOrders{entered: make(chan struct{}, 10), release: make(chan struct{})}
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Orders, c.MaxInFlightReads = bo, 2 })
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, srv.URL, "GET", "/orders/a", "") }()
	}
	waitEntered(t, bo.entered, 2)
	res := do(t, srv.URL, "GET", "/orders/b", "")
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("third request in flight: %d %s, want 503", res.status, res.body)
	}
	if r := do(t, srv.URL, "GET", "/health/live", ""); r.status != http.StatusOK {
		t.Fatalf("probes are not limited: %d", r.status)
	}
	close(bo.release)
	wg.Wait()
	if r := do(t, srv.URL, "GET", "/orders/c", ""); r.status != http.StatusOK {
		t.Fatalf("after the others finished: %d %s", r.status, r.body)
	}
}

// gatedOrders is fakeOrders whose writes (Command) or reads (Get, History)
// wait, while their gate is on, until release is closed.
type gatedOrders struct {
	*fakeOrders
	gateWrites, gateReads atomic.Bool
	entered               chan struct{}
	release               chan struct{}
}

func newGatedOrders() *gatedOrders {
	return &gatedOrders{fakeOrders: newFakeOrders(), entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gatedOrders) wait(gate *atomic.Bool) {
	if gate.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
}

func (g *gatedOrders) Command(ctx context.Context, id string, cmd *orderpb.Command) (*orderpb.Reply, error) {
	g.wait(&g.gateWrites)
	return g.fakeOrders.Command(ctx, id, cmd)
}

func (g *gatedOrders) Get(ctx context.Context, id string) (*orderpb.Reply, error) {
	g.wait(&g.gateReads)
	return g.fakeOrders.Get(ctx, id)
}

func (g *gatedOrders) History(ctx context.Context, id string) (*orderpb.Reply, error) {
	g.wait(&g.gateReads)
	return g.fakeOrders.History(ctx, id)
}

func (g *gatedOrders) AsOf(ctx context.Context, id string, q *orderpb.GetOrderAsOf) (*orderpb.Reply, error) {
	g.wait(&g.gateReads)
	return g.fakeOrders.AsOf(ctx, id, q)
}

func waitEntered(t *testing.T, entered <-chan struct{}, n int) {
	t.Helper()
	for range n {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not reach the orders")
		}
	}
}

// createOrder creates an order and returns its path.
func createOrder(t *testing.T, base string) string {
	t.Helper()
	res := do(t, base, "POST", "/orders", seedOrder)
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	return res.header.Get("Location")
}

// wantOverloaded checks a 503 of the named budget.
func wantOverloaded(t *testing.T, res response, kind string) {
	t.Helper()
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"overloaded"`) ||
		!strings.Contains(string(res.body), "order "+kind+" in flight") {
		t.Fatalf("%d %s, want 503 overloaded naming order %s", res.status, res.body, kind)
	}
}

// A flood of writes fills the write budget only: reads of existing orders
// and of the list still answer.
func TestWriteFloodDoesNotRefuseReads(t *testing.T) {
	g := newGatedOrders()
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Orders, c.MaxInFlight, c.MaxInFlightReads = g, 2, 2 })
	path := createOrder(t, srv.URL)
	g.gateWrites.Store(true)
	var wg sync.WaitGroup
	for _, w := range []struct{ path, body string }{{"/orders", seedOrder}, {path + "/pay", `{"paymentMethod":"card"}`}} {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, srv.URL, "POST", w.path, w.body) }()
	}
	waitEntered(t, g.entered, 2)
	wantOverloaded(t, do(t, srv.URL, "POST", "/orders", seedOrder), "writes")
	wantOverloaded(t, do(t, srv.URL, "POST", path+"/cancel", ""), "writes")
	for range 5 {
		for _, p := range []string{path, path + "/history", "/orders"} {
			if res := do(t, srv.URL, "GET", p, ""); res.status != http.StatusOK {
				t.Fatalf("GET %s with the write budget full: %d %s, want 200", p, res.status, res.body)
			}
		}
	}
	close(g.release)
	wg.Wait()
	createOrder(t, srv.URL)
}

// A flood of reads fills the read budget only: writes still go.
func TestReadFloodDoesNotRefuseWrites(t *testing.T) {
	g := newGatedOrders()
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Orders, c.MaxInFlight, c.MaxInFlightReads = g, 2, 2 })
	path := createOrder(t, srv.URL)
	g.gateReads.Store(true)
	var wg sync.WaitGroup
	for _, p := range []string{path, path + "/history"} {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, srv.URL, "GET", p, "") }()
	}
	waitEntered(t, g.entered, 2)
	wantOverloaded(t, do(t, srv.URL, "GET", path, ""), "reads")
	wantOverloaded(t, do(t, srv.URL, "GET", "/orders", ""), "reads")
	for range 3 {
		createOrder(t, srv.URL)
	}
	if res := do(t, srv.URL, "POST", path+"/pay", `{"paymentMethod":"card"}`); res.status != http.StatusOK {
		t.Fatalf("pay with the read budget full: %d %s, want 200", res.status, res.body)
	}
	close(g.release)
	wg.Wait()
	if res := do(t, srv.URL, "GET", path, ""); res.status != http.StatusOK {
		t.Fatalf("read after the others finished: %d %s", res.status, res.body)
	}
}

// Either budget alone bounds its kind and leaves the other unbounded.
func TestOneBudgetAloneLeavesTheOtherUnbounded(t *testing.T) {
	g := newGatedOrders()
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Orders, c.MaxInFlight = g, 1 })
	path := createOrder(t, srv.URL)
	g.gateReads.Store(true)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, srv.URL, "GET", path, "") }()
	}
	waitEntered(t, g.entered, 3) // no read budget: all three are served at once
	close(g.release)
	wg.Wait()
}

// waitingOrders waits for its context to end, as a call to an actor that
// never answers does, and reports the deadline it was given.
type waitingOrders struct{ deadlines chan time.Duration }

func (w waitingOrders) Command(ctx context.Context, id string, _ *orderpb.Command) (*orderpb.Reply, error) {
	return w.Get(ctx, id)
}

func (w waitingOrders) Get(ctx context.Context, _ string) (*orderpb.Reply, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(time.Hour)
	}
	w.deadlines <- time.Until(dl)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (w waitingOrders) History(ctx context.Context, id string) (*orderpb.Reply, error) {
	return w.Get(ctx, id)
}

func (w waitingOrders) AsOf(ctx context.Context, id string, _ *orderpb.GetOrderAsOf) (*orderpb.Reply, error) {
	return w.Get(ctx, id)
}

// TestRequestTimeoutEndsTheCall: a call gets the request timeout as its
// context's deadline, and a call that waits on the context is ended by it
// (the API's context makes its timer only when something waits).
func TestRequestTimeoutEndsTheCall(t *testing.T) {
	wo := waitingOrders{deadlines: make(chan time.Duration, 1)}
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Orders, c.RequestTimeout = wo, 200*time.Millisecond })
	start := time.Now()
	res := do(t, srv.URL, "GET", "/orders/a", "")
	took := time.Since(start)
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("call that never answers: %d %s, want 503", res.status, res.body)
	}
	if d := <-wo.deadlines; d <= 0 || d > 200*time.Millisecond {
		t.Fatalf("the call's deadline was %v away, want within the 200ms request timeout", d)
	}
	if took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("answered after %v, want about the 200ms request timeout", took)
	}
}
