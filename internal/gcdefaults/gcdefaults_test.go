package gcdefaults

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func restore(t *testing.T) {
	gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(gc)
	t.Cleanup(func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	})
}

// unset removes k from the environment for the test.
func unset(t *testing.T, k string) {
	t.Setenv(k, "") // restores the old value after the test
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

func TestDefaults(t *testing.T) {
	restore(t)
	unset(t, "GOGC")
	unset(t, "GOMEMLIMIT")
	unset(t, "AUTOMEMLIMIT")
	debug.SetMemoryLimit(math.MaxInt64)
	s := Apply()
	t.Cleanup(StopTuner)
	if s.GCPercent != Percent {
		t.Errorf("GOGC = %d, want %d", s.GCPercent, Percent)
	}
	if s.Err != nil || s.MemoryLimit <= 0 || s.MemoryLimit == math.MaxInt64 {
		t.Errorf("memory limit = %d (err %v), want one derived from the cgroup or the machine", s.MemoryLimit, s.Err)
	}
}

func TestEnvironmentWins(t *testing.T) {
	restore(t)
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	s := Apply()
	t.Cleanup(StopTuner)
	if s.GCPercent != 150 {
		t.Errorf("GOGC = %d, want the environment's 150", s.GCPercent)
	}
	if s.MemoryLimit != 1<<30 {
		t.Errorf("memory limit = %d, want the environment's 1 GiB", s.MemoryLimit)
	}
}

func TestTunedPercent(t *testing.T) {
	const budget = 1 << 30
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, MaxPercent},
		{1 << 20, MaxPercent},   // 1 MiB: 1024x the budget, capped
		{100 << 20, MaxPercent}, // 100 MiB: 10.24x, capped
		{budget / 3, 300},       // grows by the budget: 3x
		{budget / 4, 400},
		{budget * 2 / 5, 250},
		{budget / 2, Percent}, // 2x: the floor
		{budget, Percent},
		{8 * budget, Percent}, // a large heap is paced by the floor
	} {
		if got := tunedPercent(c.live, budget, Percent); got != c.want {
			t.Errorf("tunedPercent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
	if got := tunedPercent(1<<20, budget, 2000); got != 2000 {
		t.Errorf("a floor above the cap: got %d, want the floor 2000", got)
	}
}

func TestHeadroom(t *testing.T) {
	if got := headroom(2 << 30); got != 256<<20 {
		t.Errorf("headroom(2 GiB) = %d MiB, want 256", got>>20)
	}
	if got := headroom(64 << 30); got != MaxHeadroom {
		t.Errorf("headroom(64 GiB) = %d MiB, want the cap %d", got>>20, MaxHeadroom>>20)
	}
}

// gogc reads the GOGC in force without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// The tuner sets GOGC again after every collection: a GOGC changed behind
// its back is back to the tuned value once a cycle ran, and StopTuner
// leaves the floor in force for good.
func TestTunerRetunesAfterEachCollection(t *testing.T) {
	restore(t)
	unset(t, "GOGC")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	s := Apply()
	t.Cleanup(StopTuner)
	if s.Headroom != 128<<20 {
		t.Fatalf("headroom = %d MiB, want an eighth of 1 GiB", s.Headroom>>20)
	}
	if floor, ok := TunedFloor(); !ok || floor != Percent {
		t.Fatalf("TunedFloor = %d, %v; want %d, true", floor, ok, Percent)
	}
	// This test binary's live heap is a few MiB: a 128 MiB budget is
	// more than MaxPercent of it.
	if got := gogc(); got != MaxPercent {
		t.Fatalf("GOGC after Apply = %d, want %d", got, MaxPercent)
	}
	debug.SetGCPercent(300)
	waitGOGC(t, MaxPercent)
	StopTuner()
	if _, ok := TunedFloor(); ok {
		t.Fatal("TunedFloor still reports a tuner after StopTuner")
	}
	if got := gogc(); got != Percent {
		t.Fatalf("GOGC after StopTuner = %d, want the floor %d", got, Percent)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if got := gogc(); got != Percent {
		t.Fatalf("GOGC after StopTuner and two collections = %d, want the floor %d", got, Percent)
	}
}

func waitGOGC(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for gogc() != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC = %d 5 s after collections, want %d", gogc(), want)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoTuningWhenGOGCIsSet(t *testing.T) {
	restore(t)
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	t.Setenv("GOMEMLIMIT", "1GiB")
	s := Apply()
	t.Cleanup(StopTuner)
	if s.Headroom != 0 {
		t.Errorf("headroom = %d with GOGC set, want 0", s.Headroom)
	}
	if _, ok := TunedFloor(); ok {
		t.Error("a tuner runs with GOGC set")
	}
	runtime.GC()
	if got := gogc(); got != 150 {
		t.Errorf("GOGC = %d, want the environment's 150", got)
	}
}
