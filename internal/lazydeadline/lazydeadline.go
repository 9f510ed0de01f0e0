// Package lazydeadline gives a context a deadline that costs nothing until
// somebody waits for it.
//
// context.WithTimeout starts a timer and registers the new context with its
// parent (a map entry in the parent's children) on every call, and stops both
// on cancel: about 4% of a create's CPU in the HTTP API, where the context
// only carries the request's deadline down to code that turns it into its
// own bounded waits (ctx.Deadline) and selects on ctx.Done() only when it
// retries. A context from WithTimeout here reports the deadline and Err()
// without a timer; the first Done() call makes the context.WithDeadline it
// stands for, so a caller that waits gets a channel that closes at the
// deadline, as with the standard library's.
package lazydeadline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// WithTimeout is context.WithTimeout with the timer made on the first
// Done() call. Call cancel when the work is done, as with the standard
// library's.
func WithTimeout(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return WithDeadline(parent, time.Now().Add(timeout))
}

// WithDeadline is context.WithDeadline with the timer made on the first
// Done() call.
func WithDeadline(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd // the parent's is earlier: it bounds this one
	}
	c := &lazy{Context: parent, deadline: d}
	return c, c.cancel
}

type lazy struct {
	context.Context // the parent
	deadline        time.Time

	mu       sync.Mutex // guards making inner and canceled
	canceled error      // what Err says after cancel, nil before
	inner    atomic.Pointer[made]
}

// made is the standard library context this one became on its first Done().
type made struct {
	ctx  context.Context
	stop context.CancelFunc
}

func (c *lazy) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazy) Done() <-chan struct{} { return c.make().Done() }

func (c *lazy) Err() error {
	c.mu.Lock()
	canceled := c.canceled
	c.mu.Unlock()
	if canceled != nil {
		return canceled
	}
	if m := c.inner.Load(); m != nil {
		return m.ctx.Err()
	}
	return c.ended()
}

// ended is what ended this context, while it was not canceled: the
// parent's end, or its deadline.
func (c *lazy) ended() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the standard library context once it is made (its
// cancellation is then the one context.Cause and derived contexts find),
// from the parent before.
func (c *lazy) Value(key any) any {
	if m := c.inner.Load(); m != nil {
		return m.ctx.Value(key)
	}
	return c.Context.Value(key)
}

func (c *lazy) make() context.Context {
	if m := c.inner.Load(); m != nil {
		return m.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.inner.Load(); m != nil {
		return m.ctx
	}
	ctx, stop := context.WithDeadline(c.Context, c.deadline)
	if c.canceled != nil {
		stop()
	}
	c.inner.Store(&made{ctx: ctx, stop: stop})
	return ctx
}

func (c *lazy) cancel() {
	c.mu.Lock()
	if c.canceled == nil {
		// As the standard library's: what ended it first stays its Err.
		if c.canceled = c.ended(); c.canceled == nil {
			c.canceled = context.Canceled
		}
	}
	m := c.inner.Load()
	c.mu.Unlock()
	if m != nil {
		m.stop()
	}
}

func (c *lazy) String() string { return "lazydeadline.WithDeadline(" + c.deadline.String() + ")" }
