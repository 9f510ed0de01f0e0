package actors

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// OutboxDriver makes the outbox singleton drain: on every nudge (sent after
// each append, so commit-to-publish latency is milliseconds) and on a timer
// (--outbox-interval, 2 s by default), with capped exponential backoff and jitter
// after failures. Each node runs one; in a cluster their drains reach the same
// singleton activation.
//
// Its owner runs Run on a goroutine of its own and ends it with Stop (or by
// cancelling Run's context). Nudge and Drain work whether Run runs or not.
type OutboxDriver struct {
	req      Requester
	interval time.Duration
	logger   *slog.Logger
	nudge    chan struct{}

	mu      sync.Mutex
	stopped bool
	cancel  context.CancelFunc // ends the running Run; nil while none runs
	done    chan struct{}      // closed when the running Run returns
}

// NewOutboxDriver returns a driver; call Run to start it and Stop to end it.
func NewOutboxDriver(req Requester, interval time.Duration, logger *slog.Logger) *OutboxDriver {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &OutboxDriver{req: req, interval: interval, logger: logger, nudge: make(chan struct{}, 1)}
}

// Nudge asks for a drain soon; it never blocks and nudges coalesce.
func (d *OutboxDriver) Nudge() {
	select {
	case d.nudge <- struct{}{}:
	default:
	}
}

// Drain asks the outbox to publish everything journaled so far and returns
// its status.
func (d *OutboxDriver) Drain(ctx context.Context) (*orderpb.OutboxStatus, error) {
	res, err := d.req.Request(ctx, OutboxIdentity, OutboxKind, &orderpb.DrainOutbox{})
	if err != nil {
		return nil, err
	}
	st, _ := res.(*orderpb.OutboxStatus)
	if st == nil {
		st = &orderpb.OutboxStatus{Error: "unexpected reply"}
	}
	return st, nil
}

// ErrDriverRunning is returned by Run when another Run of the same driver
// is running.
var ErrDriverRunning = errors.New("outbox driver already running")

// Run drives drains until Stop is called or ctx ends, and returns nil after
// Stop, ctx's error when ctx ended. A drain in flight is cancelled with it.
// After Stop, Run returns nil at once.
func (d *OutboxDriver) Run(ctx context.Context) error {
	d.mu.Lock()
	switch {
	case d.stopped:
		d.mu.Unlock()
		return nil
	case d.cancel != nil:
		d.mu.Unlock()
		return ErrDriverRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	d.mu.Unlock()
	defer func() {
		cancel()
		d.mu.Lock()
		d.cancel, d.done = nil, nil
		d.mu.Unlock()
		close(done)
	}()

	t := time.NewTicker(d.interval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return d.ended(ctx)
		case <-t.C:
		case <-d.nudge:
		}
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := d.Drain(dctx)
		dcancel()
		if err == nil && st.GetError() == "" {
			failures = 0
			continue
		}
		failures++
		wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second}.Delay(failures)
		d.logger.Debug("outbox drain failed", slog.Int("failures", failures), slog.Duration("retry_in", wait), slog.Any("error", err), slog.String("outbox_error", st.GetError()))
		backoff := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			backoff.Stop()
			return d.ended(ctx)
		case <-backoff.C:
			d.Nudge()
		}
	}
}

// ended is Run's result once its context ended: nil when Stop ended it.
func (d *OutboxDriver) ended(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	return ctx.Err()
}

// Stop ends a running Run and waits for it to return; a later Run returns
// at once. Idempotent, and safe before Run or without one.
func (d *OutboxDriver) Stop() {
	d.mu.Lock()
	d.stopped = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
