// Package idmap is a map from string ids to values that name their own id,
// for the indexes that gain an entry per order (a node keeps hundreds of
// thousands). A Go map keyed by string hashes every key again each time
// its table grows, reading the key's bytes from wherever they are on the
// heap (a cache miss per key), and keeps two pointers per entry; in a
// profile of a node taking creates, growing such a map was about 90% of
// the cost of putting an order's entry in it. Map keys its entries by a
// 64-bit hash of the id instead: the table grows without touching the ids,
// and an entry is one pointer. The entry's own id is compared on every
// lookup, and an id whose hash another id holds goes to a second, string
// keyed map, so two ids never mix, however their hashes fall.
//
// A Map is not safe for concurrent use: its owner guards it.
package idmap

import (
	"hash/maphash"
	"iter"
)

// Map maps ids to *T; id says what id an entry is for. The zero Map is not
// ready: use New.
type Map[T any] struct {
	seed maphash.Seed
	id   func(*T) string
	hash func(maphash.Seed, string) uint64
	m    map[uint64]*T
	// more holds the entries whose id's hash an entry of m holds; mostly
	// empty (two ids of 64 random bits each collide once in about 4
	// billion pairs).
	more map[string]*T
}

// New returns an empty Map whose entries tell their ids with id.
func New[T any](id func(*T) string) *Map[T] { return WithCapacity(id, 0) }

// WithCapacity is New with room for n entries.
func WithCapacity[T any](id func(*T) string, n int) *Map[T] {
	return &Map[T]{seed: maphash.MakeSeed(), id: id, hash: maphash.String, m: make(map[uint64]*T, n)}
}

// Get returns the entry for id, or nil.
func (m *Map[T]) Get(id string) *T {
	if e := m.m[m.hash(m.seed, id)]; e != nil && m.id(e) == id {
		return e
	}
	if len(m.more) == 0 {
		return nil
	}
	return m.more[id]
}

// Set makes e the entry for id(e), in place of any before it. e must not
// be nil.
func (m *Map[T]) Set(e *T) {
	id := m.id(e)
	h := m.hash(m.seed, id)
	switch have := m.m[h]; {
	case have != nil && m.id(have) == id:
		m.m[h] = e
	case have != nil:
		if m.more == nil {
			m.more = map[string]*T{}
		}
		m.more[id] = e
	default:
		// Its slot is free, but id may be in more from when the slot was
		// another id's: it stays there (one entry per id).
		if _, ok := m.more[id]; ok {
			m.more[id] = e
			return
		}
		m.m[h] = e
	}
}

// Delete removes the entry for id, if any.
func (m *Map[T]) Delete(id string) {
	h := m.hash(m.seed, id)
	if e := m.m[h]; e != nil && m.id(e) == id {
		delete(m.m, h)
		return
	}
	delete(m.more, id)
}

// Len is the number of entries.
func (m *Map[T]) Len() int { return len(m.m) + len(m.more) }

// All yields every entry, in no order. The loop must not change m.
func (m *Map[T]) All() iter.Seq[*T] {
	return func(yield func(*T) bool) {
		for _, e := range m.m {
			if !yield(e) {
				return
			}
		}
		for _, e := range m.more {
			if !yield(e) {
				return
			}
		}
	}
}
