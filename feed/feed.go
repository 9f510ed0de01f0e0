// Package feed is the live event feed behind GET /events and
// GET /orders/{id}/events: every event of the journal, from any position,
// then live, to any number of subscribers on this node.
//
// The journal is the source (not the transport, not this node's own
// appends): a Hub tails every partition's log while it has subscribers, so
// a node sees the events every member appended, in each partition's commit
// order (and so in each order's version order). A Cursor is a position in
// every partition; it is what a client resumes from.
//
// A subscriber first catches up from its cursor by reading the logs
// itself, then joins the live fan-out; events it already had are skipped by
// position. Each subscriber has a bounded buffer: one that falls behind by
// more than that is dropped (told why), never slowing the others or the
// hub. The number of subscribers is capped.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Errors of Subscribe.
var (
	// ErrTooMany means the hub has MaxSubscribers already.
	ErrTooMany = errors.New("too many event subscribers on this node")
	// ErrBadCursor means a cursor that this feed did not write (or one of
	// a journal with another partition count).
	ErrBadCursor = errors.New("not an event position of this feed")
	// ErrClosed means the hub stopped.
	ErrClosed = errors.New("event feed stopped")
)

// Cursor is a position in every partition of the journal: the last log
// position delivered in each.
type Cursor []uint64

// String encodes c as "<partitions>-<pos0>.<pos1>...", the SSE id.
func (c Cursor) String() string {
	var b strings.Builder
	b.Grow(4 + len(c)*4)
	b.WriteString(strconv.Itoa(len(c)))
	b.WriteByte('-')
	for i, p := range c {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(p, 10))
	}
	return b.String()
}

// ParseCursor reads what Cursor.String wrote for a journal of partitions
// partitions. "0" is the beginning of every partition.
func ParseCursor(s string, partitions int) (Cursor, error) {
	if s == "0" {
		return make(Cursor, partitions), nil
	}
	n, rest, ok := strings.Cut(s, "-")
	if !ok || len(s) > 32*partitions+16 {
		return nil, ErrBadCursor
	}
	if got, err := strconv.Atoi(n); err != nil || got != partitions {
		return nil, fmt.Errorf("%w (it is of a journal of %s partitions, this one has %d)", ErrBadCursor, n, partitions)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != partitions {
		return nil, ErrBadCursor
	}
	c := make(Cursor, partitions)
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, ErrBadCursor
		}
		c[i] = v
	}
	return c, nil
}

// Event is one journaled event as the feed hands it out.
type Event struct {
	Partition int
	Position  uint64
	OrderID   string
	Version   uint64
	Type      string
	// JSON is the event encoded once for every subscriber (Options.Encode).
	JSON []byte
}

// Options configure a Hub.
type Options struct {
	// Poll is the pause between two reads of the logs while nothing nudged
	// the hub (default 100 ms): the delay of events other members append.
	Poll time.Duration
	// Buffer is the events a subscriber may fall behind by before it is
	// dropped (default 1024).
	Buffer int
	// MaxSubscribers caps the subscribers (default 2000).
	MaxSubscribers int
	// Encode turns an event into the JSON subscribers receive (required).
	Encode func(*orderpb.Event) []byte
	// Logger receives unreadable records (default: discard).
	Logger *slog.Logger
}

// readBatch bounds one read of a log.
const readBatch = 512

// Hub fans the journal's events out to subscribers.
type Hub struct {
	j    persistence.Journal
	opts Options

	nudge chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	subs    map[*Sub]struct{}
	heads   Cursor // what the tail loop has read up to, while it runs
	running bool
	closed  bool
}

// New returns a hub over j; Close stops it.
func New(j persistence.Journal, opts Options) *Hub {
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	if opts.MaxSubscribers <= 0 {
		opts.MaxSubscribers = 2000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{j: j, opts: opts, nudge: make(chan struct{}, 1), stop: make(chan struct{}), subs: map[*Sub]struct{}{}}
}

// Partitions is the journal's partition count (the length of its cursors).
func (h *Hub) Partitions() int { return h.j.Partitions() }

// Nudge tells the hub that an event was appended (it reads the logs now
// instead of at its next poll). Cheap and non-blocking.
func (h *Hub) Nudge() {
	select {
	case h.nudge <- struct{}{}:
	default:
	}
}

// Subscribers is the number of subscribers now.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close stops the tail loop and ends every subscription.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.stop)
	done := h.done
	for s := range h.subs {
		s.end(ErrClosed)
	}
	h.subs = map[*Sub]struct{}{}
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Heads returns the head position of every partition now.
func (h *Hub) Heads(ctx context.Context) (Cursor, error) {
	c := make(Cursor, h.j.Partitions())
	for p := range c {
		head, err := h.j.Log(p).Head(ctx)
		if err != nil {
			return nil, err
		}
		c[p] = head
	}
	return c, nil
}

// Sub is one subscription: read Events until Done closes, then Err says why.
type Sub struct {
	hub    *Hub
	filter string // an order id, or "" for every event
	ch     chan Event
	done   chan struct{}
	once   sync.Once
	err    error
}

// Events delivers the subscription's live events (after its catch-up).
func (s *Sub) Events() <-chan Event { return s.ch }

// Done is closed when the subscription ends (dropped, closed, hub stopped).
func (s *Sub) Done() <-chan struct{} { return s.done }

// Err is why the subscription ended (after Done).
func (s *Sub) Err() error { return s.err }

func (s *Sub) end(err error) {
	s.once.Do(func() { s.err = err; close(s.done) })
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
	s.end(nil)
}

// ErrSlow is the Err of a subscriber dropped for falling behind.
var ErrSlow = errors.New("subscriber too slow: it fell behind by more than its buffer and was dropped")

// Subscribe registers a live subscriber (of the events of orderID only, if
// set) and returns it with the cursor its live events follow: every event
// after that cursor reaches Events, in each partition's order. A caller
// that resumes from an earlier cursor reads the gap with CatchUp first and
// skips live events at or before what it has (by position).
func (h *Hub) Subscribe(ctx context.Context, orderID string) (*Sub, Cursor, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, ErrClosed
	}
	if len(h.subs) >= h.opts.MaxSubscribers {
		return nil, nil, ErrTooMany
	}
	if !h.running {
		// Start tailing from the heads now. Reading them under the lock
		// keeps a second subscriber from starting a second loop.
		heads, err := h.Heads(ctx)
		if err != nil {
			return nil, nil, err
		}
		h.heads, h.running, h.done = heads, true, make(chan struct{})
		go h.tail()
	}
	s := &Sub{hub: h, filter: orderID, ch: make(chan Event, h.opts.Buffer), done: make(chan struct{})}
	h.subs[s] = struct{}{}
	return s, append(Cursor(nil), h.heads...), nil
}

// CatchUp calls fn with every event after from up to (at most) to, one
// partition after the other, in each partition's order; with orderID set,
// that order's partition only and its events only. It stops at fn's error.
func (h *Hub) CatchUp(ctx context.Context, from, to Cursor, orderID string, fn func(Event) error) error {
	for p := range from {
		if orderID != "" && p != persistence.PartitionOf(orderID, len(from)) {
			continue
		}
		after := from[p]
		for after < to[p] {
			recs, err := h.j.Log(p).ReadAll(ctx, after, readBatch)
			var ce *persistence.CorruptRecordError
			if errors.As(err, &ce) {
				h.opts.Logger.Warn("event feed: skipping an unreadable journal entry", slog.Int("partition", p), slog.Any("error", err))
				after = ce.Next
				continue
			}
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				after = r.Position
				if r.Position > to[p] {
					break
				}
				if orderID != "" && r.StreamID != orderID {
					continue
				}
				ev, ok := h.event(r)
				if !ok {
					continue
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// event decodes a record into an Event.
func (h *Hub) event(r persistence.Record) (Event, bool) {
	pe, err := codec.DecodeRecord(r)
	if err != nil {
		h.opts.Logger.Warn("event feed: skipping an undecodable event", slog.String("order_id", r.StreamID),
			slog.Uint64("version", r.Version), slog.Any("error", err))
		return Event{}, false
	}
	return Event{Partition: r.Partition, Position: r.Position, OrderID: r.StreamID, Version: r.Version, Type: r.Type,
		JSON: h.opts.Encode(pe)}, true
}

// tail reads every partition after h.heads, on every nudge or poll, and
// hands what it read to the subscribers, until Close or until the last
// subscriber left.
func (h *Hub) tail() {
	defer close(h.done)
	t := time.NewTimer(h.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.nudge:
		case <-t.C:
		}
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false // the next Subscribe starts from the heads then
			h.mu.Unlock()
			return
		}
		heads := append(Cursor(nil), h.heads...)
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for p := range heads {
			for {
				recs, err := h.j.Log(p).ReadAll(ctx, heads[p], readBatch)
				var ce *persistence.CorruptRecordError
				if errors.As(err, &ce) {
					h.opts.Logger.Warn("event feed: skipping an unreadable journal entry", slog.Int("partition", p), slog.Any("error", err))
					heads[p] = ce.Next
					h.advance(p, ce.Next, nil)
					continue
				}
				if err != nil || len(recs) == 0 {
					break // a backend error: read again at the next poll
				}
				evs := make([]Event, 0, len(recs))
				for _, r := range recs {
					if ev, ok := h.event(r); ok {
						evs = append(evs, ev)
					}
				}
				heads[p] = recs[len(recs)-1].Position
				h.advance(p, heads[p], evs)
				if len(recs) < readBatch {
					break
				}
			}
		}
		cancel()
		t.Reset(h.opts.Poll)
	}
}

// advance hands evs to every subscriber and moves partition p's head to
// pos, both under the lock, so that a Subscribe sees either the head
// before these events (and gets them live) or after them (and reads them in
// its catch-up), never neither.
func (h *Hub) advance(p int, pos uint64, evs []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, ev := range evs {
			if s.filter != "" && s.filter != ev.OrderID {
				continue
			}
			select {
			case s.ch <- ev:
			default:
				delete(h.subs, s)
				s.end(ErrSlow)
			}
			if _, ok := h.subs[s]; !ok {
				break
			}
		}
	}
	if pos > h.heads[p] {
		h.heads[p] = pos
	}
}
