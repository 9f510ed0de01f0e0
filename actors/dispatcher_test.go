package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkerDispatcherRunsEverything(t *testing.T) {
	d := newWorkerDispatcher(4, time.Second, 300)
	var wg sync.WaitGroup
	var ran atomic.Int64
	const n = 10_000
	wg.Add(n)
	for range n {
		d.Schedule(func() { ran.Add(1); wg.Done() })
	}
	wg.Wait()
	if ran.Load() != n {
		t.Fatalf("ran %d of %d", ran.Load(), n)
	}
	if w := d.workers.Load(); w < 1 || w > 4 {
		t.Fatalf("%d workers, want 1 to 4", w)
	}
}

// A run that blocks must not hold up others, even past the worker bound.
func TestWorkerDispatcherNeverQueuesBehindABlockedRun(t *testing.T) {
	d := newWorkerDispatcher(2, time.Second, 300)
	release := make(chan struct{})
	for range 5 {
		d.Schedule(func() { <-release })
	}
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a run waited behind blocked ones")
	}
	close(release)
}

func TestWorkerDispatcherWorkersExitWhenIdle(t *testing.T) {
	d := newWorkerDispatcher(8, 50*time.Millisecond, 300)
	var wg sync.WaitGroup
	wg.Add(3)
	for range 3 {
		d.Schedule(wg.Done)
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for d.workers.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running after idle", d.workers.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
