// Package readmodel is the read side of OrderSystem: a read model of every
// order (its summary) and the statistics, built from order events only. It
// serves GET /orders and GET /stats without asking any order actor.
//
// Events may arrive more than once and, across orders, in any order: the
// read model applies an order's event only when it is the next version of
// that order and a transition its state allows, drops ones it has seen, and
// repairs the rest (gaps, events that contradict what it knows, events it
// cannot decode) by reading the order's stream from the journal, which is
// the truth. Consumer is its transport handler: it dead-letters what the
// journal cannot repair instead of asking for redelivery forever.
//
// A journal record that cannot be read (not an event, another order's or
// version's envelope, a version that does not follow) quarantines its
// order: the read model drops the whole order from its lists and figures
// (the write side refuses the order too, so showing its last readable state
// would show something the owner no longer stands behind), records the
// order, version, position and error, and goes on with the other orders.
// A quarantine is lifted by restarting the node once the journal is repaired.
//
// An entry of the global log that is not a record at all (it breaks the
// backend's own layout: persistence.ErrCorrupt) names no order that can be
// trusted: Rebuild skips it, reports it among the quarantines by its
// position (with no order id), and reads on after it.
package readmodel

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/idmap"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Summary is what the read model keeps of one order.
type Summary struct {
	OrderID    string
	CustomerID string
	Status     order.Status
	Total      order.Cents
	Items      int
	Version    uint64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Stats are the figures of GET /stats.
type Stats struct {
	TotalOrders  int
	ByStatus     map[order.Status]int
	TotalRevenue order.Cents
}

// Quarantine is an order the read model does not show because a record of
// its journal stream cannot be read, or, with an empty OrderID, an entry of
// the journal's global log that is not a record at all (see
// persistence.ErrCorrupt), which Rebuild skipped.
type Quarantine struct {
	// OrderID is the quarantined order; empty for a skipped log entry.
	OrderID string
	// Version is the version of the first record that cannot be read.
	Version uint64
	// Partition and Position are that record's place in its partition's
	// log (Position 0 when unknown: found through a stream read); for a
	// skipped log entry, the entry's.
	Partition int
	Position  uint64
	// Reason says what is wrong with the record.
	Reason string
	At     time.Time
}

// StreamLoader reads an order's stream (the journal), to repair gaps.
type StreamLoader interface {
	Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error)
}

// ReadModel is safe for concurrent use.
type ReadModel struct {
	loader StreamLoader
	now    func() time.Time

	mu       sync.RWMutex
	byID     *idmap.Map[*Summary] // by OrderID
	sorted   []*Summary           // by (CreatedAt, OrderID) ascending
	byStatus [order.StatusCancelled + 1]int
	revenue  order.Cents
	applied  uint64 // events applied, for lag figures
	repaired uint64 // events the journal supplied because the delivered copy could not be applied
	// quarantined holds every quarantined order; quarantines lists them in
	// the order they were found.
	quarantined map[string]int // index in quarantines
	quarantines []Quarantine
	// skipped holds the positions of the log entries Rebuild skipped;
	// quarantines lists the first maxSkippedListed of them, skippedOver
	// counts the others.
	skipped     map[logPosition]struct{}
	skippedOver int
	incomplete  *IncompleteError // why the last Rebuild stopped early, if it did

	// While rebuilding > 0, new orders go to pending (in byID, not yet in
	// sorted) and are merged into sorted in runs: a partition's orders
	// fall anywhere between those of the partitions read before, and one
	// insertion each made a rebuild quadratic (85 s for 1M orders).
	rebuilding int
	pending    []*Summary
}

// maxSkippedListed bounds the skipped log entries kept in the quarantine
// list (a log full of them must not fill memory); the rest are counted.
const maxSkippedListed = 1000

// New returns an empty read model that repairs gaps through loader (nil:
// gaps are reported as errors).
func New(loader StreamLoader) *ReadModel {
	return &ReadModel{loader: loader, now: time.Now, byID: idmap.New(isSummary), quarantined: make(map[string]int),
		skipped: make(map[logPosition]struct{})}
}

// Errors of Apply. An error that matches none of them and is not a
// persistence error is a failure to read the journal that the journal
// itself reported (it answered, but not with records).
var (
	// ErrGap means an event arrived before an earlier event of the same
	// order and there is no journal to repair the gap from.
	ErrGap = errors.New("projection: missing earlier events of the order")
	// ErrNotInJournal means the event cannot be applied as delivered (a
	// gap, a transition the order's state does not allow, no payload) and
	// the journal, which answered, does not hold that version of the order
	// either. Unless the journal is behind the transport, it is poison.
	ErrNotInJournal = errors.New("the event cannot be applied and the journal does not hold it")
	// ErrQuarantined means the order is quarantined; errors that match it
	// are *QuarantinedError values.
	ErrQuarantined = errors.New("order quarantined")
)

// QuarantinedError is the error of Apply for an order in quarantine.
type QuarantinedError struct{ Quarantine Quarantine }

func (e *QuarantinedError) Error() string {
	q := e.Quarantine
	return fmt.Sprintf("order %s is quarantined: its journal record at version %d cannot be read: %s", q.OrderID, q.Version, q.Reason)
}

// Is makes errors.Is(err, ErrQuarantined) true.
func (e *QuarantinedError) Is(target error) bool { return target == ErrQuarantined }

// Apply folds a delivered event in. Duplicates and old versions are
// ignored. The next version of an order is applied when it decodes and is a
// transition the order's state allows; anything else (a gap, a
// contradiction, no payload) is repaired from the journal: the order's
// records after the known version are applied, and Apply succeeds if the
// order then reached the event's version. Otherwise it fails with
// ErrNotInJournal, with the loader's error (a persistence error when the
// journal cannot be reached: the caller should redeliver later), or with a
// *QuarantinedError when the order is (or just got) quarantined.
func (m *ReadModel) Apply(ctx context.Context, ev *orderpb.Event) error {
	e, err := codec.EventFromProto(ev)
	return m.apply(ctx, ev.GetOrderId(), ev.GetVersion(), e, itemCount(e), err)
}

// ApplyHead is Apply for an event decoded with codec.DecodeHead, which is
// all the read model keeps of it.
func (m *ReadModel) ApplyHead(ctx context.Context, h codec.Head) error {
	return m.apply(ctx, h.OrderID, h.Version, h.Event, h.Items, h.Err())
}

// itemCount is the number of items of an order.Created (0 for any other
// event).
func itemCount(e order.Event) int {
	c, _ := e.(order.Created)
	return len(c.Items)
}

// apply is Apply of event e, version v of order id, whose created order has
// items items (err: why the event could not be converted).
func (m *ReadModel) apply(ctx context.Context, id string, v uint64, e order.Event, items int, err error) error {
	m.mu.Lock()
	if i, ok := m.quarantined[id]; ok {
		q := m.quarantines[i]
		m.mu.Unlock()
		return &QuarantinedError{Quarantine: q}
	}
	known := m.versionLocked(id)
	if v <= known {
		m.mu.Unlock()
		return nil
	}
	why := err
	if v == known+1 && err == nil {
		if why = m.allowedLocked(id, e); why == nil {
			m.applyLocked(id, e, items)
			m.mu.Unlock()
			return nil
		}
	}
	m.mu.Unlock()
	if why == nil {
		why = fmt.Errorf("version %d arrived while the read model has version %d", v, known)
	}
	if !order.ValidID(id) {
		return fmt.Errorf("%w: %q is not an order id", ErrNotInJournal, truncate(id, 80))
	}
	if m.loader == nil {
		return fmt.Errorf("%w: %s: %v", ErrGap, order.EventID(id, v), why)
	}
	if err := m.repair(ctx, id); err != nil {
		return err
	}
	if reached := m.Version(id); reached < v {
		return fmt.Errorf("%w: %s: %v; the journal's stream ends at version %d", ErrNotInJournal, order.EventID(id, v), why, reached)
	}
	m.mu.Lock()
	m.repaired++
	m.mu.Unlock()
	return nil
}

// repair applies the journal's records of order id after the version the
// read model has. A record that cannot be read quarantines the order.
func (m *ReadModel) repair(ctx context.Context, id string) error {
	from := m.Version(id) + 1
	recs, err := m.loader.Load(ctx, id, from)
	if err != nil {
		return fmt.Errorf("repair %s from the journal (from version %d): %w", id, from, err)
	}
	prev := from - 1
	for _, r := range recs {
		if err := m.applyRecord(r, prev); err != nil {
			return err
		}
		prev = r.Version
	}
	return nil
}

// applyRecord applies one journal record that should follow version prev
// of its stream (it is skipped if the read model is past it already). A
// record that cannot be read quarantines its order and returns a
// *QuarantinedError.
func (m *ReadModel) applyRecord(r persistence.Record, prev uint64) error {
	_, e, err := codec.DecodeEvent(r)
	if err == nil {
		err = codec.CheckFollows(r, prev, e)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.quarantined[r.StreamID]; ok {
		return &QuarantinedError{Quarantine: m.quarantines[i]}
	}
	if err != nil {
		return &QuarantinedError{Quarantine: m.quarantineLocked(err)}
	}
	if r.Version == m.versionLocked(r.StreamID)+1 {
		m.applyLocked(r.StreamID, e, itemCount(e))
	}
	return nil
}

// Version returns the version the read model has of order id (0: none).
func (m *ReadModel) Version(id string) uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.versionLocked(id)
}

func (m *ReadModel) versionLocked(id string) uint64 {
	if s := m.byIDGet(id); s != nil {
		return s.Version
	}
	return 0
}

// allowedLocked reports why event e cannot be the next event of order id as
// the read model knows it (nil: it can). A journaled history always passes:
// the order actor decided each event on the state before it.
func (m *ReadModel) allowedLocked(id string, e order.Event) error {
	from := order.StatusNone
	if s := m.byIDGet(id); s != nil {
		from = s.Status
	}
	ok := false
	switch e.(type) {
	case order.Created:
		ok = from == order.StatusNone
	case order.Paid:
		ok = from == order.StatusPending
	case order.Shipped:
		ok = from == order.StatusPaid
	case order.Delivered:
		ok = from == order.StatusShipped
	case order.Cancelled:
		ok = from == order.StatusPending || from == order.StatusPaid
	}
	if !ok {
		if from == order.StatusNone {
			return fmt.Errorf("%s for an order the read model does not know", e.EventType())
		}
		return fmt.Errorf("%s on an order that is %s", e.EventType(), from)
	}
	return nil
}

// applyLocked folds the next event of order id in. For a new order, e is
// an order.Created (callers check it: allowedLocked or codec.CheckFollows)
// with items items.
func (m *ReadModel) applyLocked(id string, e order.Event, items int) {
	s := m.byIDGet(id)
	if s == nil {
		c, _ := e.(order.Created)
		s = &Summary{OrderID: id, CustomerID: c.CustomerID, Total: c.Total, Items: items, CreatedAt: c.At, Status: order.StatusNone}
		m.byID.Set(s.OrderID, s)
		if m.rebuilding > 0 {
			m.pending = append(m.pending, s)
		} else {
			m.insertSorted(s)
		}
	}
	old := s.Status
	st := order.Evolve(order.State{Status: s.Status, Version: s.Version, Total: s.Total}, e)
	s.Status, s.Version = st.Status, st.Version
	s.UpdatedAt = order.EventTime(e)
	if old != order.StatusNone {
		m.byStatus[old]--
		if old != order.StatusCancelled {
			m.revenue -= s.Total
		}
	}
	m.byStatus[s.Status]++
	if s.Status != order.StatusCancelled {
		m.revenue += s.Total
	}
	m.applied++
}

// Quarantine puts an order in quarantine because a record of its journal
// stream cannot be read (err is best a *codec.CorruptError, which names the
// order, version and position; orderID is used otherwise): the order leaves
// the lists and figures and its events are refused from now on. The first
// quarantine of an order is kept; it returns it.
func (m *ReadModel) Quarantine(orderID string, err error) Quarantine {
	var ce *codec.CorruptError
	if !errors.As(err, &ce) {
		ce = &codec.CorruptError{OrderID: orderID, Err: err}
	} else if ce.OrderID == "" {
		c := *ce
		c.OrderID = orderID
		ce = &c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.quarantined[ce.OrderID]; ok {
		return m.quarantines[i]
	}
	return m.quarantineLocked(ce)
}

func (m *ReadModel) quarantineLocked(err error) Quarantine {
	var ce *codec.CorruptError
	if !errors.As(err, &ce) {
		ce = &codec.CorruptError{Err: err}
	}
	reason := "unreadable"
	if ce.Err != nil {
		reason = truncate(ce.Err.Error(), 300)
	}
	q := Quarantine{OrderID: ce.OrderID, Version: ce.Version, Partition: ce.Partition, Position: ce.Position, Reason: reason, At: m.now().UTC()}
	if i, ok := m.quarantined[q.OrderID]; ok {
		return m.quarantines[i]
	}
	m.quarantined[q.OrderID] = len(m.quarantines)
	m.quarantines = append(m.quarantines, q)
	m.removeLocked(q.OrderID)
	return q
}

// removeLocked takes an order out of the lists and figures.
func (m *ReadModel) removeLocked(id string) {
	s := m.byIDGet(id)
	if s == nil {
		return
	}
	if s.Status != order.StatusNone {
		m.byStatus[s.Status]--
		if s.Status != order.StatusCancelled {
			m.revenue -= s.Total
		}
	}
	m.byID.Delete(id)
	if i, found := slices.BinarySearchFunc(m.sorted, s, compare); found && m.sorted[i] == s {
		m.sorted = slices.Delete(m.sorted, i, i+1)
	} else if i := slices.Index(m.pending, s); i >= 0 {
		m.pending = slices.Delete(m.pending, i, i+1)
	}
}

// Quarantined returns the number of orders in quarantine plus the log
// entries Rebuild skipped, and at most max of them, the most recent first
// (max <= 0: none).
func (m *ReadModel) Quarantined(max int) (total int, recent []Quarantine) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := len(m.quarantines)
	for i := n - 1; i >= 0 && len(recent) < max; i-- {
		recent = append(recent, m.quarantines[i])
	}
	return n + m.skippedOver, recent
}

// logPosition is a place in one partition's log.
type logPosition struct {
	partition int
	position  uint64
}

// skipLocked records an entry of a partition's log that is not a record;
// each position once.
func (m *ReadModel) skipLocked(e *persistence.CorruptRecordError) {
	at := logPosition{e.Partition, e.Position}
	if _, ok := m.skipped[at]; ok {
		return
	}
	m.skipped[at] = struct{}{}
	if len(m.skipped) > maxSkippedListed {
		m.skippedOver++
		return
	}
	reason := "the journal's log holds an entry that is not a record: " + truncate(e.Reason, 300)
	m.quarantines = append(m.quarantines, Quarantine{Partition: e.Partition, Position: e.Position, Reason: reason, At: m.now().UTC()})
}

// IsQuarantined reports whether order id is in quarantine.
func (m *ReadModel) IsQuarantined(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.quarantined[id]
	return ok
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// insertSorted puts s in its place in m.sorted. A new order is usually the
// newest, so the end is tried first: a search of a large list misses the
// cache on nearly every step.
func (m *ReadModel) insertSorted(s *Summary) {
	if n := len(m.sorted); n == 0 || compare(m.sorted[n-1], s) < 0 {
		m.sorted = append(m.sorted, s)
		return
	}
	// Orders arrive roughly in creation order (each partition's log in
	// order, the partitions interleaved), so one that does not sort last
	// mostly sorts among the last few: search those first, whose
	// summaries are still in the cache.
	lo := 0
	if n := len(m.sorted); n > recentOrders && compare(m.sorted[n-recentOrders], s) < 0 {
		lo = n - recentOrders
	}
	i, _ := slices.BinarySearchFunc(m.sorted[lo:], s, compare)
	m.sorted = slices.Insert(m.sorted, lo+i, s)
}

// recentOrders is how many of the newest orders insertSorted searches first.
const recentOrders = 256

func compare(a, b *Summary) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.OrderID, b.OrderID)
}

func isSummary(s *Summary, id string) bool { return s.OrderID == id }

// byIDGet is the summary of order id, or nil.
func (m *ReadModel) byIDGet(id string) *Summary {
	s, _ := m.byID.Get(id)
	return s
}

// Get returns the summary of one order.
func (m *ReadModel) Get(id string) (Summary, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.byIDGet(id)
	if s == nil {
		return Summary{}, false
	}
	return *s, true
}

// ErrBadCursor means the cursor passed to List was not one List returned.
var ErrBadCursor = errors.New("invalid cursor")

// List returns up to limit orders, newest first, optionally only those in
// status (StatusNone: all), starting after cursor ("" for the first page).
// next is the cursor of the following page, "" when there is none.
func (m *ReadModel) List(status order.Status, limit int, cursor string) (page []Summary, next string, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	end := len(m.sorted) // exclusive upper bound of the scan
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		end, _ = slices.BinarySearchFunc(m.sorted, &Summary{CreatedAt: at, OrderID: id}, compare)
	}
	page = make([]Summary, 0, min(limit, 64))
	for i := end - 1; i >= 0; i-- {
		s := m.sorted[i]
		if status != order.StatusNone && s.Status != status {
			continue
		}
		if len(page) == limit {
			last := page[len(page)-1]
			return page, encodeCursor(last.CreatedAt, last.OrderID), nil
		}
		page = append(page, *s)
	}
	return page, "", nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixNano(), 10) + ":" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ns, id, ok := strings.Cut(string(raw), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrBadCursor
	}
	return time.Unix(0, n).UTC(), id, nil
}

// Stats returns the current statistics. Revenue counts every order that is
// not cancelled.
func (m *ReadModel) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := Stats{TotalOrders: m.byID.Len(), ByStatus: make(map[order.Status]int, 5), TotalRevenue: m.revenue}
	for _, s := range order.Statuses() {
		st.ByStatus[s] = m.byStatus[s]
	}
	return st
}

// Applied is the number of events applied so far.
func (m *ReadModel) Applied() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.applied
}

// Repaired is the number of delivered events that could not be applied as
// delivered and were supplied by the journal instead (gaps, contradictions).
func (m *ReadModel) Repaired() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.repaired
}

// Journal is what Rebuild reads: the logs of the journal's partitions.
type Journal interface {
	Partitions() int
	Log(p int) persistence.Log
}

// rebuildBatch is how many records Rebuild reads at once.
const rebuildBatch = 1000

// IncompleteError is the error of Rebuild when a partition's log answers a
// read with an error that is neither an outage nor a
// *persistence.CorruptRecordError it can skip (a backend that fails the
// whole read on an entry it cannot lay out, without saying where to read on).
// The read model holds every record of the partition before it (and the
// other partitions' records); orders journaled after it are missing until
// they change (a delivered event then repairs the order from its stream).
type IncompleteError struct {
	// Partition is the partition whose log could not be read on; After is
	// the position of its last record read.
	Partition int
	After     uint64
	Err       error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("rebuild read model: the log of journal partition %d cannot be read after position %d: %v", e.Partition, e.After, e.Err)
}

// Unwrap returns the journal's error.
func (e *IncompleteError) Unwrap() error { return e.Err }

// Rebuild applies every event of the journal's partitions' logs, each
// partition in order (the records of an order are all in one partition, in
// version order); a restarted node calls it before it reports ready. It
// returns the position it read up to in each partition. A record that
// cannot be read quarantines its order (see Quarantined) and Rebuild goes
// on; so does an entry that is not a record at all (a
// *persistence.CorruptRecordError), which is listed among the quarantines
// by its partition and position and skipped. When the journal cannot be
// reached it fails with the journal's error (a persistence error that wraps
// ErrUnavailable or ErrClosed); when a partition's log answers a read with
// another error, Rebuild reads one record at a time up to the failing one,
// goes on with the other partitions and returns an *IncompleteError for the
// first such partition (also kept: see Incomplete).
func (m *ReadModel) Rebuild(ctx context.Context, j Journal) ([]uint64, error) {
	positions := make([]uint64, j.Partitions())
	var first *IncompleteError
	for p := range positions {
		pos, _, err := m.rebuildPartition(ctx, j.Log(p), 0, 0, nil)
		positions[p] = pos
		var inc *IncompleteError
		switch {
		case errors.As(err, &inc):
			if first == nil {
				first = inc
			}
		case err != nil:
			return positions, err
		}
	}
	if first != nil {
		return positions, first
	}
	return positions, nil
}

// rebuildPartition applies the events of one partition's log after
// position after: all of them when until is 0, else those at or before
// until (an entry it skips may end past it). It returns the position
// of the last record read and how many records it read. pace, if set, is
// called after each batch with the time the batch took.
func (m *ReadModel) rebuildPartition(ctx context.Context, log persistence.Log, after, until uint64, pace func(busy time.Duration)) (uint64, uint64, error) {
	m.mu.Lock()
	m.rebuilding++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.rebuilding--
		m.mergePendingLocked()
		m.mu.Unlock()
	}()
	var read uint64
	limit, singles := rebuildBatch, 0
	for {
		if until > 0 && after >= until {
			return after, read, nil
		}
		began := time.Now()
		recs, err := log.ReadAll(ctx, after, limit)
		var corrupt *persistence.CorruptRecordError
		if errors.As(err, &corrupt) && corrupt.Next > after {
			m.mu.Lock()
			m.skipLocked(corrupt)
			m.mu.Unlock()
			after = corrupt.Next
			continue
		}
		if err != nil {
			if outage(ctx, err) {
				return after, read, fmt.Errorf("rebuild read model: partition %d after position %d: %w", log.Partition(), after, err)
			}
			if limit > 1 {
				// Find the records before the one the journal cannot read.
				limit, singles = 1, 0
				continue
			}
			inc := &IncompleteError{Partition: log.Partition(), After: after, Err: err}
			m.mu.Lock()
			if m.incomplete == nil {
				m.incomplete = inc
			}
			m.mu.Unlock()
			return after, read, inc
		}
		if len(recs) == 0 {
			return after, read, nil
		}
		for _, r := range recs {
			if until > 0 && r.Position > until {
				return after, read, nil
			}
			m.rebuildRecord(r)
			after = r.Position
			read++
		}
		if singles++; limit == 1 && singles == rebuildBatch {
			limit = rebuildBatch // past the batch that failed
		}
		m.mu.Lock()
		if len(m.pending) >= max(4*rebuildBatch, len(m.sorted)/8) {
			// Each merge costs at most 9 times the orders it adds.
			m.mergePendingLocked()
		}
		m.mu.Unlock()
		if pace != nil {
			pace(time.Since(began))
		}
	}
}

// mergePendingLocked merges the orders a rebuild added into the sorted
// list.
func (m *ReadModel) mergePendingLocked() {
	if len(m.pending) == 0 {
		return
	}
	if !slices.IsSortedFunc(m.pending, compare) {
		slices.SortFunc(m.pending, compare)
	}
	m.sorted = mergeSorted(m.sorted, m.pending)
	m.pending = nil
}

// Incomplete returns why the last Rebuild stopped before the end of a
// partition's log, or nil.
func (m *ReadModel) Incomplete() *IncompleteError {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.incomplete
}

// rebuildRecord applies one record of the global log: records of an order
// come in version order there, so one that does not follow the version the
// read model has (and is not one it has) is corrupt, as is one that does
// not decode (even if the read model has its version from the transport:
// the journal is what the order actor reads).
func (m *ReadModel) rebuildRecord(r persistence.Record) {
	_, e, err := codec.DecodeEvent(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.quarantined[r.StreamID]; ok {
		return
	}
	known := m.versionLocked(r.StreamID)
	if err == nil && r.Version <= known {
		return
	}
	if err == nil {
		err = codec.CheckFollows(r, known, e)
	}
	if err != nil {
		m.quarantineLocked(err)
		return
	}
	m.applyLocked(r.StreamID, e, itemCount(e))
}
