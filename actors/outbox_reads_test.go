package actors_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
)

// headCounting is a one-partition in-memory journal that counts the reads
// of its log's head.
type headCounting struct {
	*memory.Backend
	heads atomic.Int64
}

func (h *headCounting) Log(p int) persistence.Log {
	return countingLog{Log: h.Backend.Log(p), heads: &h.heads}
}

type countingLog struct {
	persistence.Log
	heads *atomic.Int64
}

func (c countingLog) Head(ctx context.Context) (uint64, error) {
	c.heads.Add(1)
	return c.Log.Head(ctx)
}

// TestOutboxDrainReadsTheHeadOnce: a drain reads the head once, with the
// checkpoint, and publishes up to it; it does not read the head again after
// its last page (a record appended meanwhile is nudged, and drained by the
// next drain). On Redis that is one round trip less per drain.
func TestOutboxDrainReadsTheHeadOnce(t *testing.T) {
	log := &headCounting{Backend: memory.NewPartitioned(1)}
	pub := &recorder{}
	driver, _ := startOutboxOn(t, log, pub)
	ctx := context.Background()
	for round, n := range []int{5, 3, 0} {
		for i := range n {
			id := fmt.Sprintf("r%d-%d", round, i)
			if _, err := log.Append(ctx, id, 0, []persistence.Record{{Type: "OrderCreated"}}); err != nil {
				t.Fatal(err)
			}
		}
		before := log.heads.Load()
		st, err := driver.Drain(ctx, 0)
		if err != nil || st.GetError() != "" {
			t.Fatalf("round %d: drain: %v %+v", round, err, st)
		}
		if reads := log.heads.Load() - before; reads != 1 {
			t.Fatalf("round %d: the drain read the head %d times, want once", round, reads)
		}
		if st.GetHead() != st.GetCheckpoint() {
			t.Fatalf("round %d: drained to %d of head %d", round, st.GetCheckpoint(), st.GetHead())
		}
	}
	if got := len(pub.snapshot()); got != 8 {
		t.Fatalf("published %d events, want 8", got)
	}
}
