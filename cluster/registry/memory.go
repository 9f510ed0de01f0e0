package registry

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryRegistry is a Registry in process memory: several members of one
// process (the clustertest harness) share one to form a cluster without a
// server. Leases expire lazily against the monotonic clock; it starts no
// goroutine. Safe for concurrent use; the zero value is not usable, call
// NewMemoryRegistry.
type MemoryRegistry struct {
	mu     sync.Mutex
	recs   map[string]memLease
	secret []byte // the cluster secret, once ClusterSecret made it
}

type memLease struct {
	data    []byte
	expires time.Time
}

// NewMemoryRegistry returns an empty registry.
func NewMemoryRegistry() *MemoryRegistry {
	return &MemoryRegistry{recs: make(map[string]memLease)}
}

var _ Registry = (*MemoryRegistry)(nil)

// live returns the unexpired lease of id, dropping an expired one.
// Callers hold mu.
func (m *MemoryRegistry) live(id string, now time.Time) (memLease, bool) {
	l, ok := m.recs[id]
	if !ok {
		return memLease{}, false
	}
	if !now.Before(l.expires) {
		delete(m.recs, id)
		return memLease{}, false
	}
	return l, true
}

// Register implements Registry.
func (m *MemoryRegistry) Register(ctx context.Context, rec MemberRecord, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("register %s: ttl %v must be positive", rec.MemberID, ttl)
	}
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if _, ok := m.live(rec.MemberID, now); ok {
		return fmt.Errorf("register %s: %w", rec.MemberID, ErrMemberExists)
	}
	m.recs[rec.MemberID] = memLease{data: data, expires: now.Add(ttl)}
	return nil
}

// Renew implements Registry.
func (m *MemoryRegistry) Renew(ctx context.Context, rec MemberRecord, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("renew %s: ttl %v must be positive", rec.MemberID, ttl)
	}
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	l, ok := m.live(rec.MemberID, now)
	if !ok {
		return fmt.Errorf("renew %s: record gone: %w", rec.MemberID, ErrLeaseLost)
	}
	if !bytes.Equal(l.data, data) {
		return fmt.Errorf("renew %s: record belongs to another incarnation: %w", rec.MemberID, ErrLeaseLost)
	}
	l.expires = now.Add(ttl)
	m.recs[rec.MemberID] = l
	return nil
}

// Deregister implements Registry.
func (m *MemoryRegistry) Deregister(ctx context.Context, rec MemberRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.live(rec.MemberID, time.Now()); ok && bytes.Equal(l.data, data) {
		delete(m.recs, rec.MemberID)
	}
	return nil
}

// List implements Registry.
func (m *MemoryRegistry) List(ctx context.Context) ([]MemberRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := make([]MemberRecord, 0, len(m.recs))
	for id := range m.recs {
		l, ok := m.live(id, now)
		if !ok {
			continue
		}
		r, err := DecodeMemberRecord(l.data)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		out = append(out, r)
	}
	SortRecords(out)
	return out, nil
}
