package memwatch

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/gcdefaults"
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

// While gcdefaults tunes GOGC up for a small live heap, the crowded point
// is the tuner's floor's (a third of the limit at 200): the tuned value
// would put it at a small share of the limit and passivate actors early.
func TestRuntimeReportsTheTunersFloor(t *testing.T) {
	gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(gc)
	t.Cleanup(func() {
		gcdefaults.StopTuner()
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	})
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	s := gcdefaults.Apply()
	if s.Headroom == 0 {
		t.Fatalf("gcdefaults did not tune: %+v", s)
	}
	if inForce := debug.SetGCPercent(-1); inForce <= gcdefaults.Percent {
		debug.SetGCPercent(inForce)
		t.Fatalf("GOGC in force %d, want the tuner's, above %d for this small heap", inForce, gcdefaults.Percent)
	} else {
		debug.SetGCPercent(inForce)
	}
	if h := Runtime()(); h.GOGC != gcdefaults.Percent || h.Limit != 1<<30 {
		t.Fatalf("runtime reader while tuned: %+v, want GOGC %d and the 1 GiB limit", h, gcdefaults.Percent)
	}
}
