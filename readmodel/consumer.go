package readmodel

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/tracing"
	"github.com/ordersystem/ordersystem/transport"
)

// Defaults of ConsumerConfig.
const (
	DefaultAttempts    = 4
	DefaultBackoff     = 100 * time.Millisecond
	DefaultDeadLetters = 20
)

// ConsumerConfig configures a Consumer. The zero value means every default.
type ConsumerConfig struct {
	// Attempts is how many times an event that cannot be applied is checked
	// against the journal, while the journal answers, before it is
	// dead-lettered (default DefaultAttempts). Checks that fail because the
	// journal cannot be reached do not count: the batch is redelivered.
	Attempts int
	// Backoff is the wait after the first failed check, doubling after
	// each (default DefaultBackoff: 4 attempts take 0.7 s of waiting).
	Backoff time.Duration
	// DeadLetters is how many recent dead letters DeadLetters returns
	// (default DefaultDeadLetters).
	DeadLetters int
	// Metrics, if set, counts dead letters (readmodel_dead_lettered_total).
	Metrics *metrics.Metrics
	// Tracer, if set, records a "readmodel.apply" span per delivered event
	// that carries a trace context in its metadata, a child of that
	// context, so that the read side's apply joins the request's trace.
	Tracer trace.Tracer
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *ConsumerConfig) setDefaults() {
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.DeadLetters <= 0 {
		c.DeadLetters = DefaultDeadLetters
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DeadLetter is a delivered event the read model skipped.
type DeadLetter struct {
	// EventID is the message's event id, "<orderId>:<version>" (truncated
	// past 160 bytes).
	EventID string
	// Type is the message's event type.
	Type string
	// Reason is one of metrics.DeadLetterReasons.
	Reason string
	// Error says what was wrong, for a human.
	Error string
	// Attempts is how many times the journal was asked (0: never, the
	// message itself was unusable).
	Attempts int
	At       time.Time
}

// Consumer feeds the events a transport delivers into a read model: Handle
// is its transport.Handler. An event the read model cannot apply is
// repaired from the journal when the journal holds it; one it does not hold
// after Attempts checks, one whose payload is not an order event, and one of
// a quarantined order are dead-lettered (logged with the event id and
// reason, counted, listed) and the consumer moves on. Only an outage of the
// journal (a persistence error that wraps ErrUnavailable or ErrClosed) makes
// Handle fail, so that the transport redelivers: no real event is
// dead-lettered because the journal could not be asked.
//
// A forged event that is the next version of an order and a transition its
// state allows cannot be told from a real one without reading the journal
// for every event; it is applied.
type Consumer struct {
	rm  *ReadModel
	cfg ConsumerConfig

	deadLettered atomic.Uint64
	mu           sync.Mutex
	recent       []DeadLetter // ring of the last cfg.DeadLetters
	next         int          // where the next one goes in recent
}

// NewConsumer returns the transport handler of rm.
func NewConsumer(rm *ReadModel, cfg ConsumerConfig) *Consumer {
	cfg.setDefaults()
	return &Consumer{rm: rm, cfg: cfg}
}

// pending is an event that failed its first journal check.
type pending struct {
	msg transport.Message
	ev  codec.Head
	err error
}

// Handle implements transport.Handler. It is not safe to call concurrently
// with itself (a subscription never does). It returns an error only when
// the journal cannot be reached or ctx is done: the batch is then
// redelivered and what was applied already is dropped as duplicates.
func (c *Consumer) Handle(ctx context.Context, batch []transport.Message) error {
	var retry []pending
	for _, m := range batch {
		ev, reason, err := decode(m)
		if err != nil {
			c.deadLetter(m, reason, err, 0)
			continue
		}
		if err := c.apply(ctx, m, ev); err != nil {
			if outage(ctx, err) {
				return err
			}
			if errors.Is(err, ErrQuarantined) {
				c.deadLetter(m, metrics.DeadLetterQuarantined, err, 1)
				continue
			}
			retry = append(retry, pending{msg: m, ev: ev, err: err})
		}
	}
	// Events of one order stay in order: retry keeps the batch's order.
	delay := c.cfg.Backoff
	for attempt := 2; attempt <= c.cfg.Attempts && len(retry) > 0; attempt++ {
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay *= 2
		still := retry[:0]
		for _, p := range retry {
			err := c.rm.ApplyHead(ctx, p.ev)
			switch {
			case err == nil:
			case outage(ctx, err):
				return err
			case errors.Is(err, ErrQuarantined):
				c.deadLetter(p.msg, metrics.DeadLetterQuarantined, err, attempt)
			default:
				p.err = err
				still = append(still, p)
			}
		}
		retry = still
	}
	for _, p := range retry {
		reason := metrics.DeadLetterJournalError
		if errors.Is(p.err, ErrNotInJournal) || errors.Is(p.err, ErrGap) {
			reason = metrics.DeadLetterNotInJournal
		}
		c.deadLetter(p.msg, reason, p.err, c.cfg.Attempts)
	}
	return nil
}

// apply applies ev, in a span that continues the trace context of its
// metadata when there is a Tracer.
func (c *Consumer) apply(ctx context.Context, m transport.Message, ev codec.Head) error {
	tp := ev.TraceParent
	if c.cfg.Tracer == nil || tp == "" {
		return c.rm.ApplyHead(ctx, ev)
	}
	sctx := tracing.Extract(ctx, tp, ev.TraceState)
	if !trace.SpanContextFromContext(sctx).IsRemote() {
		return c.rm.ApplyHead(ctx, ev) // a malformed traceparent: no trace to continue
	}
	sctx, span := c.cfg.Tracer.Start(sctx, "readmodel.apply", trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("event_id", m.ID()), attribute.String("event_type", m.Type))
	}
	err := c.rm.ApplyHead(sctx, ev)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	return err
}

// decode returns the event a message carries, as much of it as the read
// model keeps (a codec.Head), or why it carries none (a reason of
// metrics.DeadLetterReasons and the error).
func decode(m transport.Message) (codec.Head, string, error) {
	ev, err := codec.DecodeHead(m.Payload)
	if err != nil {
		return codec.Head{}, metrics.DeadLetterUndecodable, errors.New("the payload is not an order event: " + err.Error())
	}
	if ev.Event == nil {
		return codec.Head{}, metrics.DeadLetterUndecodable, errors.New("the payload is an envelope without an event")
	}
	if !order.ValidID(m.OrderID) {
		return codec.Head{}, metrics.DeadLetterInvalid, errors.New("the message's order id is not an order id")
	}
	if ev.OrderID != m.OrderID || ev.Version != m.Version {
		return codec.Head{}, metrics.DeadLetterInvalid, errors.New("the payload is event " +
			truncate(order.EventID(ev.OrderID, ev.Version), 160) + ", not the message's")
	}
	return ev, "", nil
}

// outage reports whether err means the journal could not be asked (or the
// consumer is stopping), as opposed to an answer.
func outage(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Consumer) deadLetter(m transport.Message, reason string, err error, attempts int) {
	d := DeadLetter{
		EventID:  truncate(m.ID(), 160),
		Type:     truncate(m.Type, 64),
		Reason:   reason,
		Error:    truncate(err.Error(), 300),
		Attempts: attempts,
		At:       c.cfg.Now().UTC(),
	}
	c.deadLettered.Add(1)
	c.cfg.Metrics.ObserveDeadLetter(reason)
	c.mu.Lock()
	if len(c.recent) < c.cfg.DeadLetters {
		c.recent = append(c.recent, d)
	} else {
		c.recent[c.next] = d
	}
	c.next = (c.next + 1) % c.cfg.DeadLetters
	c.mu.Unlock()
	c.cfg.Logger.Warn("read model dead-lettered an event it cannot apply",
		slog.String("event_id", d.EventID), slog.String("type", d.Type), slog.String("reason", reason),
		slog.Int("attempts", attempts), slog.String("error", d.Error))
}

// DeadLettered is the number of events dead-lettered so far.
func (c *Consumer) DeadLettered() uint64 { return c.deadLettered.Load() }

// DeadLetters returns the most recent dead letters (at most
// ConsumerConfig.DeadLetters), newest first.
func (c *Consumer) DeadLetters() []DeadLetter {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]DeadLetter, 0, len(c.recent))
	for i := range len(c.recent) {
		// c.next-1 is the newest.
		j := (c.next - 1 - i + 2*len(c.recent)) % len(c.recent)
		out = append(out, c.recent[j])
	}
	return out
}
