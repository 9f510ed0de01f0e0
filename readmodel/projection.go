// Package readmodel is the read side of OrderSystem: a read model of every
// order (its summary) and the statistics, built from order events only. It
// serves GET /orders and GET /stats without asking any order actor.
//
// Events may arrive more than once and, across orders, in any order: the
// read model applies an order's event only when it is the next version of
// that order, drops ones it has seen, and repairs gaps by reading the order's
// stream from the journal.
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

// StreamLoader reads an order's stream (the journal), to repair gaps.
type StreamLoader interface {
	Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error)
}

// ReadModel is safe for concurrent use.
type ReadModel struct {
	loader StreamLoader

	mu       sync.RWMutex
	byID     map[string]*Summary
	sorted   []*Summary // by (CreatedAt, OrderID) ascending
	byStatus [order.StatusCancelled + 1]int
	revenue  order.Cents
	applied  uint64 // events applied, for lag figures
}

// New returns an empty read model that repairs gaps through loader (nil:
// gaps are reported as errors).
func New(loader StreamLoader) *ReadModel {
	return &ReadModel{loader: loader, byID: make(map[string]*Summary)}
}

// ErrGap means an event arrived before an earlier event of the same order and
// the gap could not be repaired.
var ErrGap = errors.New("projection: missing earlier events of the order")

// Apply folds an event in. Duplicates and old versions are ignored. A gap is
// repaired from the loader; Apply returns an error only when that fails (the
// caller should redeliver later).
func (m *ReadModel) Apply(ctx context.Context, ev *orderpb.Event) error {
	m.mu.Lock()
	known := m.versionLocked(ev.GetOrderId())
	switch {
	case ev.GetVersion() <= known:
		m.mu.Unlock()
		return nil
	case ev.GetVersion() == known+1:
		err := m.applyLocked(ev)
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()
	if m.loader == nil {
		return fmt.Errorf("%w: %s has version %d, got %d", ErrGap, ev.GetOrderId(), known, ev.GetVersion())
	}
	recs, err := m.loader.Load(ctx, ev.GetOrderId(), known+1)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrGap, ev.GetOrderId(), err)
	}
	for _, r := range recs {
		pe, err := codec.DecodeRecord(r)
		if err != nil {
			return err
		}
		if err := m.Apply(ctx, pe); err != nil {
			return err
		}
		if pe.GetVersion() >= ev.GetVersion() {
			break
		}
	}
	return nil
}

func (m *ReadModel) versionLocked(id string) uint64 {
	if s, ok := m.byID[id]; ok {
		return s.Version
	}
	return 0
}

func (m *ReadModel) applyLocked(ev *orderpb.Event) error {
	e, err := codec.EventFromProto(ev)
	if err != nil {
		return err
	}
	id := ev.GetOrderId()
	s := m.byID[id]
	if s == nil {
		c, ok := e.(order.Created)
		if !ok {
			return fmt.Errorf("projection: first event of %s is %s", id, e.EventType())
		}
		s = &Summary{OrderID: id, CustomerID: c.CustomerID, Total: c.Total, Items: len(c.Items), CreatedAt: c.At, Status: order.StatusNone}
		m.byID[id] = s
		i, _ := slices.BinarySearchFunc(m.sorted, s, compare)
		m.sorted = slices.Insert(m.sorted, i, s)
	}
	old := s.Status
	st := order.Evolve(order.State{Status: s.Status, Version: s.Version, Total: s.Total}, e)
	s.Status, s.Version = st.Status, st.Version
	s.UpdatedAt = eventTime(e)
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
	return nil
}

func eventTime(e order.Event) time.Time {
	switch e := e.(type) {
	case order.Created:
		return e.At
	case order.Paid:
		return e.At
	case order.Shipped:
		return e.At
	case order.Delivered:
		return e.At
	case order.Cancelled:
		return e.At
	}
	return time.Time{}
}

func compare(a, b *Summary) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.OrderID, b.OrderID)
}

// Get returns the summary of one order.
func (m *ReadModel) Get(id string) (Summary, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.byID[id]
	if !ok {
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
	st := Stats{TotalOrders: len(m.byID), ByStatus: make(map[order.Status]int, 5), TotalRevenue: m.revenue}
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

// Rebuild applies every event of the journal's global log, in order; a
// restarted node calls it before it reports ready. It returns the position
// of the last record read.
func (m *ReadModel) Rebuild(ctx context.Context, j interface {
	ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error)
}) (uint64, error) {
	var after uint64
	for {
		recs, err := j.ReadAll(ctx, after, 1000)
		if err != nil {
			return after, fmt.Errorf("rebuild read model after position %d: %w", after, err)
		}
		if len(recs) == 0 {
			return after, nil
		}
		for _, r := range recs {
			pe, err := codec.DecodeRecord(r)
			if err != nil {
				return after, err
			}
			if err := m.Apply(ctx, pe); err != nil {
				return after, err
			}
			after = r.Position
		}
	}
}
