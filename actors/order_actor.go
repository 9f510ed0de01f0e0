package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/localcall"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/tracing"
)

// OrderKind is the cluster kind name of order actors.
const OrderKind = "order"

// Journal is what an order actor needs from persistence.
type Journal interface {
	Append(ctx context.Context, streamID string, expected uint64, records []persistence.Record) (uint64, error)
	Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error)
}

// Snapshots is what an order actor needs to keep snapshots.
type Snapshots interface {
	SaveSnapshot(ctx context.Context, s persistence.Snapshot) error
	LoadSnapshot(ctx context.Context, streamID string) (persistence.Snapshot, bool, error)
}

// OrderConfig holds what every order actor of a node shares.
type OrderConfig struct {
	Journal Journal
	// Snapshots, if set with SnapshotEvery > 0, stores the state every
	// SnapshotEvery events; activation then reads the newest snapshot and
	// the events after it.
	Snapshots     Snapshots
	SnapshotEvery uint64
	// NodeID is reported as the owner in every reply.
	NodeID string
	// IdleTimeout passivates an actor that received nothing for this long
	// (default 2 minutes).
	IdleTimeout time.Duration
	// Crowded, if set, is asked after every message: while it says true
	// (the node's memory is getting short, see internal/memwatch) the actor
	// passivates after CrowdedLinger without messages instead of
	// IdleTimeout, since every active actor holds a few kilobytes.
	Crowded func() bool
	// CrowdedLinger is that shorter idle timeout (default 5 s).
	CrowdedLinger time.Duration
	// IOTimeout bounds one journal call (default 5 s; negative: no bound,
	// for a journal that answers at once, the in-memory one, where a
	// deadline is a timer set and stopped per call for nothing).
	IOTimeout time.Duration
	// InlineCalls runs a call from this member to an idle actor on the
	// caller's goroutine (see orderMailbox): only for a journal that
	// answers at once, the in-memory one, since the caller then waits for
	// the actor's journal calls without its own deadline.
	InlineCalls bool
	// MaxConflictRetries bounds how often a command is decided again after a
	// version conflict (default 5).
	MaxConflictRetries int
	// RememberCommands is how many recent command ids an actor keeps for
	// deduplication (default 64).
	RememberCommands int
	// SoleWriter says that nothing but this node's order actors writes the
	// journal (the in-memory journal): a loaded actor's state is then the
	// head of its stream, and reads and refusals skip reading the tail.
	SoleWriter bool
	// Published, with SoleWriter, receives each actor's committed state
	// before the actor answers (see Published); ignored without SoleWriter.
	Published *Published
	// Now is the clock that dates events (default time.Now). An event is
	// never dated before the order's previous one (order.Decide takes the
	// later of the two), so a member whose clock runs behind the member that
	// wrote the last event dates its events at that event's time.
	Now func() time.Time
	// Appended, if set, is called with the order id after every successful
	// append (the nudge of its partition's outbox). It must not block.
	Appended func(orderID string)
	// Metrics, if set, receives activations and journal append figures.
	Metrics *metrics.Metrics
	// Serving, if set, is asked before every message; an error refuses it
	// as unavailable (the node lost its cluster lease).
	Serving func() error
	// StorageFailed, if set, is called when a journal call fails for another
	// reason than a conflict (the persistence monitor checks at once). It
	// must not block.
	StorageFailed func(error)
	// Quarantined, if set, is called when an order's journal stream holds a
	// record that cannot be read (the node lists the order as quarantined).
	// The actor answers every command and read of that order with
	// ERROR_CODE_QUARANTINED while the record stays so. It must not block.
	Quarantined func(orderID string, err *codec.CorruptError)
	// Tracer, if set, records a span per message ("order.command create",
	// "order.get", "order.history"), a child of the trace context the
	// message carries, with child spans for the journal calls. Without it
	// the message's trace context is still written into the metadata of the
	// events a command produces.
	Tracer trace.Tracer
	Logger *slog.Logger
}

func (c *OrderConfig) setDefaults() {
	if !c.SoleWriter {
		c.Published = nil // another writer may be ahead of any actor's state
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.CrowdedLinger <= 0 {
		c.CrowdedLinger = 5 * time.Second
	}
	if c.IOTimeout == 0 {
		c.IOTimeout = 5 * time.Second
	}
	if c.MaxConflictRetries <= 0 {
		c.MaxConflictRetries = 5
	}
	if c.RememberCommands <= 0 {
		c.RememberCommands = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// NewOrderKind returns the cluster kind that hosts order actors.
func NewOrderKind(cfg OrderConfig) *pcluster.Kind {
	cfg.setDefaults()
	shared := &cfg
	mailboxes := newOrderMailbox
	if cfg.InlineCalls {
		mailboxes = inlineOrderMailboxes
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &orderActor{cfg: shared, state: &order.State{}} },
		actor.WithDispatcher(newWorkerDispatcher(256, time.Second, 300)),
		// One object per actor where protoactor's mailboxes make five or a
		// ring of ten slots: every active actor keeps its mailbox.
		actor.WithMailbox(mailboxes))
	return pcluster.NewKind(OrderKind, props)
}

// notFoundLinger is how long an actor for an order that does not exist stays
// activated, so that a burst of requests for it does not re-activate it each time.
const notFoundLinger = 5 * time.Second

type seenCommand struct {
	id          string
	version     uint64 // the stream version right after the command's events
	fingerprint string
	// durable is true when this activation's append of the command was
	// acknowledged; a command read from the journal (or a snapshot) may be
	// there after an append that failed as unavailable (see replay).
	durable bool
}

type orderActor struct {
	cfg *OrderConfig
	// state is never nil. Once published (shared), it is never changed
	// again: Published hands it to readers, who copy it without the actor;
	// the next change works on a copy (mutable).
	state  *order.State
	shared bool
	// loaded is false until the stream was read, and again after a write
	// whose outcome is unknown (the journal may or may not have it).
	loaded  bool
	counted bool // counted in the active-actors gauge
	// published is the version of the state in cfg.Published (0: none).
	published uint64
	// seen lists the last RememberCommands command ids, oldest first. A
	// slice searched linearly: an order sees a handful of commands, and a
	// map would cost every active actor a few hundred bytes more.
	seen []seenCommand
}

// lookup returns what is remembered of command id.
func (a *orderActor) lookup(id string) (seenCommand, bool) {
	for i := len(a.seen) - 1; i >= 0; i-- {
		if a.seen[i].id == id {
			return a.seen[i], true
		}
	}
	return seenCommand{}, false
}

func (a *orderActor) Receive(ctx actor.Context) {
	// A request from this member comes as a localcall.Call (answered
	// through its channel), one from another member with a sender.
	m, call := localcall.Unwrap(ctx.Message())
	defer func() {
		// A panic must not leave a half-applied state behind, nor loop: the
		// actor answers, stops, and the next request re-activates it from
		// the journal.
		if p := recover(); p != nil {
			a.cfg.Logger.Error("order actor panicked; stopping it", slog.String("order_id", a.state.ID), slog.Any("panic", p))
			a.withdraw()
			if localcall.Expects(ctx, call) {
				localcall.Respond(ctx, call, a.reply(nil, &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_INTERNAL, Message: fmt.Sprintf("order %s failed; retry", a.state.ID)}))
			}
			ctx.Stop(ctx.Self())
		}
	}()
	if a.cfg.Serving != nil && localcall.Expects(ctx, call) {
		if err := a.cfg.Serving(); err != nil {
			localcall.Respond(ctx, call, a.reply(nil, &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_NOT_SERVING, Message: err.Error()}))
			ctx.Stop(ctx.Self())
			return
		}
	}
	switch msg := m.(type) {
	case *actor.Stopped:
		a.withdraw()
		if a.counted {
			a.cfg.Metrics.ActorStopped()
			a.counted = false
		}
		return
	case *pcluster.ClusterInit:
		a.cfg.Metrics.ActorActivated()
		a.counted = true
		a.mutable().ID = msg.Identity.GetIdentity()
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self())
	case *orderpb.Command:
		tctx, span := a.startSpan(msg.GetTraceParent(), msg.GetTraceState(), commandSpanName(msg))
		reply := a.handleCommand(tctx, msg)
		endSpan(span, reply)
		a.publish()
		localcall.Respond(ctx, call, reply)
	case *orderpb.GetOrder:
		tctx, span := a.startSpan(msg.GetTraceParent(), msg.GetTraceState(), "order.get")
		reply := a.handleGet(tctx)
		endSpan(span, reply)
		a.publish()
		localcall.Respond(ctx, call, reply)
	case *orderpb.GetHistory:
		tctx, span := a.startSpan(msg.GetTraceParent(), msg.GetTraceState(), "order.history")
		reply := a.handleHistory(tctx)
		endSpan(span, reply)
		localcall.Respond(ctx, call, reply)
	case *orderpb.GetOrderAsOf:
		tctx, span := a.startSpan(msg.GetTraceParent(), msg.GetTraceState(), "order.as_of")
		reply := a.handleAsOf(tctx, msg)
		endSpan(span, reply)
		localcall.Respond(ctx, call, reply)
	default:
		return
	}
	ctx.SetReceiveTimeout(a.idleTimeout())
}

// idleTimeout is how long the actor stays active without messages: the
// idle timeout, shorter while memory is crowded; an order that does not
// exist is not kept for long, so requests for random ids cannot fill the
// memory.
func (a *orderActor) idleTimeout() time.Duration {
	switch {
	case !a.state.Exists():
		return min(notFoundLinger, a.cfg.IdleTimeout)
	case a.cfg.Crowded != nil && a.cfg.Crowded():
		return min(a.cfg.CrowdedLinger, a.cfg.IdleTimeout)
	}
	return a.cfg.IdleTimeout
}

// publish puts the state in cfg.Published when it is the stream's head
// (loaded, on the journal's only writer) and changed since it was last
// published, and withdraws it when it may not be; called before every
// answer, so a read through Published never misses an acknowledged write.
func (a *orderActor) publish() {
	if a.cfg.Published == nil {
		return
	}
	if !a.loaded || !a.state.Exists() {
		a.withdraw()
		return
	}
	if a.published != a.state.Version {
		a.cfg.Published.set(a.state)
		a.shared = true
		a.published = a.state.Version
	}
}

// mutable returns the state to change in place: a copy of it if it was
// published (see Published), so that no reader sees it change.
func (a *orderActor) mutable() *order.State {
	if a.shared {
		c := *a.state
		a.state, a.shared = &c, false
	}
	return a.state
}

// withdraw takes the state out of cfg.Published, if it is there.
func (a *orderActor) withdraw() {
	if a.cfg.Published != nil && a.published != 0 {
		a.cfg.Published.drop(a.state.ID)
		a.published = 0
	}
}

// ioContext bounds one journal call; ctx carries the trace context only
// (it is never canceled).
func (a *orderActor) ioContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.cfg.IOTimeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, a.cfg.IOTimeout)
}

// startSpan continues the trace context a message carries with the span of
// handling it (none without a Tracer: the returned context then carries
// the message's trace context as it came).
func (a *orderActor) startSpan(traceParent, traceState, name string) (context.Context, trace.Span) {
	if a.cfg.Tracer == nil {
		// Nothing to record: the message's trace context goes into the
		// events as it came (handleCommand), unparsed.
		return context.Background(), noSpan
	}
	ctx := tracing.Extract(context.Background(), traceParent, traceState)
	ctx, span := a.cfg.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("order_id", a.state.ID))
	}
	return ctx, span
}

// noSpan is the span of a message when nothing records.
var noSpan = trace.SpanFromContext(context.Background())

// endSpan ends the span of a message with its reply.
func endSpan(span trace.Span, reply *orderpb.Reply) {
	if !span.IsRecording() {
		return
	}
	if e := reply.GetError(); e != nil {
		span.SetAttributes(attribute.String("order.error_code", e.GetCode().String()))
		switch e.GetCode() {
		case orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE, orderpb.ErrorCode_ERROR_CODE_INTERNAL, orderpb.ErrorCode_ERROR_CODE_QUARANTINED:
			span.SetStatus(codes.Error, e.GetMessage())
		}
	}
	span.SetAttributes(attribute.Int64("order.version", int64(reply.GetOrder().GetVersion())))
	span.End()
}

// commandSpanName names the span of a command by its kind.
func commandSpanName(msg *orderpb.Command) string {
	switch msg.GetCommand().(type) {
	case *orderpb.Command_Create:
		return "order.command create"
	case *orderpb.Command_Pay:
		return "order.command pay"
	case *orderpb.Command_Ship:
		return "order.command ship"
	case *orderpb.Command_Deliver:
		return "order.command deliver"
	case *orderpb.Command_Cancel:
		return "order.command cancel"
	}
	return "order.command"
}

// endIO ends a journal call's span with its error.
func endIO(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// loadSnapshot starts the state from the newest snapshot, if any.
func (a *orderActor) loadSnapshot(ctx context.Context) error {
	if a.state.Version > 0 {
		return nil
	}
	s, ok, err := a.readSnapshot(ctx)
	if err != nil || !ok {
		return err
	}
	a.startFrom(s)
	return nil
}

// readSnapshot returns the order's newest snapshot; ok is false when
// snapshots are off, there is none, or the stored one cannot be read (a
// snapshot is only a shortcut: a bad one is ignored and the stream folded).
func (a *orderActor) readSnapshot(ctx context.Context) (*orderpb.OrderSnapshot, bool, error) {
	if a.cfg.Snapshots == nil || a.cfg.SnapshotEvery == 0 {
		return nil, false, nil
	}
	snap, ok, err := a.cfg.Snapshots.LoadSnapshot(ctx, a.state.ID)
	if err != nil || !ok {
		return nil, false, err
	}
	s, ok := a.decodeSnapshot(snap)
	return s, ok, nil
}

// decodeSnapshot decodes a stored snapshot of this order; ok is false
// (with a warning) when it cannot be read or is not this order's.
func (a *orderActor) decodeSnapshot(snap persistence.Snapshot) (*orderpb.OrderSnapshot, bool) {
	var s orderpb.OrderSnapshot
	if err := proto.Unmarshal(snap.Data, &s); err != nil || s.GetOrder().GetVersion() != snap.Version || s.GetOrder().GetOrderId() != a.state.ID {
		a.cfg.Logger.Warn("ignoring unreadable snapshot", slog.String("order_id", a.state.ID), slog.Any("error", err))
		return nil, false
	}
	return &s, true
}

// startFrom makes a decoded snapshot the state.
func (a *orderActor) startFrom(s *orderpb.OrderSnapshot) {
	st := codec.StateFromProto(s.GetOrder())
	a.state, a.shared = &st, false
	for _, c := range s.GetCommands() {
		a.remember(c.GetCommandId(), c.GetFingerprint(), c.GetVersion())
	}
}

// activationPage is how many of a stream's first records an activation
// reads together with its snapshot (persistence.ActivationLoader): an
// order is a handful of events, and a stream longer than a snapshot
// interval has a snapshot to start from.
const activationPage = 64

// loadForActivation is the first load of the actor's stream from a backend
// that reads the newest snapshot and the stream's first records in one
// round trip: it starts the state from the snapshot, if any, and returns
// the records after it (reading the rest when the page did not reach them).
func (a *orderActor) loadForActivation(ctx context.Context, al persistence.ActivationLoader) ([]persistence.Record, error) {
	snap, ok, recs, err := al.LoadForActivation(ctx, a.state.ID, activationPage)
	if err != nil {
		return nil, err
	}
	if ok {
		if s, ok := a.decodeSnapshot(snap); ok {
			a.startFrom(s)
		}
	}
	v := a.state.Version
	if v > uint64(len(recs)) {
		// A snapshot past the page (or past a stream that lost records:
		// Load reports what it finds after the snapshot, as without it).
		return a.cfg.Journal.Load(ctx, a.state.ID, v+1)
	}
	tail := recs[v:] // what the snapshot does not cover
	if len(recs) < activationPage {
		return tail, nil // the whole stream
	}
	// A page of a longer stream: read the rest.
	rest, err := a.cfg.Journal.Load(ctx, a.state.ID, uint64(len(recs))+1)
	if err != nil {
		return nil, err
	}
	return append(tail, rest...), nil
}

// saveSnapshot stores the state if the last append crossed a multiple of
// SnapshotEvery. A failure only costs a longer activation later.
func (a *orderActor) saveSnapshot(tctx context.Context, before uint64) {
	n := a.cfg.SnapshotEvery
	if a.cfg.Snapshots == nil || n == 0 || before/n == a.state.Version/n {
		return
	}
	s := &orderpb.OrderSnapshot{Order: codec.StateToProto(a.state)}
	for _, c := range a.seen {
		s.Commands = append(s.Commands, &orderpb.SeenCommand{CommandId: c.id, Fingerprint: c.fingerprint, Version: c.version})
	}
	data, err := proto.Marshal(s)
	if err == nil {
		ctx, cancel := a.ioContext(tctx)
		err = a.cfg.Snapshots.SaveSnapshot(ctx, persistence.Snapshot{StreamID: a.state.ID, Version: a.state.Version, Data: data})
		cancel()
	}
	if err != nil {
		a.cfg.Logger.Warn("snapshot not saved", slog.String("order_id", a.state.ID), slog.Any("error", err))
	}
}

// refresh brings a loaded state up to the stream's head: catchUp, unless
// this node is the journal's only writer and the state is known to be the head.
func (a *orderActor) refresh(tctx context.Context) error {
	if a.loaded && a.cfg.SoleWriter {
		return nil
	}
	return a.catchUp(tctx)
}

// catchUp reads the events after the current version and folds them in.
func (a *orderActor) catchUp(tctx context.Context) error {
	tctx, span := tracing.Start(tctx, a.cfg.Tracer, "journal.load")
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("journal.from", int64(a.state.Version+1)))
	}
	ctx, cancel := a.ioContext(tctx)
	defer cancel()
	var (
		recs []persistence.Record
		err  error
	)
	if al, ok := a.cfg.Snapshots.(persistence.ActivationLoader); ok && a.state.Version == 0 && a.cfg.SnapshotEvery > 0 {
		recs, err = a.loadForActivation(ctx, al)
	} else {
		if err := a.loadSnapshot(ctx); err != nil {
			endIO(span, err)
			return err
		}
		recs, err = a.cfg.Journal.Load(ctx, a.state.ID, a.state.Version+1)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("journal.records", len(recs)))
	}
	endIO(span, err)
	if err != nil {
		return err
	}
	for _, r := range recs {
		pe, e, err := decodeNext(r, a.state.Version)
		if err != nil {
			return err
		}
		a.apply(pe, e)
	}
	a.loaded = true
	return nil
}

// decodeNext decodes journal record r, which must follow version prev of
// its stream; errors are *codec.CorruptError values.
func decodeNext(r persistence.Record, prev uint64) (*orderpb.Event, order.Event, error) {
	pe, e, err := codec.DecodeEvent(r)
	if err == nil {
		err = codec.CheckFollows(r, prev, e)
	}
	return pe, e, err
}

// apply folds one journaled event into the state and remembers its command.
func (a *orderActor) apply(pe *orderpb.Event, e order.Event) {
	a.applyEvent(pe.GetCommandId(), pe.GetFingerprint(), e)
}

// applyEvent folds in event e of command commandID (with its fingerprint).
func (a *orderActor) applyEvent(commandID, fingerprint string, e order.Event) {
	st := a.mutable()
	*st = order.Evolve(*st, e)
	a.remember(commandID, fingerprint, a.state.Version)
}

// markDurable records that command id's events are as durable as an
// acknowledged append (see replay).
func (a *orderActor) markDurable(id string) {
	for i := len(a.seen) - 1; i >= 0; i-- {
		if a.seen[i].id == id {
			a.seen[i].durable = true
			return
		}
	}
}

func (a *orderActor) remember(id, fingerprint string, version uint64) {
	if id == "" {
		return
	}
	c := seenCommand{id: id, version: version, fingerprint: fingerprint}
	for i := range a.seen {
		if a.seen[i].id == id {
			// Read again (a reload): what was confirmed of it still is.
			c.durable = a.seen[i].durable && a.seen[i].version == version
			a.seen[i] = c
			return
		}
	}
	if len(a.seen) >= a.cfg.RememberCommands {
		n := copy(a.seen, a.seen[1:])
		a.seen = a.seen[:n]
	}
	a.seen = append(a.seen, c)
}

func (a *orderActor) reply(o *orderpb.Order, e *orderpb.Error) *orderpb.Reply {
	return &orderpb.Reply{Order: o, Error: e, Owner: a.cfg.NodeID}
}

func (a *orderActor) ensureLoaded(tctx context.Context) *orderpb.Reply {
	if a.loaded {
		return nil
	}
	if err := a.catchUp(tctx); err != nil {
		if !errors.Is(err, codec.ErrCorrupt) {
			a.cfg.Logger.Warn("order load failed", slog.String("order_id", a.state.ID), slog.Any("error", err))
		}
		return a.reply(nil, a.storageError(err))
	}
	return nil
}

// handleGet answers the current state. It first reads the stream's tail
// (usually nothing): protoactor may briefly run a second activation of the
// order elsewhere (after a topology change), and a read must reflect every
// write acknowledged before it, wherever it was written. If the journal
// cannot be reached, a known state is still answered, marked stale.
func (a *orderActor) handleGet(tctx context.Context) *orderpb.Reply {
	if err := a.refresh(tctx); err != nil {
		if !a.loaded || !a.state.Exists() || errors.Is(err, codec.ErrCorrupt) {
			return a.reply(nil, a.storageError(err))
		}
		r := a.reply(codec.StateToProto(a.state), nil)
		r.Stale = true
		return r
	}
	if !a.state.Exists() {
		return a.reply(nil, domainError(fmt.Errorf("order %s: %w", a.state.ID, order.ErrNotFound)))
	}
	return a.reply(codec.StateToProto(a.state), nil)
}

func (a *orderActor) handleHistory(tctx context.Context) *orderpb.Reply {
	tctx, span := tracing.Start(tctx, a.cfg.Tracer, "journal.load")
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("journal.from", 1))
	}
	ctx, cancel := a.ioContext(tctx)
	defer cancel()
	recs, err := a.cfg.Journal.Load(ctx, a.state.ID, 1)
	endIO(span, err)
	if err != nil {
		return a.reply(nil, a.storageError(err))
	}
	if len(recs) == 0 {
		return a.reply(nil, domainError(fmt.Errorf("order %s: %w", a.state.ID, order.ErrNotFound)))
	}
	r := a.reply(nil, nil)
	r.History = make([]*orderpb.Event, 0, len(recs))
	var prev uint64
	for _, rec := range recs {
		pe, _, err := decodeNext(rec, prev)
		if err != nil {
			return a.reply(nil, a.storageError(err))
		}
		r.History = append(r.History, pe)
		prev = rec.Version
	}
	return r
}

// asOfPoint is a point in an order's history: after event version, or
// (byTime) after the last event dated at or before at. Event times never go
// backwards within an order (order.Decide dates an event no earlier than the
// one before), so the events a point includes are always a prefix of the
// stream, and a fold of a prefix (a snapshot) lies within the point exactly
// when its last event does.
type asOfPoint struct {
	version uint64
	at      time.Time
	byTime  bool
}

// includesEvent reports whether the event at version v, dated at, lies at or
// before the point.
func (p asOfPoint) includesEvent(v uint64, at time.Time) bool {
	if p.byTime {
		return !at.After(p.at)
	}
	return v <= p.version
}

// includes reports whether every event folded into s lies at or before the
// point.
func (p asOfPoint) includes(s *order.State) bool {
	return p.includesEvent(s.Version, s.LastEventAt())
}

// handleAsOf answers the order as it was at the point msg names. It starts
// from the newest snapshot when the snapshot lies within the point, and reads
// and folds only the events after it; otherwise it folds the stream from its
// first event, as handleHistory reads it. Every record read is decoded (a
// record that cannot be read refuses the answer, as it refuses an
// activation), and the fold stops at the first event past the point.
func (a *orderActor) handleAsOf(tctx context.Context, msg *orderpb.GetOrderAsOf) *orderpb.Reply {
	p := asOfPoint{version: msg.GetVersion()}
	if msg.GetAt() != nil {
		p = asOfPoint{at: msg.GetAt().AsTime(), byTime: true}
	} else if p.version == 0 {
		return a.reply(nil, &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, Field: "asOf",
			Message: "asOf: must be a version (1, 2, ...) or a time"})
	}
	ctx, cancel := a.ioContext(tctx)
	defer cancel()
	var base order.State
	snap, ok, err := a.readSnapshot(ctx)
	if err != nil {
		return a.reply(nil, a.storageError(err))
	}
	if ok {
		if s := codec.StateFromProto(snap.GetOrder()); p.includes(&s) {
			base = s
		}
	}
	tctx, span := tracing.Start(tctx, a.cfg.Tracer, "journal.load")
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("journal.from", int64(base.Version+1)))
	}
	recs, err := a.cfg.Journal.Load(ctx, a.state.ID, base.Version+1)
	endIO(span, err)
	if err != nil {
		return a.reply(nil, a.storageError(err))
	}
	if base.Version == 0 && len(recs) == 0 {
		return a.reply(nil, domainError(fmt.Errorf("order %s: %w", a.state.ID, order.ErrNotFound)))
	}
	state, head, past := base, base.Version, false
	for _, rec := range recs {
		_, e, err := decodeNext(rec, head)
		if err != nil {
			return a.reply(nil, a.storageError(err))
		}
		head = rec.Version
		if past = past || !p.includesEvent(rec.Version, order.EventTime(e)); !past {
			state = order.Evolve(state, e)
		}
	}
	switch {
	case !p.byTime && p.version > head:
		return a.reply(nil, &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, Field: "asOf",
			Message: fmt.Sprintf("asOf: order %s has %d versions, not %d", a.state.ID, head, p.version)})
	case state.Version == 0:
		return a.reply(nil, &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_NOT_FOUND, Field: "asOf",
			Message: fmt.Sprintf("asOf: order %s did not exist yet at %s", a.state.ID, p.at.UTC().Format(time.RFC3339Nano))})
	}
	state.ID = a.state.ID // a fold from the first event does not carry the id
	return a.reply(codec.StateToProto(&state), nil)
}

func (a *orderActor) handleCommand(tctx context.Context, msg *orderpb.Command) *orderpb.Reply {
	cmd, err := codec.CommandFromProto(msg)
	if err != nil {
		return a.reply(nil, domainError(err))
	}
	// A create on a fresh activation appends optimistically at version 0
	// instead of reading the stream first: a new order costs one journal
	// round trip, and if the order exists the append conflicts and the
	// actor reads the stream and decides again (a retried create is then
	// recognised by its command id).
	fresh := false // whether the state is known to be the stream's head
	if _, isCreate := cmd.(order.Create); !(isCreate && !a.loaded && a.state.Version == 0) {
		wasLoaded := a.loaded
		if r := a.ensureLoaded(tctx); r != nil {
			return r
		}
		// Read from the journal for this command, or loaded on a node
		// that is the journal's only writer.
		fresh = !wasLoaded || a.cfg.SoleWriter
	}
	for attempt := 0; ; attempt++ {
		if seen, ok := a.lookup(msg.GetCommandId()); ok && msg.GetCommandId() != "" {
			return a.replay(tctx, msg, seen)
		}
		events, err := order.Decide(*a.state, cmd, a.cfg.Now())
		if err != nil && !fresh {
			// Refusing on a state that may be stale (another activation
			// may have written) is not allowed: read the tail, decide again.
			if err := a.catchUp(tctx); err != nil {
				a.loaded = false
				return a.reply(nil, a.storageError(err))
			}
			fresh = true
			continue
		}
		if err != nil {
			return a.reply(nil, domainError(err))
		}
		records := make([]persistence.Record, len(events))
		// The events keep the trace context of this command's span, so
		// that their publish and their consumers continue the trace.
		// Without a Tracer that is the message's, as it came.
		tp, ts := msg.GetTraceParent(), msg.GetTraceState()
		if a.cfg.Tracer != nil {
			tp, ts = tracing.Inject(tctx)
		}
		for i, e := range events {
			data, err := codec.MarshalEvent(a.state.ID, a.state.Version+uint64(i)+1, msg.GetCommandId(), msg.GetFingerprint(), tp, ts, e)
			if err != nil {
				return a.reply(nil, &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()})
			}
			records[i] = persistence.Record{Type: e.EventType(), Data: data}
		}
		actx, span := tracing.Start(tctx, a.cfg.Tracer, "journal.append")
		if span.IsRecording() {
			span.SetAttributes(attribute.Int64("journal.expected", int64(a.state.Version)), attribute.Int("journal.records", len(records)))
		}
		ctx, cancel := a.ioContext(actx)
		start := time.Now()
		_, err = a.cfg.Journal.Append(ctx, a.state.ID, a.state.Version, records)
		a.cfg.Metrics.ObserveAppend(time.Since(start), errors.Is(err, persistence.ErrVersionConflict))
		cancel()
		endIO(span, err)
		switch {
		case err == nil:
			a.loaded = true
			before := a.state.Version
			for _, e := range events {
				a.applyEvent(msg.GetCommandId(), msg.GetFingerprint(), e)
			}
			a.markDurable(msg.GetCommandId())
			if a.cfg.Appended != nil {
				a.cfg.Appended(a.state.ID)
			}
			a.saveSnapshot(tctx, before)
			return a.reply(commandAnswer(msg, a.state), nil)
		case errors.Is(err, persistence.ErrVersionConflict) && attempt < a.cfg.MaxConflictRetries:
			// Another activation wrote first: read what it wrote and decide again.
			a.cfg.Logger.Debug("version conflict, deciding again", slog.String("order_id", a.state.ID), slog.Any("error", err))
			if err := a.catchUp(tctx); err != nil {
				a.loaded = false
				return a.reply(nil, a.storageError(err))
			}
			fresh = true
		default:
			// Outcome unknown (timeout, connection lost) or too much
			// contention: read the stream again before the next command.
			a.loaded = false
			return a.reply(nil, a.storageError(err))
		}
	}
}

// replay answers a command id seen before with what its first answer was,
// changing nothing.
//
// A command found in the journal rather than appended with success by this
// activation may be there from an append that failed as unavailable:
// written on the Redis primary but not acknowledged by the replicas that
// WaitReplicas asks for. A retry of it (the cluster's Request sends the
// same message again after an attempt timed out; a client retries with its
// Idempotency-Key) must not acknowledge it before it is as durable as an
// acknowledged append, so with a journal that can confirm that
// (persistence.Syncer) the replay waits for Sync and answers unavailable
// when Sync fails.
func (a *orderActor) replay(tctx context.Context, msg *orderpb.Command, seen seenCommand) *orderpb.Reply {
	if seen.fingerprint != msg.GetFingerprint() {
		return a.reply(nil, &orderpb.Error{
			Code:    orderpb.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH,
			Message: fmt.Sprintf("idempotency key %q was already used for a different request", msg.GetCommandId()),
		})
	}
	if s, ok := a.cfg.Journal.(persistence.Syncer); ok && !seen.durable {
		ctx, cancel := a.ioContext(tctx)
		err := s.Sync(ctx, a.state.ID)
		cancel()
		if err != nil {
			return a.reply(nil, a.storageError(err))
		}
		a.markDurable(msg.GetCommandId())
	}
	st := *a.state
	if seen.version != a.state.Version {
		// Fold the stream up to the version the command produced.
		ctx, cancel := a.ioContext(tctx)
		defer cancel()
		recs, err := a.cfg.Journal.Load(ctx, a.state.ID, 1)
		if err != nil {
			return a.reply(nil, a.storageError(err))
		}
		st = order.State{ID: a.state.ID}
		for _, r := range recs {
			if r.Version > seen.version {
				break
			}
			_, e, err := decodeNext(r, st.Version)
			if err != nil {
				return a.reply(nil, a.storageError(err))
			}
			st = order.Evolve(st, e)
		}
	}
	r := a.reply(commandAnswer(msg, &st), nil)
	r.Replayed = true
	return r
}

// commandAnswer is the order a command's reply carries: the whole state,
// or for a create what its answer shows (codec.CreatedToProto).
func commandAnswer(msg *orderpb.Command, st *order.State) *orderpb.Order {
	if msg.GetCreate() != nil {
		return codec.CreatedToProto(st)
	}
	return codec.StateToProto(st)
}

// domainError maps an error of the domain core to its wire form.
func domainError(err error) *orderpb.Error {
	e := &orderpb.Error{Message: err.Error()}
	var ve *order.ValidationError
	switch {
	case errors.As(err, &ve):
		e.Code, e.Field = orderpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, ve.Field
	case errors.Is(err, order.ErrNotFound):
		e.Code = orderpb.ErrorCode_ERROR_CODE_NOT_FOUND
	case errors.Is(err, order.ErrAlreadyExists):
		e.Code = orderpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	case errors.Is(err, order.ErrTransition):
		e.Code = orderpb.ErrorCode_ERROR_CODE_CONFLICT
	default:
		e.Code = orderpb.ErrorCode_ERROR_CODE_INTERNAL
	}
	return e
}

// storageError maps a journal error to its wire form and tells the monitor
// (an outage) or the node (a record that cannot be read: the order is
// quarantined, the journal answers).
func (a *orderActor) storageError(err error) *orderpb.Error {
	var ce *codec.CorruptError
	if errors.As(err, &ce) {
		// Read again on the next message: the answer stays the same until
		// an operator repairs the record, and then the order serves again.
		a.loaded = false
		a.cfg.Logger.Error("order quarantined: a record of its journal stream cannot be read",
			slog.String("order_id", a.state.ID), slog.Uint64("version", ce.Version), slog.Any("error", err))
		if a.cfg.Quarantined != nil {
			a.cfg.Quarantined(a.state.ID, ce)
		}
		return quarantinedError(a.state.ID, ce)
	}
	if a.cfg.StorageFailed != nil && !errors.Is(err, persistence.ErrVersionConflict) {
		a.cfg.StorageFailed(err)
	}
	return storageError(err)
}

// quarantinedError is the answer of an order whose stream holds a record
// that cannot be read.
func quarantinedError(id string, ce *codec.CorruptError) *orderpb.Error {
	return &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_QUARANTINED, Message: fmt.Sprintf(
		"order %s is quarantined: its journal record at version %d cannot be read (%v); an operator must repair the journal",
		id, ce.Version, ce.Err)}
}

func storageError(err error) *orderpb.Error {
	if errors.Is(err, persistence.ErrVersionConflict) {
		return &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "too many concurrent writers on this order, retry: " + err.Error()}
	}
	return &orderpb.Error{Code: orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "persistence unavailable: " + err.Error()}
}
