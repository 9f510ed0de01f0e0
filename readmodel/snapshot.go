package readmodel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/internal/idmap"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
)

// SnapshotLoader is what Restore reads read-model snapshots from (a
// persistence.ReadModelSnapshots backend).
type SnapshotLoader interface {
	LoadReadModelSnapshot(ctx context.Context, p int) (persistence.ReadModelSnapshot, bool, error)
	JournalIdentity() string
}

// export returns the whole content of a read model that holds one
// partition's orders only (a scratch model of BuildSnapshot), as the
// snapshot at position pos.
func (m *ReadModel) export(partition int, pos uint64) *PartitionSnapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ps := &PartitionSnapshot{Partition: partition, Position: pos, Summaries: make([]Summary, len(m.sorted)),
		Quarantines: slices.Clone(m.quarantines), Skipped: make([]uint64, 0, len(m.skipped))}
	for i, s := range m.sorted {
		ps.Summaries[i] = *s
	}
	for at := range m.skipped {
		ps.Skipped = append(ps.Skipped, at.position)
	}
	slices.Sort(ps.Skipped)
	return ps
}

// loadSnapshot merges a partition's snapshot into the read model in bulk,
// as if Rebuild had read the partition's log up to ps.Position: an order
// it holds at a lower version (or not at all) takes the snapshot's
// summary, one it holds at the same or a higher version (delivered by the
// transport meanwhile) is kept; the snapshot's quarantines are applied,
// and its skipped log entries recorded, in the order they were found.
func (m *ReadModel) loadSnapshot(ps *PartitionSnapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, q := range ps.Quarantines {
		if q.OrderID == "" {
			m.skipAtLocked(q)
			continue
		}
		if _, ok := m.quarantined[q.OrderID]; ok {
			continue
		}
		m.quarantined[q.OrderID] = len(m.quarantines)
		m.quarantines = append(m.quarantines, q)
		m.removeLocked(q.OrderID)
	}
	for _, pos := range ps.Skipped {
		// Positions the snapshot did not list: counted, as Rebuild would.
		m.skipAtLocked(Quarantine{Partition: ps.Partition, Position: pos})
	}
	add := make([]*Summary, 0, len(ps.Summaries))
	anyQuarantined := len(m.quarantined) > 0
	for i := range ps.Summaries {
		s := &ps.Summaries[i]
		if _, ok := m.quarantined[s.OrderID]; anyQuarantined && ok {
			continue
		}
		if have := m.byIDGet(s.OrderID); have != nil {
			if have.Version >= s.Version {
				continue
			}
			m.removeLocked(s.OrderID)
		}
		m.byID.Set(s.OrderID, s)
		m.byStatus[s.Status]++
		if s.Status != order.StatusCancelled {
			m.revenue += s.Total
		}
		m.applied += s.Version
		add = append(add, s)
	}
	if !slices.IsSortedFunc(add, compare) {
		slices.SortFunc(add, compare)
	}
	m.sorted = mergeSorted(m.sorted, add)
}

// reserve makes room for n orders in the read model's index at once (a
// map grown one insertion at a time rehashes everything it holds at every
// doubling: half of the time of merging 5M orders).
func (m *ReadModel) reserve(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= 2*m.byID.Len() {
		return
	}
	byID := idmap.WithCapacity(isSummary, n)
	for s := range m.byID.All() {
		byID.Set(s.OrderID, s)
	}
	m.byID = byID
}

// skipAtLocked records a skipped log entry of a snapshot (q: its
// partition, position and, when the snapshot listed it, reason), as
// skipLocked does for one Rebuild finds.
func (m *ReadModel) skipAtLocked(q Quarantine) {
	at := logPosition{q.Partition, q.Position}
	if _, ok := m.skipped[at]; ok {
		return
	}
	m.skipped[at] = struct{}{}
	if len(m.skipped) > maxSkippedListed || q.Reason == "" {
		m.skippedOver++
		return
	}
	m.quarantines = append(m.quarantines, q)
}

// mergeSorted merges run b into run a (both sorted by compare, no order
// in both) and returns the merged run: in a's array when it has room (it
// grows by doubling), from the back, so that a merge allocates nothing
// most of the time. b must not share a's array.
func mergeSorted(a, b []*Summary) []*Summary {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	if compare(a[len(a)-1], b[0]) <= 0 {
		return append(a, b...)
	}
	i, j := len(a)-1, len(b)-1
	a = slices.Grow(a, len(b))[:len(a)+len(b)]
	for k := len(a) - 1; j >= 0; k-- {
		if i >= 0 && compare(a[i], b[j]) > 0 {
			a[k] = a[i]
			i--
		} else {
			a[k] = b[j]
			j--
		}
	}
	return a
}

// BuildSnapshot makes partition log's snapshot at position until (its
// head, say; 0: wherever the log ends): it starts from prev (nil: an empty
// read model; else the partition's snapshot at an earlier position),
// replays the log's records after prev's position and up to until in a
// scratch read model with Rebuild's own rules, and exports it. pace, if
// set, is called after each batch with the time the batch took (to bound
// the CPU it takes beside the live work). When the log cannot be read on
// past a record (an *IncompleteError) there is no snapshot to make: it
// returns the error.
func BuildSnapshot(ctx context.Context, log persistence.Log, prev *PartitionSnapshot, until uint64, pace func(busy time.Duration)) (*PartitionSnapshot, error) {
	scratch := New(nil)
	var from uint64
	if prev != nil {
		if prev.Partition != log.Partition() {
			return nil, fmt.Errorf("build read-model snapshot of partition %d from a snapshot of partition %d: %w", log.Partition(), prev.Partition, persistence.ErrInvalidArgument)
		}
		scratch.loadSnapshot(prev)
		from = prev.Position
	}
	pos, _, err := scratch.rebuildPartition(ctx, log, from, until, pace)
	if err != nil {
		return nil, err
	}
	return scratch.export(log.Partition(), pos), nil
}

// RestoreReport says how Restore built the read model.
type RestoreReport struct {
	// Partitions is the journal's partition count; FromSnapshot how many of
	// them started from a snapshot.
	Partitions, FromSnapshot int
	// Loaded is the position of each partition's snapshot (0: none used);
	// Positions where each partition's replay ended.
	Loaded, Positions []uint64
	// SnapshotOrders is how many summaries the snapshots held; Tail how
	// many log records were replayed after them (or from the start).
	SnapshotOrders int
	Tail           uint64
	// Fallbacks says, for each partition whose snapshot could not be used
	// (not for one that has none), why.
	Fallbacks map[int]string
	// SavedAt is when each used snapshot was written (zero: none).
	SavedAt []time.Time
	// Duration is the whole restore.
	Duration time.Duration
}

// restoreAhead is how many partitions' snapshots Restore loads and decodes
// ahead of the one it merges (each is about 1/Partitions of the orders).
const restoreAhead = 2

// loaded is one partition's snapshot as Restore's loaders hand it over.
type loaded struct {
	ps      *PartitionSnapshot
	savedAt time.Time
	why     string // why there is none to use ("" when there is none at all)
}

// Restore builds the read model from the journal like Rebuild, starting
// each partition from its snapshot in store when there is a usable one:
// the snapshot is merged in bulk, then the log is replayed after its
// position. A snapshot that cannot be used (cannot be loaded, damaged, of
// an unknown format, of another journal or partition count, or past the
// log's head: the journal was wiped and started again) is logged as a
// warning and its partition replayed from the start: Restore never fails
// because of a snapshot, and never uses one that Rebuild would not agree
// with. Errors are Rebuild's.
func (m *ReadModel) Restore(ctx context.Context, j Journal, store SnapshotLoader, logger *slog.Logger) (RestoreReport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	n := j.Partitions()
	rep := RestoreReport{Partitions: n, Loaded: make([]uint64, n), Positions: make([]uint64, n), SavedAt: make([]time.Time, n), Fallbacks: map[int]string{}}
	results := make([]chan loaded, n)
	for p := range results {
		results[p] = make(chan loaded, 1)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if store != nil {
		// Loaders fetch and decode the next partitions while this one merges
		// and replays; the semaphore bounds how many wait decoded.
		sem := make(chan struct{}, restoreAhead)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			defer inner.Wait()
			for p := range n {
				select {
				case sem <- struct{}{}:
				case <-lctx.Done():
					return
				}
				inner.Add(1)
				go func() {
					defer inner.Done()
					results[p] <- loadUsable(lctx, j, store, p)
				}()
			}
		}()
		defer func() {
			// Free loaders blocked on the semaphore once Restore returns.
			cancel()
			for {
				select {
				case <-sem:
				default:
					return
				}
			}
		}()
		for p := range n {
			var l loaded
			select {
			case l = <-results[p]:
			case <-ctx.Done():
				return rep, fmt.Errorf("restore read model: %w", persistence.Unavailable("load snapshots", ctx.Err()))
			}
			<-sem
			if l.why != "" {
				rep.Fallbacks[p] = l.why
				logger.Warn("read-model snapshot not used; replaying the partition's whole log", slog.Int("partition", p), slog.String("reason", l.why))
			}
			if l.ps != nil {
				if rep.FromSnapshot == 0 {
					// The partitions are about the same size.
					m.reserve(len(l.ps.Summaries) * n * 9 / 8)
				}
				m.loadSnapshot(l.ps)
				rep.FromSnapshot++
				rep.Loaded[p] = l.ps.Position
				rep.SavedAt[p] = l.savedAt
				rep.SnapshotOrders += len(l.ps.Summaries)
			}
			if err := m.restoreTail(ctx, j, p, &rep); err != nil {
				return rep, err
			}
		}
	} else {
		for p := range n {
			if err := m.restoreTail(ctx, j, p, &rep); err != nil {
				return rep, err
			}
		}
	}
	rep.Duration = time.Since(began)
	if inc := m.Incomplete(); inc != nil {
		return rep, inc
	}
	return rep, nil
}

// restoreTail replays partition p's log after its loaded position.
func (m *ReadModel) restoreTail(ctx context.Context, j Journal, p int, rep *RestoreReport) error {
	pos, read, err := m.rebuildPartition(ctx, j.Log(p), rep.Loaded[p], 0, nil)
	rep.Positions[p] = pos
	rep.Tail += read
	var inc *IncompleteError
	if err != nil && !errors.As(err, &inc) {
		return err
	}
	return nil
}

// loadUsable loads and checks partition p's snapshot: a nil ps with why
// set when there is one that cannot be used.
func loadUsable(ctx context.Context, j Journal, store SnapshotLoader, p int) loaded {
	s, ok, err := store.LoadReadModelSnapshot(ctx, p)
	if err != nil {
		return loaded{why: "cannot load it: " + err.Error()}
	}
	if !ok {
		return loaded{}
	}
	ps, why := checkSnapshot(ctx, j, store.JournalIdentity(), p, s)
	return loaded{ps: ps, savedAt: s.SavedAt, why: why}
}

// checkSnapshot decodes stored snapshot s of partition p and checks it
// belongs to journal j as it is now; why says what is wrong otherwise.
func checkSnapshot(ctx context.Context, j Journal, journalID string, p int, s persistence.ReadModelSnapshot) (*PartitionSnapshot, string) {
	switch {
	case s.Partitions != j.Partitions():
		return nil, fmt.Sprintf("made for a journal of %d partitions, this one has %d", s.Partitions, j.Partitions())
	case s.Journal != journalID:
		return nil, fmt.Sprintf("made from journal %q, the backend holds journal %q (wiped and started again?)", s.Journal, journalID)
	}
	head, err := j.Log(p).Head(ctx)
	if err != nil {
		return nil, "cannot read the log's head: " + err.Error()
	}
	if s.Position > head {
		return nil, fmt.Sprintf("made at position %d, past the log's head %d (the journal was wiped and started again?)", s.Position, head)
	}
	ps, err := DecodePartitionSnapshot(s.Data)
	if err != nil {
		return nil, err.Error()
	}
	if ps.Partition != p || ps.Position != s.Position {
		return nil, fmt.Sprintf("holds partition %d at position %d, the manifest says partition %d at position %d", ps.Partition, ps.Position, p, s.Position)
	}
	return ps, ""
}
