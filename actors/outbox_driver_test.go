package actors_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// unreachable is a requester whose every call fails, as a node's member
// does while it rejoins the cluster; block makes each call wait for its
// context instead.
type unreachable struct {
	calls atomic.Int64
	block bool
}

func (u *unreachable) Request(ctx context.Context, id, kind string, msg any) (any, error) {
	u.calls.Add(1)
	if u.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, cluster.ErrUnavailable
}

func (u *unreachable) Forget(string, string) {}

// within fails t unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// Stop before Run returns at once (a node whose start failed before the
// driver ran stops it on the way out), and a Run after Stop does not start.
func TestOutboxDriverStopBeforeRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	req := &unreachable{}
	d := actors.NewOutboxDriver(req, 1, time.Millisecond, nil)
	within(t, 2*time.Second, "Stop before Run", d.Stop)
	within(t, 2*time.Second, "a second Stop", d.Stop)
	within(t, 2*time.Second, "Run after Stop", func() {
		if err := d.Run(context.Background()); err != nil {
			t.Errorf("Run after Stop = %v, want nil", err)
		}
	})
	d.Nudge(0)
	if n := req.calls.Load(); n != 0 {
		t.Fatalf("a stopped driver drained %d times", n)
	}
}

// Stop ends a Run whose drains keep failing (the member is rejoining) or
// hang, and leaves no goroutine behind; Run returns nil after Stop.
func TestOutboxDriverStopEndsAFailingRun(t *testing.T) {
	for _, block := range []bool{false, true} {
		name := map[bool]string{false: "failing", true: "hanging"}[block]
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			req := &unreachable{block: block}
			d := actors.NewOutboxDriver(req, 1, 5*time.Millisecond, nil)
			ran := make(chan error, 1)
			go func() { ran <- d.Run(context.Background()) }()
			d.Nudge(0)
			deadline := time.Now().Add(5 * time.Second)
			for req.calls.Load() < 2 && !(block && req.calls.Load() == 1) {
				if time.Now().After(deadline) {
					t.Fatalf("%d drains in 5 s", req.calls.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			within(t, 2*time.Second, "Stop during "+name+" drains", d.Stop)
			if err := <-ran; err != nil {
				t.Fatalf("Run after Stop = %v, want nil", err)
			}
			within(t, time.Second, "a second Stop", d.Stop)
		})
	}
}

// Run ends with its context, and refuses to run twice at once.
func TestOutboxDriverRunEndsWithItsContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	req := &unreachable{}
	d := actors.NewOutboxDriver(req, 1, time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for req.calls.Load() == 0 { // Run runs once it drained on a nudge
		if time.Now().After(deadline) {
			t.Fatal("Run never drained on a nudge")
		}
		d.Nudge(0)
		time.Sleep(time.Millisecond)
	}
	if err := d.Run(context.Background()); !errors.Is(err, actors.ErrDriverRunning) {
		t.Fatalf("a second Run = %v, want ErrDriverRunning", err)
	}
	cancel()
	if err := <-ran; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after its context ended = %v, want context.Canceled", err)
	}
	within(t, time.Second, "Stop after Run ended", d.Stop)
}

// drains counts drain requests and answers each with an empty status.
type drains struct {
	mu    sync.Mutex
	times []time.Time
}

func (d *drains) Request(ctx context.Context, id, kind string, msg any) (any, error) {
	d.mu.Lock()
	d.times = append(d.times, time.Now())
	d.mu.Unlock()
	return &orderpb.OutboxStatus{}, nil
}

func (d *drains) Forget(string, string) {}

func (d *drains) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.times)
}

// With a linger, an idle partition's nudge drains at once, and the nudges
// that follow within the linger are drained together once it is over
// instead of one drain each.
func TestOutboxDriverLinger(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const linger = 200 * time.Millisecond
	req := &drains{}
	d := actors.NewOutboxDriver(req, 1, time.Hour, nil).WithLinger(linger)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { d.Stop(); <-done }()

	// The periodic timer's first tick (offset 0 for partition 0) drains once.
	poll.Eventually(t, 2*time.Second, func() error {
		if req.count() < 1 {
			return errors.New("no first drain")
		}
		return nil
	})
	time.Sleep(2 * linger) // idle now
	start := time.Now()
	d.Nudge(0)
	poll.Eventually(t, 2*time.Second, func() error {
		if req.count() < 2 {
			return errors.New("the idle partition's nudge was not drained")
		}
		return nil
	})
	if took := time.Since(start); took > linger/2 {
		t.Errorf("an idle partition's nudge was drained after %v, want at once (linger %v)", took, linger)
	}
	for range 20 {
		d.Nudge(0)
		time.Sleep(linger / 40)
	}
	time.Sleep(2 * linger)
	if n := req.count(); n < 3 || n > 4 {
		t.Errorf("%d drains after 20 nudges within about a linger, want 1 or 2 more than the 2 before", n)
	}
	req.mu.Lock()
	defer req.mu.Unlock()
	for i := 2; i < len(req.times); i++ {
		if gap := req.times[i].Sub(req.times[i-1]); gap < linger*9/10 {
			t.Errorf("drains %d and %d were %v apart, want at least the linger %v", i-1, i, gap, linger)
		}
	}
}
