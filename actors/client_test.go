package actors_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// fencedOwner answers NOT_SERVING (an activation on a node that lost its
// lease) until notServing runs out, then the order; it records what the
// client asked and forgot.
type fencedOwner struct {
	mu         sync.Mutex
	notServing int
	msgs       []any
	forgot     []string
}

func (f *fencedOwner) Request(_ context.Context, id, kind string, msg any) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msg)
	if kind != actors.OrderKind {
		return nil, errors.New("wrong kind " + kind)
	}
	if f.notServing > 0 {
		f.notServing--
		return &orderpb.Reply{Error: &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_NOT_SERVING, Message: "node lost its lease"}}, nil
	}
	return &orderpb.Reply{Order: &orderpb.Order{OrderId: id}}, nil
}

func (f *fencedOwner) Forget(id, kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, kind+"/"+id)
}

// Each method sends its message; NOT_SERVING makes the client forget the
// owner and ask again with the same message until the current owner answers.
func TestOrderClientRetriesNotServingElsewhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := payCmd("pay-1")
	for _, c := range []struct {
		name string
		call func(*actors.OrderClient) (*orderpb.Reply, error)
		want func(any) bool
	}{
		{"Command", func(c *actors.OrderClient) (*orderpb.Reply, error) { return c.Command(ctx, "o1", cmd) }, func(m any) bool { return m == cmd }},
		{"Get", func(c *actors.OrderClient) (*orderpb.Reply, error) { return c.Get(ctx, "o1") },
			func(m any) bool { _, ok := m.(*orderpb.GetOrder); return ok }},
		{"History", func(c *actors.OrderClient) (*orderpb.Reply, error) { return c.History(ctx, "o1") },
			func(m any) bool { _, ok := m.(*orderpb.GetHistory); return ok }},
	} {
		t.Run(c.name, func(t *testing.T) {
			owner := &fencedOwner{notServing: 2}
			r, err := c.call(actors.NewOrderClient(owner))
			if err != nil || r.GetError() != nil || r.GetOrder().GetOrderId() != "o1" {
				t.Fatalf("reply %v, error %v", r, err)
			}
			if len(owner.msgs) != 3 || len(owner.forgot) != 2 || owner.forgot[0] != actors.OrderKind+"/o1" {
				t.Fatalf("%d requests, forgot %v; want 3 requests and 2 forgets", len(owner.msgs), owner.forgot)
			}
			for i, m := range owner.msgs {
				if !c.want(m) {
					t.Fatalf("request %d sent %T", i, m)
				}
			}
		})
	}
}

// A client that keeps hearing NOT_SERVING gives up when ctx ends.
func TestOrderClientNotServingUntilTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := actors.NewOrderClient(&fencedOwner{notServing: 1 << 30}).Get(ctx, "o1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want DeadlineExceeded", err)
	}
}
