package readmodel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/readmodel"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// journal appends a lifecycle to the journal and returns its envelopes.
func journal(t *testing.T, j *memory.Backend, id string, at time.Time, events ...order.Event) []*orderpb.Event {
	t.Helper()
	var out []*orderpb.Event
	for i, e := range events {
		pe := codec.EventToProto(id, uint64(i+1), "c", "f", e)
		data, _ := proto.Marshal(pe)
		if _, err := j.Append(context.Background(), id, uint64(i), []persistence.Record{{Type: e.EventType(), Data: data}}); err != nil {
			t.Fatal(err)
		}
		out = append(out, pe)
	}
	return out
}

func created(total order.Cents, at time.Time) order.Created {
	return order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: total}}, Total: total, At: at}
}

func TestApplyDropsDuplicatesAndRepairsGaps(t *testing.T) {
	j := memory.New()
	evs := journal(t, j, "a", t0, created(1000, t0), order.Paid{At: t0}, order.Shipped{At: t0})
	m := readmodel.New(j)
	ctx := context.Background()
	// The last event arrives first: the gap is repaired from the journal.
	if err := m.Apply(ctx, evs[2]); err != nil {
		t.Fatal(err)
	}
	s, ok := m.Get("a")
	if !ok || s.Status != order.StatusShipped || s.Version != 3 {
		t.Fatalf("after gap repair: %+v", s)
	}
	// Earlier events and duplicates change nothing.
	for _, e := range append(evs, evs...) {
		if err := m.Apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if m.Applied() != 3 {
		t.Fatalf("applied %d events, want 3", m.Applied())
	}
	st := m.Stats()
	if st.TotalOrders != 1 || st.ByStatus[order.StatusShipped] != 1 || st.ByStatus[order.StatusPending] != 0 || st.TotalRevenue != 1000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapWithoutLoaderIsAnError(t *testing.T) {
	j := memory.New()
	evs := journal(t, j, "a", t0, created(1000, t0), order.Paid{At: t0})
	m := readmodel.New(nil)
	if err := m.Apply(context.Background(), evs[1]); !errors.Is(err, readmodel.ErrGap) {
		t.Fatalf("gap: %v, want ErrGap", err)
	}
}

func TestStatsRevenueExcludesCancelled(t *testing.T) {
	j := memory.New()
	m := readmodel.New(j)
	for i, evs := range [][]order.Event{
		{created(100, t0)},
		{created(200, t0), order.Paid{At: t0}},
		{created(400, t0), order.Cancelled{At: t0}},
		{created(800, t0), order.Paid{At: t0}, order.Cancelled{At: t0}},
		{created(1600, t0), order.Paid{At: t0}, order.Shipped{At: t0}, order.Delivered{At: t0}},
	} {
		for _, e := range journal(t, j, fmt.Sprint("o", i), t0, evs...) {
			if err := m.Apply(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := m.Stats()
	want := map[order.Status]int{order.StatusPending: 1, order.StatusPaid: 1, order.StatusCancelled: 2, order.StatusDelivered: 1, order.StatusShipped: 0}
	for s, n := range want {
		if st.ByStatus[s] != n {
			t.Errorf("%s: %d, want %d", s, st.ByStatus[s], n)
		}
	}
	if st.TotalOrders != 5 || st.TotalRevenue != 1900 {
		t.Fatalf("stats %+v, want 5 orders and revenue 19.00", st)
	}
}

func TestListNewestFirstWithCursorAndRebuild(t *testing.T) {
	j := memory.New()
	for i := range 10 {
		evs := []order.Event{created(100, t0.Add(time.Duration(i)*time.Second))}
		if i%3 == 0 {
			evs = append(evs, order.Paid{At: t0})
		}
		journal(t, j, fmt.Sprintf("o%02d", i), t0, evs...)
	}
	m := readmodel.New(j)
	pos, err := m.Rebuild(context.Background(), j)
	var read uint64
	for _, p := range pos {
		read += p
	}
	if err != nil || read != 14 {
		t.Fatalf("rebuild: positions %v (14 records in all), %v", pos, err)
	}
	var ids []string
	cursor := ""
	for {
		page, next, err := m.List(order.StatusNone, 4, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			ids = append(ids, s.OrderID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(ids) != "[o09 o08 o07 o06 o05 o04 o03 o02 o01 o00]" {
		t.Fatalf("list order %v", ids)
	}
	paid, next, _ := m.List(order.StatusPaid, 10, "")
	if len(paid) != 4 || next != "" || paid[0].OrderID != "o09" {
		t.Fatalf("paid filter: %+v next=%q", paid, next)
	}
	if _, _, err := m.List(order.StatusNone, 10, "!!"); !errors.Is(err, readmodel.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

// TestListSortedWhateverTheArrivalOrder applies creates as a live consumer
// would, in creation order but for some that arrive late: a little (among
// the newest few hundred) and a lot (older than all of those). The list
// stays newest first and holds every order.
func TestListSortedWhateverTheArrivalOrder(t *testing.T) {
	const n = 3000
	order := make([]int, 0, n)
	var late []int
	for i := range n {
		switch {
		case i%97 == 5:
			late = append(late, i) // arrives at the end: far out of order
		case i%7 == 3 && i+20 < n:
			order = append(order, i+20) // swaps with a neighbour 20 on
		default:
			order = append(order, i)
		}
	}
	seen := map[int]bool{}
	var arrivals []int
	for _, i := range append(order, late...) {
		if !seen[i] {
			seen[i] = true
			arrivals = append(arrivals, i)
		}
	}
	for i := range n {
		if !seen[i] {
			arrivals = append(arrivals, i)
		}
	}
	m := readmodel.New(nil)
	for _, i := range arrivals {
		pe := codec.EventToProto(fmt.Sprintf("o%05d", i), 1, "c", "f", created(100, t0.Add(time.Duration(i/2)*time.Millisecond)))
		if err := m.Apply(context.Background(), pe); err != nil {
			t.Fatal(err)
		}
	}
	page, _, err := m.List(0, n+1, "")
	if err != nil || len(page) != n {
		t.Fatalf("list: %d orders, %v", len(page), err)
	}
	for k, s := range page {
		if want := fmt.Sprintf("o%05d", n-1-k); s.OrderID != want {
			t.Fatalf("list[%d] = %s, want %s", k, s.OrderID, want)
		}
	}
}
