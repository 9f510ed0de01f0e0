// Package memwatch tells when the node's live heap is getting close to its
// soft memory limit (GOMEMLIMIT, which gcdefaults derives from the
// container's memory limit), so that order actors passivate sooner.
//
// Close means: the heap the collector lets grow before its next cycle
// (the live heap times 1 + GOGC/100) no longer fits under the limit. From
// there on the limit, not GOGC, paces the collector, which then runs more
// often the closer the live heap gets to the limit.
//
// Every active order actor keeps a few kilobytes until it passivates, after
// --idle-timeout (2 minutes) without messages. Under a steady stream of new
// orders that is rate x idle timeout actors: 10,000 creates/s keep 1.2
// million, a few gigabytes, and a node in a smaller container would run its
// collector without end and then be killed. While the watch reports
// crowded, actors passivate after a short linger instead, which bounds the
// live heap at about what it held then plus the rate times that linger.
package memwatch

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/ordersystem/ordersystem/internal/gcdefaults"
)

// Crowded ends once the live heap is below Release of the point where it
// began; the heap is sampled every Every.
const (
	Release = 0.8
	Every   = time.Second
)

// Heap is what a Reader samples: the live heap and the soft memory limit in
// bytes (Limit 0: none), and GOGC (negative: off).
type Heap struct {
	Live, Limit uint64
	GOGC        int64
}

// threshold is the live heap from which on the collector's next goal
// (live x (1 + GOGC/100)) passes the limit; 0 without a limit.
func (h Heap) threshold() float64 {
	gogc := h.GOGC
	if gogc <= 0 {
		gogc = 100 // GOGC=off leaves the limit alone to pace the collector
	}
	return float64(h.Limit) * 100 / float64(100+gogc)
}

// Reader samples the heap.
type Reader func() Heap

// Runtime reads the live heap (the heap marked live by the last
// collection), GOGC and the limit in force; while gcdefaults tunes GOGC,
// the tuner's floor.
func Runtime() Reader {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/gogc:percent"}}
	return func() Heap {
		metrics.Read(sample)
		h := Heap{GOGC: 100}
		if sample[0].Value.Kind() == metrics.KindUint64 {
			h.Live = sample[0].Value.Uint64()
		}
		if sample[1].Value.Kind() == metrics.KindUint64 {
			h.GOGC = int64(sample[1].Value.Uint64())
		}
		if floor, ok := gcdefaults.TunedFloor(); ok {
			h.GOGC = floor // the tuned GOGC is higher only while the live heap is small
		}
		if limit := debug.SetMemoryLimit(-1); limit > 0 && limit != math.MaxInt64 {
			h.Limit = uint64(limit)
		}
		return h
	}
}

// Watch samples a Reader and says whether the heap is crowded. The zero
// value is never crowded.
type Watch struct {
	crowded atomic.Bool
	read    Reader
	log     *slog.Logger
}

// New returns a watch over read; Check samples it, Run samples it until ctx
// ends.
func New(read Reader, log *slog.Logger) *Watch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watch{read: read, log: log}
}

// Crowded reports whether the live heap passed the point where the
// collector's goal passes the limit, and has not yet fallen below Release
// of it. Safe for concurrent use and cheap (one atomic load).
func (w *Watch) Crowded() bool { return w != nil && w.crowded.Load() }

// Check samples once and updates Crowded, logging each change.
func (w *Watch) Check() {
	h := w.read()
	if h.Limit == 0 {
		w.set(false, h)
		return
	}
	switch t := h.threshold(); {
	case float64(h.Live) >= t:
		w.set(true, h)
	case float64(h.Live) < Release*t:
		w.set(false, h)
	}
}

func (w *Watch) set(crowded bool, h Heap) {
	if w.crowded.Swap(crowded) == crowded {
		return
	}
	attrs := []any{slog.Uint64("live_heap_bytes", h.Live), slog.Uint64("memory_limit_bytes", h.Limit), slog.Int64("gogc", h.GOGC)}
	if crowded {
		w.log.Warn("memory: the live heap grew to where the soft memory limit paces the collector; order actors passivate soon after their last message until it falls", attrs...)
	} else {
		w.log.Info("memory: the live heap fell back; order actors linger for the idle timeout again", attrs...)
	}
}

// Run calls Check every interval until ctx ends.
func (w *Watch) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		w.Check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
