package actors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/supervisor"
)

// OutboxDriver makes the outbox singleton drain: on every nudge (sent after
// each append, so commit-to-publish latency is milliseconds) and on a timer
// (the seed's 2 s scan interval), with capped exponential backoff and jitter
// after failures. Each node runs one; in a cluster their drains reach the same
// singleton activation.
type OutboxDriver struct {
	req      Requester
	interval time.Duration
	logger   *slog.Logger
	nudge    chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// NewOutboxDriver returns a driver; call Run to start it and Stop to end it.
func NewOutboxDriver(req Requester, interval time.Duration, logger *slog.Logger) *OutboxDriver {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &OutboxDriver{req: req, interval: interval, logger: logger,
		nudge: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
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

// Run drives drains until Stop. It is meant to run in its own goroutine,
// owned by the node.
func (d *OutboxDriver) Run() {
	defer close(d.done)
	t := time.NewTicker(d.interval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		case <-d.nudge:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := d.Drain(ctx)
		cancel()
		if err == nil && st.GetError() == "" {
			failures = 0
			continue
		}
		failures++
		wait := supervisor.BackoffPolicy{Base: 100 * time.Millisecond, Max: 10 * time.Second}.Delay(failures)
		d.logger.Debug("outbox drain failed", slog.Int("failures", failures), slog.Duration("retry_in", wait), slog.Any("error", err), slog.String("outbox_error", st.GetError()))
		select {
		case <-d.stop:
			return
		case <-time.After(wait):
			d.Nudge()
		}
	}
}

// Stop ends Run and waits for it; idempotent.
func (d *OutboxDriver) Stop() {
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.done
}
