package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// OutboxDriver makes the outboxes drain, each partition's on its own: on
// every nudge of the partition (sent after each append to it, so
// commit-to-publish latency is milliseconds; under load at most once per
// linger, see WithLinger) and on a timer
// (--outbox-interval, 2 s by default), with capped exponential backoff and
// jitter after failures. Each node runs one; in a cluster their drains of a
// partition reach the same singleton activation, wherever the placement put
// it.
//
// Its owner runs Run on a goroutine of its own and ends it with Stop (or by
// cancelling Run's context). Nudge and Drain work whether Run runs or not.
type OutboxDriver struct {
	req        Requester
	interval   time.Duration
	linger     time.Duration
	logger     *slog.Logger
	partitions int
	nudge      []chan struct{} // one per partition

	mu      sync.Mutex
	stopped bool
	cancel  context.CancelFunc // ends the running Run; nil while none runs
	done    chan struct{}      // closed when the running Run returns
}

// NewOutboxDriver returns a driver of the outboxes of partitions
// partitions (at least 1); call Run to start it and Stop to end it.
func NewOutboxDriver(req Requester, partitions int, interval time.Duration, logger *slog.Logger) *OutboxDriver {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	partitions = max(partitions, 1)
	d := &OutboxDriver{req: req, interval: interval, logger: logger, partitions: partitions, nudge: make([]chan struct{}, partitions)}
	for p := range d.nudge {
		d.nudge[p] = make(chan struct{}, 1)
	}
	return d
}

// WithLinger makes a nudge that comes less than linger after the end of
// the partition's last drain wait for the rest of linger, so that the
// appends of that moment are published in one batch (one journal read, one
// transport publish, one checkpoint write, and one delivery to the read
// model for all of them) instead of a drain per append. An idle partition's
// first nudge is drained at once. 0 (the default) drains on every nudge.
// Call it before Run.
func (d *OutboxDriver) WithLinger(linger time.Duration) *OutboxDriver {
	d.linger = max(linger, 0)
	return d
}

// Partitions is the number of partitions the driver drains.
func (d *OutboxDriver) Partitions() int { return d.partitions }

// Nudge asks for a drain of partition p soon; it never blocks and nudges
// coalesce. A p out of range is ignored.
func (d *OutboxDriver) Nudge(p int) {
	if p < 0 || p >= d.partitions {
		return
	}
	select {
	case d.nudge[p] <- struct{}{}:
	default:
	}
}

// NudgeAll asks for a drain of every partition soon.
func (d *OutboxDriver) NudgeAll() {
	for p := range d.partitions {
		d.Nudge(p)
	}
}

// Drain asks partition p's outbox to publish everything journaled to the
// partition so far and returns its status.
func (d *OutboxDriver) Drain(ctx context.Context, p int) (*orderpb.OutboxStatus, error) {
	res, err := d.req.Request(ctx, OutboxIdentity(p), OutboxKind, &orderpb.DrainOutbox{})
	if err != nil {
		return nil, err
	}
	st, _ := res.(*orderpb.OutboxStatus)
	if st == nil {
		st = &orderpb.OutboxStatus{Error: "unexpected reply"}
	}
	return st, nil
}

// DrainAll drains every partition at once and returns the first failure
// (an error, or a status that reports one, naming its partition) and how
// many events were published.
func (d *OutboxDriver) DrainAll(ctx context.Context) (published uint64, err error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for p := range d.partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := d.Drain(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
			case st.GetError() != "":
				errs = append(errs, fmt.Errorf("partition %d: %s", p, st.GetError()))
			}
			published += st.GetPublished()
		}()
	}
	wg.Wait()
	return published, errors.Join(errs...)
}

// ErrDriverRunning is returned by Run when another Run of the same driver
// is running.
var ErrDriverRunning = errors.New("outbox driver already running")

// Run drives drains until Stop is called or ctx ends, and returns nil after
// Stop, ctx's error when ctx ended. Drains in flight are cancelled with it.
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
	var wg sync.WaitGroup
	for p := range d.partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.drive(ctx, p)
		}()
	}
	wg.Wait()
	return d.ended(ctx)
}

// drive drains partition p on its nudges and its timer until ctx ends. The
// timers of the partitions start spread over one interval, so that an idle
// node's periodic drains do not all reach the backend at once.
func (d *OutboxDriver) drive(ctx context.Context, p int) {
	offset := d.interval * time.Duration(p) / time.Duration(d.partitions)
	t := time.NewTimer(offset)
	defer t.Stop()
	failures := 0
	var last time.Time // when the last drain ended
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(d.interval)
		case <-d.nudge[p]:
			if wait := d.linger - time.Since(last); d.linger > 0 && wait > 0 {
				linger := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					linger.Stop()
					return
				case <-linger.C:
				}
			}
		}
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := d.Drain(dctx, p)
		dcancel()
		last = time.Now()
		if err == nil && st.GetError() == "" {
			failures = 0
			continue
		}
		failures++
		wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second}.Delay(failures)
		d.logger.Debug("outbox drain failed", slog.Int("partition", p), slog.Int("failures", failures), slog.Duration("retry_in", wait),
			slog.Any("error", err), slog.String("outbox_error", st.GetError()))
		backoff := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			backoff.Stop()
			return
		case <-backoff.C:
			d.Nudge(p)
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
