package memwatch

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// With GOGC=100, crowded from half the limit on (where the collector's goal,
// twice the live heap, passes it), until the heap falls below 40% of it;
// never without a limit.
func TestCrowdedWithHysteresis(t *testing.T) {
	var live, limit atomic.Uint64
	w := New(func() Heap { return Heap{Live: live.Load(), Limit: limit.Load(), GOGC: 100} }, nil)
	limit.Store(1000)
	for _, step := range []struct {
		live uint64
		want bool
	}{{100, false}, {499, false}, {500, true}, {900, true}, {450, true}, {400, true}, {399, false}, {450, false}, {600, true}} {
		live.Store(step.live)
		w.Check()
		if got := w.Crowded(); got != step.want {
			t.Fatalf("live %d of 1000: crowded %v, want %v", step.live, got, step.want)
		}
	}
	limit.Store(0)
	w.Check()
	if w.Crowded() {
		t.Fatal("crowded without a memory limit")
	}
	var none *Watch
	if none.Crowded() {
		t.Fatal("a nil watch is crowded")
	}
}

// The point moves with GOGC: a third of the limit at GOGC=200, half with
// GOGC off.
func TestCrowdedPointFollowsGOGC(t *testing.T) {
	for _, c := range []struct {
		gogc        int64
		calm, crowd uint64
	}{{200, 333, 334}, {300, 249, 250}, {-1, 499, 500}} {
		var live atomic.Uint64
		w := New(func() Heap { return Heap{Live: live.Load(), Limit: 1000, GOGC: c.gogc} }, nil)
		live.Store(c.calm)
		w.Check()
		if w.Crowded() {
			t.Fatalf("GOGC=%d: crowded at %d of 1000", c.gogc, c.calm)
		}
		live.Store(c.crowd)
		w.Check()
		if !w.Crowded() {
			t.Fatalf("GOGC=%d: not crowded at %d of 1000", c.gogc, c.crowd)
		}
	}
}

func TestRunSamplesUntilCanceled(t *testing.T) {
	var calls atomic.Int32
	w := New(func() Heap { calls.Add(1); return Heap{Live: 900, Limit: 1000, GOGC: 100} }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, time.Millisecond); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if calls.Load() < 3 || !w.Crowded() {
		t.Fatalf("%d samples, crowded %v; want at least 3 and crowded", calls.Load(), w.Crowded())
	}
}

func TestRuntimeReadsTheHeap(t *testing.T) {
	runtime.GC() // the live heap is what a collection marked
	h := Runtime()()
	gogc := debug.SetGCPercent(-1) // read GOGC, then put it back
	debug.SetGCPercent(gogc)
	if h.Live == 0 || h.GOGC != int64(gogc) {
		t.Fatalf("runtime reader: %+v, GOGC %d", h, gogc)
	}
}
