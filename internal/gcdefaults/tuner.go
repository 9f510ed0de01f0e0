package gcdefaults

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// The tuner gives the collector a fixed budget of heap growth between
// cycles while the live heap is small next to the memory limit: GOGC is
// raised so that the next cycle starts once the heap grew by Headroom, and
// never goes below Percent, so a large live heap is paced as without the
// tuner. A collection's CPU cost grows with the live heap it marks and
// falls with the growth it allows, so a fixed budget costs the node a
// bounded amount of memory (at most Headroom above the live heap, on top
// of what GOGC=200 allows) for a cycle every Headroom bytes allocated
// instead of every two live heaps.
const (
	// MaxPercent bounds the tuned GOGC (a live heap of a few megabytes
	// would otherwise grow a hundredfold before its next cycle).
	MaxPercent = 1000
	// HeadroomShare is the share of the memory limit the budget takes,
	// at most MaxHeadroom.
	HeadroomShare = 1.0 / 8
	MaxHeadroom   = 1 << 30
)

// headroom is the budget for a soft memory limit of limit bytes.
func headroom(limit int64) uint64 {
	return uint64(min(float64(limit)*HeadroomShare, MaxHeadroom))
}

// tunedPercent is the GOGC under which a collection that left live bytes
// lets the heap grow by budget before the next one: at least floor, at
// most MaxPercent.
func tunedPercent(live, budget uint64, floor int) int {
	if live == 0 {
		return max(floor, MaxPercent)
	}
	p := budget * 100 / live
	return int(max(uint64(floor), min(p, MaxPercent)))
}

// tuner sets GOGC after every collection, from the live heap it left.
type tuner struct {
	budget  uint64
	floor   int
	stopped atomic.Bool
	sample  []metrics.Sample
	mu      sync.Mutex // guards sample
}

// active is the running tuner, nil when GOGC is left as set.
var active atomic.Pointer[tuner]

// startTuner starts tuning GOGC from floor with the given budget, in place
// of a tuner that ran before.
func startTuner(budget uint64, floor int) {
	t := &tuner{budget: budget, floor: floor, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	if old := active.Swap(t); old != nil {
		old.stopped.Store(true)
	}
	t.tune()
	t.arm()
}

// StopTuner ends tuning, if Apply started it, and leaves GOGC at the
// floor (for tests: a node tunes until it exits).
func StopTuner() {
	if t := active.Swap(nil); t != nil {
		t.stopped.Store(true)
		debug.SetGCPercent(t.floor)
	}
}

// arm makes tune run once more after the next collection: a cleanup of an
// object nothing references runs once a cycle found it unreachable.
func (t *tuner) arm() {
	sentinel := new([16]byte)
	runtime.AddCleanup(sentinel, func(t *tuner) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	}, t)
}

func (t *tuner) tune() {
	t.mu.Lock()
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	debug.SetGCPercent(tunedPercent(live, t.budget, t.floor))
}

// TunedFloor reports the tuner's floor while it runs. That floor, not the
// GOGC in force, decides where the memory limit begins to pace the
// collector: with a budget of at most an eighth of the limit, the tuned
// goal passes the limit only once the floor's does.
func TunedFloor() (int64, bool) {
	if t := active.Load(); t != nil && !t.stopped.Load() {
		return int64(t.floor), true
	}
	return 0, false
}
