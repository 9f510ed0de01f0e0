package supervisor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestBackoffBoundsJitterAndCap(t *testing.T) {
	base, maxD := 100*time.Millisecond, 2*time.Second
	for _, c := range []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{6, time.Second, 2 * time.Second},
		{60, time.Second, 2 * time.Second}, // capped, no overflow
	} {
		lo := BackoffPolicy{Base: base, Max: maxD, Rand: func() float64 { return 0 }}.Delay(c.attempt)
		hi := BackoffPolicy{Base: base, Max: maxD, Rand: func() float64 { return 0.999999999 }}.Delay(c.attempt)
		if lo != c.lo || hi < c.hi-time.Microsecond || hi > c.hi {
			t.Errorf("attempt %d: range [%s, %s], want [%s, %s]", c.attempt, lo, hi, c.lo, c.hi)
		}
	}
	// Real jitter spreads the delays.
	p := BackoffPolicy{Base: base, Max: maxD}
	seen := map[time.Duration]bool{}
	for range 50 {
		d := p.Delay(4)
		if d < 400*time.Millisecond || d > 800*time.Millisecond {
			t.Fatalf("jittered delay %s outside [400ms, 800ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 50: no jitter", len(seen))
	}
}

func TestMonitorStateChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	m := NewMonitor("persistence", now, 30*time.Second, BackoffPolicy{Base: time.Second, Max: 8 * time.Second, Rand: func() float64 { return 0.5 }})
	step := func(d time.Duration, err error) (bool, time.Duration) {
		now = now.Add(d)
		return m.Record(now, 3*time.Millisecond, err)
	}
	if changed, next := step(time.Second, nil); changed || next != 30*time.Second {
		t.Fatalf("healthy check: changed=%v next=%s", changed, next)
	}
	boom := errors.New("connection refused")
	changed, next := step(time.Second, boom)
	if !changed || next != 750*time.Millisecond || m.Status().Up || m.Status().Failures != 1 || m.Status().LastError != "connection refused" || !m.Status().Since.Equal(now) {
		t.Fatalf("first failure: changed=%v next=%s status=%+v", changed, next, m.Status())
	}
	downSince := now
	var delays []time.Duration
	for range 5 {
		changed, next := step(next, boom)
		if changed {
			t.Fatal("still down reported as a change")
		}
		delays = append(delays, next)
	}
	want := []time.Duration{1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 6 * time.Second, 6 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("backoff delays %v, want %v", delays, want)
		}
	}
	if !m.Status().Since.Equal(downSince) || m.Status().Failures != 6 {
		t.Fatalf("status while down: %+v", m.Status())
	}
	changed, next = step(time.Second, nil)
	if !changed || !m.Status().Up || m.Status().Failures != 0 || m.Status().LastError != "" || next != 30*time.Second || !m.Status().Since.Equal(now) {
		t.Fatalf("recovery: changed=%v next=%s status=%+v", changed, next, m.Status())
	}
}

func TestSupervisorTreeFollowsADependency(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	var down atomic.Bool
	var checks atomic.Int32
	events := make(chan Status, 10)
	system.EventStream.Subscribe(func(evt any) {
		if sc, ok := evt.(*StatusChanged); ok {
			events <- sc.Status
		}
	})
	board, _, err := Start(system, Config{
		Checks: map[string]Check{"persistence": func(ctx context.Context) error {
			checks.Add(1)
			if down.Load() {
				return errors.New("dial tcp: connection refused")
			}
			return nil
		}},
		Interval: time.Hour, // only Report and backoff trigger checks here
		Backoff:  BackoffPolicy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first check", func() bool { return checks.Load() >= 1 })
	if !board.Up("persistence") {
		t.Fatal("healthy dependency reported down")
	}
	down.Store(true)
	board.Report("persistence")
	ev := recv(t, events)
	if ev.Up || ev.Component != "persistence" || ev.LastError == "" {
		t.Fatalf("down event %+v", ev)
	}
	if board.Up("persistence") {
		t.Fatal("board still says up")
	}
	// Backoff keeps checking by itself; recovery is noticed without a Report.
	down.Store(false)
	ev = recv(t, events)
	if !ev.Up {
		t.Fatalf("recovery event %+v", ev)
	}
	if s, _ := board.Get("persistence"); !s.Up || s.Failures != 0 {
		t.Fatalf("status after recovery %+v", s)
	}
}

func recv(t *testing.T, ch chan Status) Status {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no status change within 5 s")
		return Status{}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
