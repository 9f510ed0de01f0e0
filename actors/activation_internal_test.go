package actors

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
)

// activationLoader is the memory backend with persistence.ActivationLoader
// (a page of the stream's first records with its snapshot, as the Redis
// backend reads them in one round trip), counting its calls.
type activationLoader struct {
	*memory.Backend
	calls int
}

func (l *activationLoader) LoadForActivation(ctx context.Context, id string, max int) (persistence.Snapshot, bool, []persistence.Record, error) {
	l.calls++
	snap, ok, err := l.LoadSnapshot(ctx, id)
	if err != nil {
		return snap, ok, nil, err
	}
	recs, err := l.Load(ctx, id, 1)
	if len(recs) > max {
		recs = recs[:max]
	}
	return snap, ok, recs, err
}

// An activation from a backend that reads the snapshot and a page of the
// stream together ends in the same state (and remembers the same
// commands) as one that reads the snapshot and then the stream after it:
// for new orders, streams shorter and longer than the page, and snapshots
// within, at the end of and past the page.
func TestActivationLoaderFoldsAsLoad(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rapid.Check(t, func(rt *rapid.T) {
		const id = "act-1"
		mem := memory.New()
		n := rapid.IntRange(0, 2*activationPage+10).Draw(rt, "events")
		recs := make([]persistence.Record, 0, n)
		for i := range n {
			var e order.Event = order.Paid{PaymentMethod: fmt.Sprint("card-", i), At: at}
			if i == 0 {
				e = order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Name: "n", Quantity: 1, UnitPrice: 100}}, Total: 100, At: at}
			}
			data, err := proto.Marshal(codec.EventToProto(id, uint64(i+1), fmt.Sprint("cmd-", i+1), "f", e))
			if err != nil {
				rt.Fatal(err)
			}
			recs = append(recs, persistence.Record{Type: e.EventType(), Data: data})
		}
		if n > 0 {
			if _, err := mem.Append(ctx, id, 0, recs); err != nil {
				rt.Fatal(err)
			}
		}
		if n > 0 && rapid.Bool().Draw(rt, "snapshot") {
			// A snapshot at version s, written by an actor that folded the
			// whole stream and then had its state cut back to s.
			s := rapid.IntRange(1, n).Draw(rt, "at")
			w := asOfActor(OrderConfig{Journal: mem}, id)
			part, err := mem.Load(ctx, id, 1)
			if err != nil {
				rt.Fatal(err)
			}
			for _, r := range part[:s] {
				pe, e, err := decodeNext(r, w.state.Version)
				if err != nil {
					rt.Fatal(err)
				}
				w.apply(pe, e)
			}
			w.cfg.Snapshots, w.cfg.SnapshotEvery = mem, 1
			w.saveSnapshot(ctx, 0)
		}

		plain := asOfActor(OrderConfig{Journal: mem, Snapshots: mem, SnapshotEvery: 10}, id)
		al := &activationLoader{Backend: mem}
		paged := asOfActor(OrderConfig{Journal: mem, Snapshots: al, SnapshotEvery: 10}, id)
		if err := plain.catchUp(ctx); err != nil {
			rt.Fatal(err)
		}
		if err := paged.catchUp(ctx); err != nil {
			rt.Fatal(err)
		}
		if al.calls != 1 {
			rt.Fatalf("LoadForActivation called %d times, want 1", al.calls)
		}
		if !reflect.DeepEqual(plain.state, paged.state) {
			rt.Fatalf("state from the page %+v, from Load %+v", paged.state, plain.state)
		}
		if !reflect.DeepEqual(plain.seen, paged.seen) {
			rt.Fatalf("remembered commands differ: %v vs %v", paged.seen, plain.seen)
		}
		if paged.state.Version != uint64(n) {
			rt.Fatalf("version %d, want %d", paged.state.Version, n)
		}
	})
}
