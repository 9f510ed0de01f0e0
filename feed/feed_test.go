package feed_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/feed"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

func encode(e *orderpb.Event) []byte {
	return []byte(fmt.Sprintf(`{"orderId":%q,"version":%d}`, e.GetOrderId(), e.GetVersion()))
}

// appendEvents appends n events to order id (created, then paid: enough
// for the feed, which does not check transitions).
func appendEvents(t *testing.T, j persistence.Journal, id string, from uint64, n int) {
	t.Helper()
	recs := make([]persistence.Record, n)
	for i := range recs {
		v := from + uint64(i) + 1
		var e order.Event = order.Paid{PaymentMethod: "card", At: time.Now()}
		if v == 1 {
			e = order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Name: "n", Quantity: 1, UnitPrice: 100}}, Total: 100, At: time.Now()}
		}
		b, err := proto.Marshal(codec.EventToProto(id, v, "cmd", "", e))
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = persistence.Record{Type: e.EventType(), Data: b}
	}
	if _, err := j.Append(context.Background(), id, from, recs); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, s *feed.Sub) feed.Event {
	t.Helper()
	select {
	case ev := <-s.Events():
		return ev
	case <-s.Done():
		t.Fatalf("subscription ended: %v", s.Err())
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return feed.Event{}
}

// Catch-up from a cursor plus the live events that follow give every
// event once, in each order's version order; a resumed cursor gives only
// what came after it.
func TestCatchUpThenLive(t *testing.T) {
	j := memory.NewPartitioned(4)
	h := feed.New(j, feed.Options{Encode: encode, Poll: 10 * time.Millisecond})
	defer h.Close()
	ctx := context.Background()
	for k := range 6 {
		appendEvents(t, j, fmt.Sprintf("o%d", k), 0, 2)
	}
	sub, live, err := h.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	seen := map[string]uint64{}
	cur := make(feed.Cursor, 4)
	var mid feed.Cursor
	n := 0
	if err := h.CatchUp(ctx, cur, live, "", func(ev feed.Event) error {
		if ev.Version != seen[ev.OrderID]+1 {
			return fmt.Errorf("%s v%d after v%d", ev.OrderID, ev.Version, seen[ev.OrderID])
		}
		seen[ev.OrderID] = ev.Version
		cur[ev.Partition] = ev.Position
		if n++; n == 5 {
			mid = append(feed.Cursor(nil), cur...)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 12 {
		t.Fatalf("catch-up gave %d events, want 12", n)
	}
	appendEvents(t, j, "o0", 2, 1)
	h.Nudge()
	if ev := next(t, sub); ev.OrderID != "o0" || ev.Version != 3 || ev.Position <= cur[ev.Partition] {
		t.Fatalf("live event %+v, want o0 v3 after the catch-up", ev)
	}
	// Resume from the fifth event: the seven others of the catch-up, and
	// the cursor round-trips through its text.
	back, err := feed.ParseCursor(mid.String(), 4)
	if err != nil {
		t.Fatal(err)
	}
	m := 0
	_ = h.CatchUp(ctx, back, live, "", func(feed.Event) error { m++; return nil })
	if m != 7 {
		t.Fatalf("resumed catch-up gave %d events, want 7", m)
	}
	for _, bad := range []string{"", "x", "4-1.2.3", "5-0.0.0.0.0", "4-a.b.c.d", "4--1.0.0.0"} {
		if _, err := feed.ParseCursor(bad, 4); !errors.Is(err, feed.ErrBadCursor) {
			t.Errorf("ParseCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

// A subscriber that does not read is dropped once it is a buffer behind;
// the others get every event, and the hub goes on.
func TestSlowSubscriberDropped(t *testing.T) {
	j := memory.NewPartitioned(2)
	h := feed.New(j, feed.Options{Encode: encode, Poll: 5 * time.Millisecond, Buffer: 8})
	defer h.Close()
	ctx := context.Background()
	slow, _, err := h.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	fast, _, err := h.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int)
	go func() {
		n := 0
		for n < 40 {
			select {
			case <-fast.Events():
				n++
			case <-fast.Done():
				got <- -n
				return
			}
		}
		got <- n
	}()
	for k := range 40 {
		appendEvents(t, j, fmt.Sprintf("s%d", k), 0, 1)
		h.Nudge()
		time.Sleep(time.Millisecond)
	}
	select {
	case <-slow.Done():
		if !errors.Is(slow.Err(), feed.ErrSlow) {
			t.Fatalf("slow subscriber ended with %v, want ErrSlow", slow.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the slow subscriber was not dropped")
	}
	if n := <-got; n != 40 {
		t.Fatalf("the reading subscriber got %d of 40 events", n)
	}
	if h.Subscribers() != 1 {
		t.Fatalf("%d subscribers, want the reading one", h.Subscribers())
	}
	fast.Close()
}

// The subscriber cap refuses one more; an order's subscription gets that
// order's events only.
func TestCapAndFilter(t *testing.T) {
	j := memory.NewPartitioned(2)
	h := feed.New(j, feed.Options{Encode: encode, Poll: 5 * time.Millisecond, MaxSubscribers: 2})
	defer h.Close()
	ctx := context.Background()
	a, _, err := h.Subscribe(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := h.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Subscribe(ctx, ""); !errors.Is(err, feed.ErrTooMany) {
		t.Fatalf("third subscriber: %v, want ErrTooMany", err)
	}
	appendEvents(t, j, "other", 0, 1)
	appendEvents(t, j, "mine", 0, 1)
	h.Nudge()
	if ev := next(t, a); ev.OrderID != "mine" {
		t.Fatalf("filtered subscription got %+v", ev)
	}
	b.Close()
	if _, _, err := h.Subscribe(ctx, ""); err != nil {
		t.Fatalf("a slot freed by Close: %v", err)
	}
	h.Close()
	select {
	case <-a.Done():
	case <-time.After(time.Second):
		t.Fatal("Close did not end the subscriptions")
	}
}
