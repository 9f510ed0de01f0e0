package actors

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// loadFrom records the version the last Load read from.
type loadFrom struct {
	Journal
	from atomic.Uint64
}

func (l *loadFrom) Load(ctx context.Context, id string, from uint64) ([]persistence.Record, error) {
	l.from.Store(from)
	return l.Journal.Load(ctx, id, from)
}

// asOfActor is an order actor of id outside any cluster: handleAsOf needs
// only its configuration and its id.
func asOfActor(cfg OrderConfig, id string) *orderActor {
	cfg.setDefaults()
	a := &orderActor{cfg: &cfg, state: &order.State{ID: id}}
	return a
}

// A point in an order's history answers the same from the order's snapshot
// as from its first event, for every version and for times at, just before
// and just after each event (times repeat and never go backwards, as
// order.Decide dates them), and both equal the fold of the events the point
// includes. The answer from the snapshot reads the stream after the
// snapshot exactly when the snapshot lies within the point.
func TestAsOfFromSnapshotMatchesFullFold(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	kinds := []string{"paid", "shipped", "delivered", "cancelled"}
	steps := []time.Duration{0, time.Nanosecond, time.Microsecond, time.Second}
	rapid.Check(t, func(rt *rapid.T) {
		const id = "asof-1"
		mem := memory.New()
		rec := &loadFrom{Journal: mem}
		full := asOfActor(OrderConfig{Journal: mem}, id)
		snapped := asOfActor(OrderConfig{Journal: rec, Snapshots: mem, SnapshotEvery: 1}, id)

		n := rapid.IntRange(1, 30).Draw(rt, "events")
		s := rapid.IntRange(1, n).Draw(rt, "snapshot")
		events, times, at := make([]order.Event, n), make([]time.Time, n), t0
		for i := range events {
			at = at.Add(rapid.SampledFrom(steps).Draw(rt, "step"))
			times[i] = at
			kind := "created"
			if i > 0 {
				kind = rapid.SampledFrom(kinds).Draw(rt, "kind")
			}
			switch kind {
			case "created":
				events[i] = order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Name: "n", Quantity: 2, UnitPrice: 150}}, Total: 300, At: at}
			case "paid":
				events[i] = order.Paid{PaymentMethod: fmt.Sprint("card-", i), At: at}
			case "shipped":
				events[i] = order.Shipped{TrackingNumber: fmt.Sprint("T-", i), At: at}
			case "delivered":
				events[i] = order.Delivered{At: at}
			case "cancelled":
				events[i] = order.Cancelled{Reason: fmt.Sprint("r", i), At: at}
			}
		}
		appendEvents := func(from, to int) {
			recs := make([]persistence.Record, 0, to-from)
			for i := from; i < to; i++ {
				data, err := proto.Marshal(codec.EventToProto(id, uint64(i+1), fmt.Sprint("cmd-", i+1), "f", events[i]))
				if err != nil {
					rt.Fatal(err)
				}
				recs = append(recs, persistence.Record{Type: events[i].EventType(), Data: data})
			}
			if _, err := mem.Append(ctx, id, uint64(from), recs); err != nil {
				rt.Fatal(err)
			}
		}
		// The snapshot is written as the order actor writes it: after its
		// events were folded by an activation.
		appendEvents(0, s)
		if err := snapped.catchUp(ctx); err != nil {
			rt.Fatal(err)
		}
		snapped.saveSnapshot(ctx, 0)
		if snap, ok, err := mem.LoadSnapshot(ctx, id); err != nil || !ok || snap.Version != uint64(s) {
			rt.Fatalf("snapshot: %+v %v %v, want version %d", snap, ok, err, s)
		}
		if n > s {
			appendEvents(s, n)
		}

		// want is the fold of the first k events, or nil for none.
		want := func(k int) *orderpb.Order {
			if k == 0 {
				return nil
			}
			st := order.State{ID: id}
			for _, e := range events[:k] {
				st = order.Evolve(st, e)
			}
			return codec.StateToProto(&st)
		}
		check := func(name string, q *orderpb.GetOrderAsOf, k int, fromSnapshot bool) {
			a := full.handleAsOf(ctx, proto.Clone(q).(*orderpb.GetOrderAsOf))
			b := snapped.handleAsOf(ctx, proto.Clone(q).(*orderpb.GetOrderAsOf))
			if !proto.Equal(a, b) {
				rt.Fatalf("%s: from the snapshot at %d:\n%v\nfrom the first event:\n%v", name, s, b, a)
			}
			if w := want(k); !proto.Equal(a.GetOrder(), w) || (w == nil) != (a.GetError().GetCode() == orderpb.ErrorCode_ERROR_CODE_NOT_FOUND) {
				rt.Fatalf("%s: %v, want the fold of %d events %v", name, a, k, w)
			}
			wantFrom := uint64(1)
			if fromSnapshot {
				wantFrom = uint64(s) + 1
			}
			if got := rec.from.Load(); got != wantFrom {
				rt.Fatalf("%s: the snapshot's actor read from version %d, want %d (snapshot at %d)", name, got, wantFrom, s)
			}
		}
		for v := 1; v <= n+1; v++ {
			k := min(v, n)
			if v > n {
				k = 0 // refused: the order has n versions
			}
			check(fmt.Sprint("version ", v), &orderpb.GetOrderAsOf{Version: uint64(v)}, k, v >= s)
		}
		// upTo is how many events are dated at or before at.
		upTo := func(at time.Time) int {
			k := 0
			for k < n && !times[k].After(at) {
				k++
			}
			return k
		}
		points := []time.Time{t0.Add(-time.Hour), times[n-1].Add(time.Hour)}
		for _, tm := range times {
			points = append(points, tm.Add(-time.Nanosecond), tm, tm.Add(time.Nanosecond))
		}
		for _, p := range points {
			k := upTo(p)
			check("time "+p.Format(time.RFC3339Nano), &orderpb.GetOrderAsOf{At: timestamppb.New(p)}, k, !times[s-1].After(p))
		}
	})
}

// A point asked of an order that does not exist is not found; a point
// without a version or a time is refused.
func TestAsOfRefusals(t *testing.T) {
	ctx := context.Background()
	a := asOfActor(OrderConfig{Journal: memory.New()}, "nosuch")
	if r := a.handleAsOf(ctx, &orderpb.GetOrderAsOf{Version: 1}); r.GetError().GetCode() != orderpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Errorf("unknown order: %v, want NOT_FOUND", r)
	}
	if r := a.handleAsOf(ctx, &orderpb.GetOrderAsOf{}); r.GetError().GetCode() != orderpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || r.GetError().GetField() != "asOf" {
		t.Errorf("no point: %v, want INVALID_ARGUMENT on asOf", r)
	}
}
