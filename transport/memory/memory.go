package memory

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/internal/retry"
)

// Defaults for Options.
const (
	// DefaultMaxBacklog bounds the log: at most this many messages are kept
	// for readers that lag (about 100 MB with 1 KiB payloads).
	DefaultMaxBacklog = 100_000
	// DefaultBatchSize is the largest batch handed to a handler.
	DefaultBatchSize = 256
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// deliveries of a batch whose handler failed.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
)

// Options configures a Transport. The zero value means every default.
type Options struct {
	// MaxBacklog is how many messages the log keeps at most (default
	// DefaultMaxBacklog). When a publish would exceed it the oldest messages
	// are dropped, also for groups and subscriptions that have not read them.
	MaxBacklog int
	// BatchSize is the largest batch a handler receives (default DefaultBatchSize).
	BatchSize int
	// RetryMin and RetryMax bound the backoff between redeliveries of a
	// batch whose handler returned an error.
	RetryMin, RetryMax time.Duration
	// Logger receives warnings (handler failures, dropped messages);
	// default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxBacklog == 0 {
		o.MaxBacklog = DefaultMaxBacklog
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first option that is out of range (after defaults).
func (o Options) Validate() error {
	switch {
	case o.MaxBacklog < 1:
		return fmt.Errorf("memory transport: MaxBacklog %d: must be at least 1", o.MaxBacklog)
	case o.BatchSize < 1:
		return fmt.Errorf("memory transport: BatchSize %d: must be at least 1", o.BatchSize)
	case o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("memory transport: RetryMin %v, RetryMax %v: need 0 < RetryMin <= RetryMax", o.RetryMin, o.RetryMax)
	}
	return nil
}

// Transport is an in-process bus implementing transport.Transport. It is safe
// for concurrent use. Close stops every subscription; group positions live as
// long as the Transport.
type Transport struct {
	opts Options

	mu      sync.Mutex
	closed  bool
	log     []entry // live entries are log[off:]; log[off].seq == base
	off     int
	base    uint64 // sequence number of the oldest live entry
	head    uint64 // sequence number the next published message gets
	wake    chan struct{}
	groups  map[string]*group
	subs    map[*subscription]struct{}
	dropped uint64
}

type entry struct {
	seq uint64
	msg transport.Message
}

// group is the durable state of a consumer group.
type group struct {
	name    string
	next    uint64                // sequence of the next message to hand out
	redo    [][]transport.Message // batches handed out but not acknowledged by a member that closed
	members int
	drops   dropCounter
}

var _ transport.Transport = (*Transport)(nil)

// New returns an empty bus. It fails only when opts are out of range.
func New(opts Options) (*Transport, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Transport{
		opts:   opts,
		head:   1,
		base:   1,
		wake:   make(chan struct{}),
		groups: make(map[string]*group),
		subs:   make(map[*subscription]struct{}),
	}, nil
}

// Name implements transport.Transport; it is "inmemory".
func (t *Transport) Name() string { return "inmemory" }

// Ping implements transport.Transport: nil until Close, ErrClosed after.
func (t *Transport) Ping(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrClosed
	}
	return nil
}

// Dropped returns how many messages were dropped from the log, summed over
// the groups and ephemeral subscriptions that had not read them yet,
// because the log reached MaxBacklog.
func (t *Transport) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Backlog returns how many messages the log holds now.
func (t *Transport) Backlog() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.log) - t.off
}

// Publish implements transport.Transport. It keeps the payloads, not
// copies (see transport.Transport.Publish).
func (t *Transport) Publish(ctx context.Context, batch []transport.Message) error {
	if err := transport.ValidateBatch(batch); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return transport.Unavailable("memory publish", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrClosed
	}
	if len(batch) == 0 {
		return nil
	}
	for _, m := range batch {
		t.log = append(t.log, entry{seq: t.head, msg: m})
		t.head++
	}
	if live := len(t.log) - t.off; live > t.opts.MaxBacklog {
		t.dropOldest(t.base + uint64(live-t.opts.MaxBacklog))
	}
	t.trim()
	t.broadcast()
	return nil
}

// dropWarnEvery limits the warnings about dropped messages to one per reader
// per interval (with the count since the last one).
const dropWarnEvery = 10 * time.Second

// dropOldest moves every reader that is behind seq up to it, counting what
// they lose; trim then discards the entries. Call with t.mu held.
func (t *Transport) dropOldest(seq uint64) {
	for _, g := range t.groups {
		if g.next < seq {
			g.drops.add(t, seq-g.next, "group", g.name)
			g.next = seq
		}
	}
	for s := range t.subs {
		if s.group == nil && s.cursor < seq {
			s.drops.add(t, seq-s.cursor, "group", "")
			s.cursor = seq
		}
	}
}

// dropCounter counts a reader's dropped messages and warns now and then.
type dropCounter struct {
	unreported uint64
	lastWarn   time.Time
}

func (d *dropCounter) add(t *Transport, lost uint64, args ...any) {
	t.dropped += lost
	d.unreported += lost
	if now := time.Now(); now.Sub(d.lastWarn) >= dropWarnEvery {
		t.opts.Logger.Warn("memory transport: log full, a reader lost its oldest unread messages",
			append(args, "lost", d.unreported, "max_backlog", t.opts.MaxBacklog)...)
		d.unreported, d.lastWarn = 0, now
	}
}

// trim discards entries every reader has passed. Call with t.mu held.
func (t *Transport) trim() {
	low := t.head
	for _, g := range t.groups {
		low = min(low, g.next)
	}
	for s := range t.subs {
		if s.group == nil {
			low = min(low, s.cursor)
		}
	}
	if low <= t.base {
		return
	}
	k := int(low - t.base)
	clear(t.log[t.off : t.off+k]) // release payloads
	t.off += k
	t.base = low
	switch live := len(t.log) - t.off; {
	case live == 0:
		t.log, t.off = t.log[:0], 0
	case t.off >= 1024 && t.off >= live:
		// Compact: amortized O(1) per message, and the backing array
		// never holds more than twice the live entries plus slack.
		n := copy(t.log, t.log[t.off:])
		clear(t.log[n:])
		t.log, t.off = t.log[:n], 0
	}
}

// broadcast wakes every reader waiting for news. Call with t.mu held.
func (t *Transport) broadcast() {
	close(t.wake)
	t.wake = make(chan struct{})
}

// read returns up to BatchSize messages starting at seq, in a new slice
// whose payloads are the log's (read-only for handlers, see
// transport.Handler). Call with t.mu held and base <= seq < head.
func (t *Transport) read(seq uint64) []transport.Message {
	i := t.off + int(seq-t.base)
	n := min(t.opts.BatchSize, len(t.log)-i)
	out := make([]transport.Message, n)
	for j := range out {
		out[j] = t.log[i+j].msg
	}
	return out
}

// Subscribe implements transport.Transport. A group that does not exist yet
// starts with the messages published after this call returns; an existing
// group resumes at its position. ctx is not used after Subscribe returns: the
// subscription runs until it or the Transport is closed.
func (t *Transport) Subscribe(ctx context.Context, opts transport.SubscribeOptions, h transport.Handler) (transport.Subscription, error) {
	if err := transport.ValidateGroup(opts.Group); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("memory subscribe: nil handler: %w", transport.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, transport.Unavailable("memory subscribe", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &subscription{t: t, h: h, cancel: cancel, done: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel()
		return nil, transport.ErrClosed
	}
	if opts.Group != "" {
		g := t.groups[opts.Group]
		if g == nil {
			g = &group{name: opts.Group, next: t.head}
			t.groups[opts.Group] = g
		}
		g.members++
		s.group = g
	} else {
		s.cursor = t.head
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	go s.run(runCtx)
	return s, nil
}

// Close implements transport.Transport: it stops every subscription, waiting
// for running handler calls to return, and drops the log. Idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.broadcast()
	t.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	t.mu.Lock()
	t.log, t.off, t.base = nil, 0, t.head
	t.mu.Unlock()
	return nil
}

// subscription is one running Subscribe; its goroutine (run) is owned by it
// and stopped by Close.
type subscription struct {
	t      *Transport
	h      transport.Handler
	group  *group      // nil for an ephemeral subscription
	cursor uint64      // ephemeral only: next sequence to read; guarded by t.mu
	drops  dropCounter // ephemeral only; guarded by t.mu

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Close implements transport.Subscription.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		t := s.t
		t.mu.Lock()
		delete(t.subs, s)
		if s.group != nil {
			s.group.members--
		}
		t.trim()
		t.mu.Unlock()
	})
	return nil
}

func (s *subscription) run(ctx context.Context) {
	defer close(s.done)
	backoff := backoff.Policy{Base: s.t.opts.RetryMin, Max: s.t.opts.RetryMax}
	for {
		batch, wake, ok := s.take()
		if !ok {
			return
		}
		if batch == nil {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := retry.Handle(ctx, s.h, batch, backoff, func(attempt int, err error) {
			if ctx.Err() != nil {
				return // closing: the handler saw its context canceled
			}
			s.t.opts.Logger.Warn("memory transport: handler failed, redelivering",
				"group", s.groupName(), "attempt", attempt, "batch", len(batch),
				"first_event_id", batch[0].ID(), "error", err)
		})
		if err != nil {
			// Closed before the handler accepted the batch: a group
			// gets it back for its next reader; an ephemeral
			// subscription simply ends.
			s.giveBack(batch)
			return
		}
	}
}

func (s *subscription) groupName() string {
	if s.group == nil {
		return ""
	}
	return s.group.name
}

// take returns the next batch for s, or nil and a channel closed when there
// may be news; ok is false once the transport is closed.
func (s *subscription) take() (batch []transport.Message, wake <-chan struct{}, ok bool) {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, false
	}
	if g := s.group; g != nil {
		if len(g.redo) > 0 {
			batch = g.redo[0]
			g.redo[0] = nil
			g.redo = g.redo[1:]
			return batch, nil, true
		}
		if g.next < t.head {
			batch = t.read(g.next)
			g.next += uint64(len(batch))
			t.trim()
			return batch, nil, true
		}
		return nil, t.wake, true
	}
	if s.cursor < t.head {
		batch = t.read(s.cursor)
		s.cursor += uint64(len(batch))
		t.trim()
		return batch, nil, true
	}
	return nil, t.wake, true
}

// giveBack returns an unacknowledged batch to the front of its group's queue.
func (s *subscription) giveBack(batch []transport.Message) {
	if s.group == nil {
		return
	}
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	s.group.redo = append([][]transport.Message{batch}, s.group.redo...)
	t.broadcast()
}
