package httpapi_test

import (
	"context"
	"net/http"
	"sync"
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

func TestMaxInFlightRefusesInsteadOfQueueing(t *testing.T) {
	bo := blockingOrders{entered: make(chan struct{}, 10), release: make(chan struct{})}
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.Orders, c.MaxInFlight = bo, 2 })
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, srv.URL, "GET", "/orders/a", "") }()
	}
	for range 2 {
		select {
		case <-bo.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not reach the orders")
		}
	}
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
