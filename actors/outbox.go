package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/transport"
)

// OutboxKind is the cluster kind of the outbox; OutboxIdentity is its one
// identity, which makes it a cluster singleton: one activation drains for the
// whole cluster and another member takes over when its host dies.
const (
	OutboxKind     = "outbox"
	OutboxIdentity = "outbox"
	// CheckpointName is the name of the outbox checkpoint in persistence.
	CheckpointName = "outbox"
)

// OutboxLog is what the outbox reads and where it keeps its checkpoint.
type OutboxLog interface {
	ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error)
	Head(ctx context.Context) (uint64, error)
	LoadCheckpoint(ctx context.Context, name string) (uint64, error)
	SaveCheckpoint(ctx context.Context, name string, pos uint64) error
}

// Publisher is the part of a transport the outbox uses.
type Publisher interface {
	Publish(ctx context.Context, batch []transport.Message) error
}

// OutboxConfig configures the outbox actor.
type OutboxConfig struct {
	Log       OutboxLog
	Publisher Publisher
	// BatchSize is the most events read and published at once (default 100).
	BatchSize int
	// IOTimeout bounds one read, publish or checkpoint save (default 5 s).
	IOTimeout time.Duration
	// Metrics, if set, counts publishes and failures.
	Metrics *metrics.Metrics
	// Stats, if set, receives the outbox figures after every drain.
	Stats  *OutboxStats
	Logger *slog.Logger
}

// OutboxStats are the outbox figures a node reports; safe for concurrent use.
type OutboxStats struct {
	Checkpoint atomic.Uint64
	Head       atomic.Uint64
	Published  atomic.Uint64
	Failures   atomic.Uint64
	// DeadLettered counts what the outbox skipped without publishing, each
	// logged at error level: events the transport refused for good (with
	// their event id) and entries of the journal's global log that are not
	// records at all (with their position; see persistence.ErrCorrupt).
	DeadLettered atomic.Uint64

	reset atomic.Pointer[CheckpointReset]
}

// CheckpointReset records the outbox finding its checkpoint ahead of the
// journal's log: the backend lost data (Redis restarted empty or from an
// old snapshot, a stream was purged).
type CheckpointReset struct {
	// Checkpoint is the position the outbox had published to.
	Checkpoint uint64
	// Stored is the checkpoint the backend held then (0 when it lost it).
	Stored uint64
	// Head is the log's head then.
	Head uint64
	At   time.Time
}

// LastReset is the outbox's latest checkpoint reset seen by this process,
// nil if none.
func (s *OutboxStats) LastReset() *CheckpointReset { return s.reset.Load() }

// Lag is the number of journaled events not yet published, as last seen.
func (s *OutboxStats) Lag() uint64 {
	h, c := s.Head.Load(), s.Checkpoint.Load()
	if h < c {
		return 0
	}
	return h - c
}

// NewOutboxKind returns the cluster kind of the outbox singleton.
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
	if cfg.Stats == nil {
		cfg.Stats = &OutboxStats{}
	}
	shared := &cfg
	return pcluster.NewKind(OutboxKind, actor.PropsFromProducer(func() actor.Actor { return &outboxActor{cfg: shared} }))
}

type outboxActor struct {
	cfg        *OutboxConfig
	checkpoint uint64
	loaded     bool
	// skipped is the position of the last unreadable entry this activation
	// dead-lettered (0: none), so that a retry after a failed checkpoint
	// save does not count it twice.
	skipped uint64
}

func (o *outboxActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *orderpb.DrainOutbox:
		ctx.Respond(o.drain())
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
		o.cfg.Logger.Warn("outbox "+what+" failed", slog.Uint64("checkpoint", o.checkpoint), slog.Any("error", err))
		st.Error = what + ": " + err.Error()
		st.Checkpoint = o.checkpoint
		return st
	}
	if err := o.checkCheckpoint(); err != nil {
		return fail("load checkpoint", err)
	}
	var (
		head     uint64
		headErr  error
		headRead bool
	)
	for {
		headRead = false // a head read before this page may be stale
		ctx, cancel := o.io()
		recs, err := o.cfg.Log.ReadAll(ctx, o.checkpoint, o.cfg.BatchSize)
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
		ctx, cancel = o.io()
		err = o.cfg.Publisher.Publish(ctx, batch)
		cancel()
		if err != nil && !errors.Is(err, transport.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			// The transport refused something in the batch for good (too
			// large, invalid): publish one by one and dead-letter what is
			// refused, so that one poison event cannot block the rest.
			err = o.publishEach(batch)
		}
		if err != nil {
			return fail("publish", err)
		}
		next := recs[len(recs)-1].Position
		ctx, cancel = o.io()
		err = o.cfg.Log.SaveCheckpoint(ctx, CheckpointName, next)
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
		o.cfg.Stats.Checkpoint.Store(next)
		if len(recs) < o.cfg.BatchSize {
			// A short page ends at the end of the log, or before an entry
			// that is not a record (the next read reports it): read on
			// unless the head says this is the end.
			headRead = true
			if head, headErr = o.head(); headErr != nil || head <= o.checkpoint {
				break
			}
		}
	}
	if !headRead {
		head, headErr = o.head()
	}
	if headErr == nil {
		o.cfg.Stats.Head.Store(head)
		st.Head = head
	}
	o.cfg.Stats.Checkpoint.Store(o.checkpoint)
	st.Checkpoint = o.checkpoint
	return st
}

// head asks the journal for the position of its last record.
func (o *outboxActor) head() (uint64, error) {
	ctx, cancel := o.io()
	defer cancel()
	return o.cfg.Log.Head(ctx)
}

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
		o.cfg.Logger.Error("outbox dead-lettered an entry of the journal's global log that is not a record; nothing is published for it",
			slog.Uint64("position", e.Position), slog.Uint64("resume_after", e.Next), slog.String("reason", e.Reason))
	}
	ctx, cancel := o.io()
	err := o.cfg.Log.SaveCheckpoint(ctx, CheckpointName, e.Next)
	cancel()
	if err != nil {
		return fmt.Errorf("save checkpoint %d: %w", e.Next, err)
	}
	o.checkpoint = e.Next
	o.cfg.Stats.Checkpoint.Store(e.Next)
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
func (o *outboxActor) checkCheckpoint() error {
	ctx, cancel := o.io()
	defer cancel()
	stored, err := o.cfg.Log.LoadCheckpoint(ctx, CheckpointName)
	if err != nil {
		return err
	}
	if !o.loaded {
		o.checkpoint, o.loaded = stored, true
	}
	if o.checkpoint == 0 {
		return nil
	}
	head, err := o.cfg.Log.Head(ctx)
	if err != nil {
		return fmt.Errorf("read the log head: %w", err)
	}
	if head >= o.checkpoint && stored != 0 {
		return nil
	}
	r := &CheckpointReset{Checkpoint: o.checkpoint, Stored: stored, Head: head, At: time.Now().UTC()}
	o.cfg.Stats.reset.Store(r)
	o.cfg.Logger.Error("outbox checkpoint is ahead of the journal: the persistence backend lost data (restarted empty?); publishing its log again from the start",
		slog.Uint64("checkpoint", r.Checkpoint), slog.Uint64("stored_checkpoint", stored), slog.Uint64("head", head))
	o.checkpoint = 0
	o.cfg.Stats.Checkpoint.Store(0)
	if err := o.cfg.Log.SaveCheckpoint(ctx, CheckpointName, 0); err != nil {
		// The drain goes on from 0 regardless; its first batch saves.
		o.cfg.Logger.Warn("outbox could not save its reset checkpoint", slog.Any("error", err))
	}
	return nil
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
		o.cfg.Logger.Error("outbox dead-lettered an event the transport refuses; it stays in the journal but is not published",
			slog.String("event_id", m.ID()), slog.String("type", m.Type), slog.Int("payload_bytes", len(m.Payload)), slog.Any("error", err))
	}
	return nil
}
