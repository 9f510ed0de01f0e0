package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/localcall"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/tracing"
	"github.com/ordersystem/ordersystem/transport"
)

// OutboxKind is the cluster kind of the outboxes. There is one outbox per
// partition of the journal, with cluster identity OutboxIdentity(p): each is
// a cluster singleton that drains its partition's log, the placement spreads
// them over the members, and another member takes one over when its host
// dies.
const OutboxKind = "outbox"

// outboxIdentityPrefix starts every outbox identity.
const outboxIdentityPrefix = "outbox-"

// OutboxIdentity is the cluster identity of partition p's outbox.
func OutboxIdentity(p int) string { return outboxIdentityPrefix + strconv.Itoa(p) }

// CheckpointName is the name of partition p's outbox checkpoint in
// persistence.
func CheckpointName(p int) string { return outboxIdentityPrefix + strconv.Itoa(p) }

// outboxPartition parses an outbox identity; ok is false for anything that
// is not OutboxIdentity(p) of a p in [0, n).
func outboxPartition(identity string, n int) (int, bool) {
	digits, ok := strings.CutPrefix(identity, outboxIdentityPrefix)
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	p, err := strconv.Atoi(digits)
	if err != nil || p < 0 || p >= n {
		return 0, false
	}
	return p, true
}

// OutboxJournal is what the outboxes read (the partitions' logs) and where
// they keep their checkpoints: in a partition's Log when it keeps its
// checkpoints (persistence.LogCheckpoints), else by name here.
type OutboxJournal interface {
	Partitions() int
	Log(p int) persistence.Log
	LoadCheckpoint(ctx context.Context, name string) (uint64, error)
	SaveCheckpoint(ctx context.Context, name string, pos uint64) error
}

// Publisher is the part of a transport the outbox uses.
type Publisher interface {
	Publish(ctx context.Context, batch []transport.Message) error
}

// OutboxConfig configures the outbox actors.
type OutboxConfig struct {
	Journal   OutboxJournal
	Publisher Publisher
	// BatchSize is the most events read and published at once (default 100).
	BatchSize int
	// IOTimeout bounds one read, publish or checkpoint save (default 5 s).
	IOTimeout time.Duration
	// Metrics, if set, counts publishes and failures.
	Metrics *metrics.Metrics
	// Stats, if set, receives the outbox figures after every drain; it must
	// have been made by NewOutboxStats for Journal's partition count.
	Stats *OutboxStats
	// Tracer, if set, records an "outbox.publish" span per published event
	// that carries a trace context in its metadata, a child of that
	// context (the order actor's span that journaled it), covering the
	// publish of its batch. Without it the events are published as they
	// are: the trace context travels in their payload anyway.
	Tracer trace.Tracer
	Logger *slog.Logger
	// Now is the wall clock that dates a checkpoint reset, which other
	// members read in the cluster's outbox figures (default time.Now).
	Now func() time.Time
}

// OutboxStats are the figures of the outboxes this process hosted; safe for
// concurrent use.
type OutboxStats struct {
	Published atomic.Uint64
	Failures  atomic.Uint64
	// DeadLettered counts what the outboxes skipped without publishing, each
	// logged at error level: events the transport refused for good (with
	// their event id) and entries of a partition's log that are not records
	// at all (with their position; see persistence.ErrCorrupt).
	DeadLettered atomic.Uint64

	parts []PartitionStats
}

// PartitionStats are one partition's outbox figures as this process last
// saw them.
type PartitionStats struct {
	Checkpoint atomic.Uint64
	Head       atomic.Uint64

	reset atomic.Pointer[CheckpointReset]
}

// NewOutboxStats returns the stats of n partitions' outboxes.
func NewOutboxStats(n int) *OutboxStats { return &OutboxStats{parts: make([]PartitionStats, n)} }

// Partitions is the number of partitions the stats have.
func (s *OutboxStats) Partitions() int { return len(s.parts) }

// Partition returns partition p's figures (p must be in range).
func (s *OutboxStats) Partition(p int) *PartitionStats { return &s.parts[p] }

// CheckpointReset records an outbox finding its checkpoint ahead of its
// partition's log: the backend lost data (Redis restarted empty or from an
// old snapshot, a stream was purged).
type CheckpointReset struct {
	// Partition is the partition whose outbox reset its checkpoint.
	Partition int
	// Checkpoint is the position the outbox had published to.
	Checkpoint uint64
	// Stored is the checkpoint the backend held then (0 when it lost it).
	Stored uint64
	// Head is the log's head then.
	Head uint64
	At   time.Time
}

// LastReset is the latest checkpoint reset of partition p's outbox seen by
// this process, nil if none.
func (s *PartitionStats) LastReset() *CheckpointReset { return s.reset.Load() }

// Lag is the number of journaled events of the partition not yet
// published, as last seen (positions are dense on memory and Redis; on NATS
// it over-counts, see persistence.Log.Behind).
func (s *PartitionStats) Lag() uint64 {
	h, c := s.Head.Load(), s.Checkpoint.Load()
	if h < c {
		return 0
	}
	return h - c
}

// NewOutboxKind returns the cluster kind of the outboxes.
func NewOutboxKind(cfg OutboxConfig) *pcluster.Kind {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stats == nil || cfg.Stats.Partitions() != cfg.Journal.Partitions() {
		cfg.Stats = NewOutboxStats(cfg.Journal.Partitions())
	}
	shared := &cfg
	return pcluster.NewKind(OutboxKind, actor.PropsFromProducer(func() actor.Actor { return &outboxActor{cfg: shared} }))
}

type outboxActor struct {
	cfg *OutboxConfig
	// partition is the partition this activation drains (from its
	// identity), log its log, name its checkpoint's name and stats its
	// figures; log is nil until ClusterInit named a valid identity.
	partition  int
	log        persistence.Log
	name       string
	stats      *PartitionStats
	logger     *slog.Logger
	checkpoint uint64
	loaded     bool
	// skipped is the position of the last unreadable entry this activation
	// dead-lettered (0: none), so that a retry after a failed checkpoint
	// save does not count it twice.
	skipped uint64
}

func (o *outboxActor) Receive(ctx actor.Context) {
	m, call := localcall.Unwrap(ctx.Message()) // see orderActor.Receive
	switch msg := m.(type) {
	case *pcluster.ClusterInit:
		id := msg.Identity.GetIdentity()
		p, ok := outboxPartition(id, o.cfg.Journal.Partitions())
		if !ok {
			o.cfg.Logger.Error("outbox activated under an identity that names no partition of the journal", slog.String("identity", id),
				slog.Int("partitions", o.cfg.Journal.Partitions()))
			return
		}
		o.partition, o.log, o.name, o.stats = p, o.cfg.Journal.Log(p), CheckpointName(p), o.cfg.Stats.Partition(p)
		o.logger = o.cfg.Logger.With(slog.Int("partition", p))
	case *orderpb.DrainOutbox:
		if o.log == nil {
			localcall.Respond(ctx, call, &orderpb.OutboxStatus{Error: "this outbox's identity names no partition of the journal"})
			return
		}
		localcall.Respond(ctx, call, o.drain())
	}
}

func (o *outboxActor) io() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), o.cfg.IOTimeout)
}

// drain publishes everything journaled after the checkpoint, batch by batch,
// and advances the checkpoint only after the transport acknowledged a batch.
// An entry of the log that is not a record is dead-lettered and the
// checkpoint moves past it (see skip).
func (o *outboxActor) drain() *orderpb.OutboxStatus {
	st := &orderpb.OutboxStatus{}
	fail := func(what string, err error) *orderpb.OutboxStatus {
		o.cfg.Stats.Failures.Add(1)
		o.cfg.Metrics.ObservePublish(0, err)
		o.logger.Warn("outbox "+what+" failed", slog.Uint64("checkpoint", o.checkpoint), slog.Any("error", err))
		st.Error = what + ": " + err.Error()
		st.Checkpoint = o.checkpoint
		return st
	}
	// The head read with the checkpoint is the only one of the drain: a
	// record appended after it was nudged, and that nudge drains again.
	head, err := o.checkCheckpoint()
	if err != nil {
		return fail("load checkpoint", err)
	}
	for {
		ctx, cancel := o.io()
		recs, err := o.log.ReadAll(ctx, o.checkpoint, o.cfg.BatchSize)
		cancel()
		var corrupt *persistence.CorruptRecordError
		if errors.As(err, &corrupt) {
			if err := o.skip(corrupt); err != nil {
				return fail("skip an unreadable journal entry", err)
			}
			continue
		}
		if err != nil {
			return fail("read journal", err)
		}
		if len(recs) == 0 {
			break
		}
		batch := make([]transport.Message, len(recs))
		for i, r := range recs {
			batch[i] = transport.Message{OrderID: r.StreamID, Version: r.Version, Type: r.Type, Payload: r.Data}
		}
		spans := o.startPublish(batch)
		ctx, cancel = o.io()
		err = o.cfg.Publisher.Publish(ctx, batch)
		cancel()
		if err != nil && !errors.Is(err, transport.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			// The transport refused something in the batch for good (too
			// large, invalid): publish one by one and dead-letter what is
			// refused, so that one poison event cannot block the rest.
			err = o.publishEach(batch)
		}
		endPublish(spans, err)
		if err != nil {
			return fail("publish", err)
		}
		next := recs[len(recs)-1].Position
		ctx, cancel = o.io()
		err = o.saveCheckpoint(ctx, next)
		cancel()
		if err != nil {
			// Published but not checkpointed: the batch will be published
			// again, and consumers drop it by event id.
			return fail("save checkpoint", err)
		}
		o.checkpoint = next
		st.Published += uint64(len(recs))
		o.cfg.Stats.Published.Add(uint64(len(recs)))
		o.cfg.Metrics.ObservePublish(len(recs), nil)
		o.stats.Checkpoint.Store(next)
		if len(recs) < o.cfg.BatchSize && o.checkpoint >= head {
			// A short page that reached the head ends the drain. One that
			// did not stopped before an entry that is not a record: the
			// next read reports it.
			break
		}
	}
	head = max(head, o.checkpoint)
	o.stats.Head.Store(head)
	st.Head = head
	o.stats.Checkpoint.Store(o.checkpoint)
	st.Checkpoint = o.checkpoint
	return st
}

// startPublish starts the publish span of every message of batch whose
// event carries a trace context; nil without a Tracer.
func (o *outboxActor) startPublish(batch []transport.Message) []trace.Span {
	if o.cfg.Tracer == nil {
		return nil
	}
	var spans []trace.Span
	for _, m := range batch {
		meta := codec.EventMetadata(m.Payload)
		if meta.GetTraceParent() == "" {
			continue
		}
		ctx := tracing.Extract(context.Background(), meta.GetTraceParent(), meta.GetTraceState())
		if !trace.SpanContextFromContext(ctx).IsValid() {
			continue
		}
		_, span := o.cfg.Tracer.Start(ctx, "outbox.publish", trace.WithSpanKind(trace.SpanKindProducer))
		if !span.IsRecording() {
			continue
		}
		span.SetAttributes(attribute.String("event_id", m.ID()), attribute.String("event_type", m.Type),
			attribute.Int("outbox.partition", o.partition), attribute.Int("outbox.batch", len(batch)))
		spans = append(spans, span)
	}
	return spans
}

// endPublish ends the publish spans with the batch's outcome.
func endPublish(spans []trace.Span, err error) {
	for _, span := range spans {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// head asks the journal for the position of its last record.
// skip dead-letters an entry of the global log that is not a record: it is
// logged with its position and reason and counted, once per activation, and
// the checkpoint is saved at e.Next, where the journal reads on after it.
// Nothing readable lies between the checkpoint and e.Next, so published ==
// journaled still holds for every record.
func (o *outboxActor) skip(e *persistence.CorruptRecordError) error {
	if e.Next <= o.checkpoint {
		return fmt.Errorf("the journal reports an unreadable entry at position %d but resumes at %d, not past the checkpoint %d: %w",
			e.Position, e.Next, o.checkpoint, e)
	}
	if o.skipped != e.Position {
		o.skipped = e.Position
		o.cfg.Stats.DeadLettered.Add(1)
		o.cfg.Metrics.ObserveOutboxDeadLetter(metrics.OutboxDeadLetterUnreadable)
		o.logger.Error("outbox dead-lettered an entry of the journal's log that is not a record; nothing is published for it",
			slog.Uint64("position", e.Position), slog.Uint64("resume_after", e.Next), slog.String("reason", e.Reason))
	}
	ctx, cancel := o.io()
	err := o.saveCheckpoint(ctx, e.Next)
	cancel()
	if err != nil {
		return fmt.Errorf("save checkpoint %d: %w", e.Next, err)
	}
	o.checkpoint = e.Next
	o.stats.Checkpoint.Store(e.Next)
	return nil
}

// checkCheckpoint loads the stored checkpoint (the first drain of an
// activation starts from it) and checks the one in memory against the
// backend: a log head below it, or a stored checkpoint gone, means the
// backend lost data. Positions then cannot tell which events in the log are
// new (after Redis restarted empty the log starts again at 1 and may have
// grown past the old checkpoint already), so the outbox publishes the log
// again from its start, saves checkpoint 0 and says so at error level and
// in its stats. Consumers drop what they saw by event id.
//
// The checkpoint and the head come from persistence.LogCheckpointAndHead:
// one read on a log that keeps its partition's checkpoints (Redis). It
// returns the head, which the drain reads up to.
func (o *outboxActor) checkCheckpoint() (head uint64, err error) {
	ctx, cancel := o.io()
	defer cancel()
	stored, head, err := persistence.LogCheckpointAndHead(ctx, o.cfg.Journal, o.log, o.name)
	if err != nil {
		return 0, err
	}
	if !o.loaded {
		o.checkpoint, o.loaded = stored, true
	}
	if o.checkpoint == 0 {
		return head, nil
	}
	if head >= o.checkpoint && stored != 0 {
		return head, nil
	}
	r := &CheckpointReset{Partition: o.partition, Checkpoint: o.checkpoint, Stored: stored, Head: head, At: o.cfg.Now().UTC()}
	o.stats.reset.Store(r)
	o.logger.Error("outbox checkpoint is ahead of the journal: the persistence backend lost data (restarted empty?); publishing its log again from the start",
		slog.Uint64("checkpoint", r.Checkpoint), slog.Uint64("stored_checkpoint", stored), slog.Uint64("head", head))
	o.checkpoint = 0
	o.stats.Checkpoint.Store(0)
	if err := o.saveCheckpoint(ctx, 0); err != nil {
		// The drain goes on from 0 regardless; its first batch saves.
		o.logger.Warn("outbox could not save its reset checkpoint", slog.Any("error", err))
	}
	return head, nil
}

// saveCheckpoint stores the partition's checkpoint where the backend keeps
// it (persistence.SaveLogCheckpoint).
func (o *outboxActor) saveCheckpoint(ctx context.Context, pos uint64) error {
	return persistence.SaveLogCheckpoint(ctx, o.cfg.Journal, o.log, o.name, pos)
}

// publishEach publishes messages one at a time; a message the transport
// refuses for good (not a transient ErrUnavailable) is dead-lettered: logged
// with its event id, counted, and skipped. A transient failure stops it.
func (o *outboxActor) publishEach(batch []transport.Message) error {
	for _, m := range batch {
		ctx, cancel := o.io()
		err := o.cfg.Publisher.Publish(ctx, []transport.Message{m})
		cancel()
		if err == nil {
			continue
		}
		if errors.Is(err, transport.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		o.cfg.Stats.DeadLettered.Add(1)
		o.cfg.Metrics.ObserveOutboxDeadLetter(metrics.OutboxDeadLetterRefused)
		o.logger.Error("outbox dead-lettered an event the transport refuses; it stays in the journal but is not published",
			slog.String("event_id", m.ID()), slog.String("type", m.Type), slog.Int("payload_bytes", len(m.Payload)), slog.Any("error", err))
	}
	return nil
}
