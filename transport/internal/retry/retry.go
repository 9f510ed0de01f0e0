package retry

import (
	"context"
	"time"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/transport"
)

// Handle calls h with batch until h returns nil, then returns nil. After each
// failure it calls onFailure (if not nil) with the attempt number and the
// handler's error (for logging, or to tell the server the batch is still in
// progress), then waits b.Delay(attempt). When ctx is done before h accepted
// the batch it returns ctx.Err(); h is never called again after that, but a
// call already running finishes first (h sees ctx canceled).
func Handle(ctx context.Context, h transport.Handler, batch []transport.Message, b backoff.Policy, onFailure func(attempt int, err error)) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := h(ctx, batch)
		if err == nil {
			return nil
		}
		if onFailure != nil {
			onFailure(attempt, err)
		}
		if !Sleep(ctx, b.Delay(attempt)) {
			return ctx.Err()
		}
	}
}

// Sleep waits d or until ctx is done; it reports whether the full d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
