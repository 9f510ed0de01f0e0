package supervisor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/poll"
)

func TestMonitorStateChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	m := NewMonitor("persistence", now, 30*time.Second, backoff.Policy{Base: time.Second, Max: 8 * time.Second, Rand: func() float64 { return 0.5 }})
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
		Backoff:  backoff.Policy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, poll.True("first check", func() bool { return checks.Load() >= 1 }))
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
