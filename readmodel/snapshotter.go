package readmodel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/persistence"
)

// SnapshotStore is where a Snapshotter keeps the read-model snapshots (a
// persistence.ReadModelSnapshots backend).
type SnapshotStore interface {
	SnapshotLoader
	SaveReadModelSnapshot(ctx context.Context, s persistence.ReadModelSnapshot) (persistence.ReadModelSnapshot, error)
	ReadModelSnapshotManifest(ctx context.Context, p int) (persistence.ReadModelSnapshot, bool, error)
}

// Defaults of SnapshotterConfig.
const (
	DefaultSnapshotEvery    = 20000
	DefaultSnapshotInterval = 15 * time.Second
	// DefaultSnapshotDuty is the share of one core a snapshot's replay
	// may take: after each batch it waits (1-duty)/duty times the batch's time.
	DefaultSnapshotDuty = 0.5
)

// SnapshotterConfig configures a Snapshotter. Journal and Store are
// required.
type SnapshotterConfig struct {
	Journal Journal
	Store   SnapshotStore
	// Every is how many records a partition's log must hold past its
	// snapshot for a new one (default DefaultSnapshotEvery).
	Every uint64
	// Interval is how often Run checks (default DefaultSnapshotInterval).
	Interval time.Duration
	// Duty bounds the CPU of a snapshot's replay (0 < Duty <= 1; default
	// DefaultSnapshotDuty).
	Duty float64
	// Owns says whether this node writes partition p's snapshots now (the
	// member that hosts the partition's outbox); nil: every partition.
	Owns    func(p int) bool
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

func (c *SnapshotterConfig) setDefaults() {
	if c.Every == 0 {
		c.Every = DefaultSnapshotEvery
	}
	if c.Interval <= 0 {
		c.Interval = DefaultSnapshotInterval
	}
	if c.Duty <= 0 || c.Duty > 1 {
		c.Duty = DefaultSnapshotDuty
	}
	if c.Owns == nil {
		c.Owns = func(int) bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Snapshotter writes the read-model snapshots of the partitions its node
// owns, one partition at a time: on each check (every Interval while Run
// runs) a partition whose log holds Every records or more past its stored
// snapshot gets a new one, built by BuildSnapshot from that snapshot (or
// from the start when there is none or it cannot be used), so a snapshot
// depends on the journal only, never on the live read model. Two
// snapshotters writing one partition at once (a failover, views that
// disagree) are safe: the store keeps the last manifest written, each
// complete in itself.
//
// Its owner runs Run on a goroutine of its own and ends it by cancelling
// Run's context. Check and Write may be called while Run runs.
type Snapshotter struct {
	cfg SnapshotterConfig
	mu  sync.Mutex // one snapshot at a time
}

// NewSnapshotter returns a Snapshotter; call Run to start it.
func NewSnapshotter(cfg SnapshotterConfig) *Snapshotter {
	cfg.setDefaults()
	return &Snapshotter{cfg: cfg}
}

// Run checks every Interval until ctx ends, and returns nil then.
func (s *Snapshotter) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Check(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("read-model snapshot check failed", slog.Any("error", err))
		}
	}
}

// Check writes a snapshot of every owned partition whose log holds Every
// records or more past its snapshot, and returns how many it wrote. It
// goes on after a partition fails and returns the first error.
func (s *Snapshotter) Check(ctx context.Context) (written int, err error) {
	for p := range s.cfg.Journal.Partitions() {
		if ctx.Err() != nil {
			return written, nil
		}
		if !s.cfg.Owns(p) {
			continue
		}
		due, derr := s.due(ctx, p)
		if derr == nil && due {
			_, derr = s.Write(ctx, p)
			if derr == nil {
				written++
			}
		}
		if derr != nil && err == nil {
			err = derr
		}
	}
	return written, err
}

// due reports whether partition p's log holds Every records past its
// stored snapshot (one of another journal counts as none).
func (s *Snapshotter) due(ctx context.Context, p int) (bool, error) {
	m, ok, err := s.cfg.Store.ReadModelSnapshotManifest(ctx, p)
	var after uint64
	switch {
	case errors.Is(err, persistence.ErrCorrupt):
		// A manifest it cannot read: the next snapshot replaces it.
	case err != nil:
		return false, err
	case ok && m.Journal == s.cfg.Store.JournalIdentity() && m.Partitions == s.cfg.Journal.Partitions():
		after = m.Position
	}
	log := s.cfg.Journal.Log(p)
	if head, err := log.Head(ctx); err != nil {
		return false, err
	} else if after > head {
		after = 0
	}
	behind, err := log.Behind(ctx, after)
	if err != nil {
		return false, err
	}
	return behind >= s.cfg.Every, nil
}

// Write writes a snapshot of partition p now, up to its log's head, and
// returns it as stored (without its data).
func (s *Snapshotter) Write(ctx context.Context, p int) (persistence.ReadModelSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	began := time.Now()
	stored, size, err := s.write(ctx, p)
	s.cfg.Metrics.ObserveReadModelSnapshot(size, time.Since(began), err)
	if err != nil {
		return stored, fmt.Errorf("read-model snapshot of partition %d: %w", p, err)
	}
	s.cfg.Logger.Info("read-model snapshot written", slog.Int("partition", p), slog.Uint64("position", stored.Position),
		slog.Int("bytes", size), slog.Int("chunks", stored.Chunks), slog.Duration("duration", time.Since(began)))
	return stored, nil
}

func (s *Snapshotter) write(ctx context.Context, p int) (persistence.ReadModelSnapshot, int, error) {
	log := s.cfg.Journal.Log(p)
	var prev *PartitionSnapshot
	if l := loadUsable(ctx, s.cfg.Journal, s.cfg.Store, p); l.ps != nil {
		prev = l.ps
	} else if l.why != "" {
		s.cfg.Logger.Warn("read-model snapshot not used; the next one is built from the partition's whole log", slog.Int("partition", p), slog.String("reason", l.why))
	}
	head, err := log.Head(ctx)
	if err != nil {
		return persistence.ReadModelSnapshot{}, 0, err
	}
	wait := (1 - s.cfg.Duty) / s.cfg.Duty
	pace := func(busy time.Duration) {
		if d := time.Duration(float64(busy) * wait); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	ps, err := BuildSnapshot(ctx, log, prev, head, pace)
	if err != nil {
		return persistence.ReadModelSnapshot{}, 0, err
	}
	if prev != nil && ps.Position == prev.Position {
		return persistence.ReadModelSnapshot{Partition: p, Position: ps.Position}, 0, nil // nothing new
	}
	data := EncodePartitionSnapshot(ps)
	stored, err := s.cfg.Store.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: p, Position: ps.Position, Data: data})
	stored.Data = nil
	return stored, len(data), err
}
