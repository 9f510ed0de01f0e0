// Package idmap is a map from string ids to values that can tell whether
// they are an id's, for the indexes that gain an entry per order (a node
// keeps hundreds of thousands). A Go map keyed by string hashes every key
// again each time its table grows, reading the key's bytes from wherever
// they are on the heap (a cache miss per key), and its keys are one more
// pointer per entry for the collector; in a profile of a node taking
// creates, growing such a map was about 90% of the cost of putting an
// order's entry in it. Map keys its entries by a 64-bit hash of the id
// instead: the table grows without touching the ids, and an entry is its
// value alone. The ids are not stored: each value tells whether it is an
// id's (an order's state knows its id; a journal stream's positions lead to
// a record that does), which every lookup checks, and an id whose hash
// another id holds goes to a second, string-keyed map, so two ids never
// mix, however their hashes fall.
//
// A Map is not safe for concurrent use: its owner guards it.
package idmap

import (
	"hash/maphash"
	"iter"
)

// Map maps ids to values of type V; is says whether a value is id's (the
// value must know its id: an entry's id is never stored beside it). The
// zero Map is not ready: use New.
type Map[V any] struct {
	seed maphash.Seed
	is   func(v V, id string) bool
	hash func(maphash.Seed, string) uint64
	m    map[uint64]V
	// more holds the entries whose id's hash an entry of m holds; mostly
	// empty (with a random seed, a million ids share a hash with odds of
	// about one in 37 million).
	more map[string]V
}

// New returns an empty Map whose values tell whether they are an id's with is.
func New[V any](is func(v V, id string) bool) *Map[V] { return WithCapacity(is, 0) }

// WithCapacity is New with room for n entries.
func WithCapacity[V any](is func(v V, id string) bool, n int) *Map[V] {
	return &Map[V]{seed: maphash.MakeSeed(), is: is, hash: maphash.String, m: make(map[uint64]V, n)}
}

// Get returns the value for id, if there is one.
func (m *Map[V]) Get(id string) (V, bool) {
	if v, ok := m.m[m.hash(m.seed, id)]; ok && m.is(v, id) {
		return v, true
	}
	if len(m.more) == 0 {
		var none V
		return none, false
	}
	v, ok := m.more[id]
	return v, ok
}

// Set makes v the value for id, in place of any before it; is(v, id) must
// hold, now and for as long as v is in m.
func (m *Map[V]) Set(id string, v V) {
	h := m.hash(m.seed, id)
	switch have, ok := m.m[h]; {
	case ok && m.is(have, id):
		m.m[h] = v
	case ok:
		if m.more == nil {
			m.more = map[string]V{}
		}
		m.more[id] = v
	default:
		// Its slot is free, but id may be in more from when the slot was
		// another id's: it stays there (one entry per id).
		if _, ok := m.more[id]; ok {
			m.more[id] = v
			return
		}
		m.m[h] = v
	}
}

// Delete removes the value for id, if any.
func (m *Map[V]) Delete(id string) {
	h := m.hash(m.seed, id)
	if v, ok := m.m[h]; ok && m.is(v, id) {
		delete(m.m, h)
		return
	}
	delete(m.more, id)
}

// Len is the number of entries.
func (m *Map[V]) Len() int { return len(m.m) + len(m.more) }

// All yields every value, in no order. The loop must not change m.
func (m *Map[V]) All() iter.Seq[V] {
	return func(yield func(V) bool) {
		for _, v := range m.m {
			if !yield(v) {
				return
			}
		}
		for _, v := range m.more {
			if !yield(v) {
				return
			}
		}
	}
}
