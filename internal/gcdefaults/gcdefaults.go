// Package gcdefaults sets the node's garbage collector defaults: more heap
// headroom than Go's GOGC=100, bounded by a soft memory limit derived from
// the container's (cgroup) memory limit, else from the machine's memory.
//
// An order node allocates a few kilobytes per request and keeps a live heap
// of active order actors and the read model. At GOGC=100 the collector ran
// about a quarter of a create's CPU (BENCHMARKS.md, "What the profiles
// showed"); at GOGC=200 a create costs about 20% less CPU. The price is heap
// headroom, so a soft limit (GOMEMLIMIT) at 90% of the container's memory
// limit (of the machine's memory when there is none) makes the collector
// work harder as memory gets short instead of letting the process be killed.
//
// On top of GOGC=200, while the live heap is small next to the limit, a
// tuner (tuner.go) raises GOGC after each collection so that the heap may
// grow by a fixed budget before the next one: an eighth of the limit, at
// most 1 GiB. A node with a 100 MB live heap then collects every gigabyte
// allocated instead of every 200 MB; one whose live heap is past half the
// budget runs at GOGC=200 as before.
//
// The environment wins: GOGC (GOGC=100 is Go's default; no tuning when it
// is set), GOMEMLIMIT, or AUTOMEMLIMIT (a ratio in (0, 1], or "off" for no
// derived limit, and then no tuning either).
package gcdefaults

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// Percent is the GOGC the node runs with unless GOGC is set: the tuner's
// floor.
const Percent = 200

// Ratio is the share of the container's (else the machine's) memory the
// soft limit is set to unless GOMEMLIMIT or AUTOMEMLIMIT is set.
const Ratio = 0.9

// Settings is what Apply left in force, for the start-up log.
type Settings struct {
	GCPercent   int
	MemoryLimit int64 // bytes; 0: none
	// Headroom is the tuner's budget in bytes (0: GOGC is not tuned).
	Headroom uint64
	// Err is why no memory limit could be derived (nil when one was, or
	// when the environment set it).
	Err error
}

// Apply sets the defaults the environment leaves open (GOGC here;
// memlimit reads GOMEMLIMIT and AUTOMEMLIMIT), starts the tuner when GOGC
// is not set and a memory limit is in force, and reports what is in force.
func Apply() Settings {
	var s Settings
	tune := os.Getenv("GOGC") == ""
	if tune {
		debug.SetGCPercent(Percent)
	}
	s.GCPercent = debug.SetGCPercent(-1)
	debug.SetGCPercent(s.GCPercent)
	_, s.Err = memlimit.Set(
		memlimit.WithRatio(Ratio),
		memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)),
	)
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		s.MemoryLimit = l
	}
	if tune && s.MemoryLimit > 0 {
		s.Headroom = headroom(s.MemoryLimit)
		startTuner(s.Headroom, s.GCPercent)
	}
	return s
}

// Log writes the settings at info level (a warning when no memory limit
// could be derived).
func (s Settings) Log(log *slog.Logger) {
	attrs := []any{slog.Int("gogc", s.GCPercent), slog.Int64("memory_limit_bytes", s.MemoryLimit), slog.Uint64("headroom_bytes", s.Headroom)}
	if s.Err != nil {
		log.Warn("garbage collector: no soft memory limit could be derived; set GOMEMLIMIT", append(attrs, slog.Any("error", s.Err))...)
		return
	}
	log.Info("garbage collector", attrs...)
}
