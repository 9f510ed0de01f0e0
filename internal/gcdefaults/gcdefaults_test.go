package gcdefaults

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
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
	if s.GCPercent != 150 {
		t.Errorf("GOGC = %d, want the environment's 150", s.GCPercent)
	}
	if s.MemoryLimit != 1<<30 {
		t.Errorf("memory limit = %d, want the environment's 1 GiB", s.MemoryLimit)
	}
}
