package nats

import (
	"container/list"
	"slices"
	"sync"

	"github.com/ordersystem/ordersystem/persistence"
)

// head is where an order's stream ends: its version and the stream
// sequence of its last message (both 0 for a new order).
type head struct {
	version uint64
	seq     uint64
}

// streamCache is a bounded LRU of what the backend knows about recently
// used orders: the head (a hint for the next append; the server checks
// every append against the real last sequence) and, when it is known, the
// order's records from version 1 on. Journal records never change once
// written, so a known prefix stays true: Load then reads only the messages
// after it. Records enter the cache only after the server acknowledged or
// returned them.
type streamCache struct {
	mu         sync.Mutex
	maxStreams int
	maxRecords int        // over all orders
	records    int        // cached now
	ll         *list.List // front = most recently used; values are *cacheEntry
	m          map[string]*list.Element
}

type cacheEntry struct {
	id string
	h  head
	// recs are the order's records 1..len(recs), a complete prefix; recsSeq
	// is the stream sequence of the message holding the last of them.
	recs    []persistence.Record
	recsSeq uint64
}

// maxCachedPerStream keeps one long order from taking the whole cache.
const maxCachedPerStream = 4096

func newStreamCache(maxStreams, maxRecords int) *streamCache {
	return &streamCache{maxStreams: maxStreams, maxRecords: maxRecords, ll: list.New(), m: make(map[string]*list.Element)}
}

func (c *streamCache) off() bool { return c.maxStreams <= 0 }

// entry returns id's entry, created if absent, and marks it recently used.
// c.mu is held.
func (c *streamCache) entry(id string) *cacheEntry {
	if e, ok := c.m[id]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry)
	}
	ce := &cacheEntry{id: id}
	c.m[id] = c.ll.PushFront(ce)
	return ce
}

// trim evicts least recently used entries until the bounds hold. c.mu is held.
func (c *streamCache) trim() {
	for c.ll.Len() > 1 && (c.ll.Len() > c.maxStreams || c.records > c.maxRecords) {
		last := c.ll.Back()
		ce := last.Value.(*cacheEntry)
		c.records -= len(ce.recs)
		c.ll.Remove(last)
		delete(c.m, ce.id)
	}
}

func (c *streamCache) setRecs(ce *cacheEntry, recs []persistence.Record, seq uint64) {
	c.records -= len(ce.recs)
	if len(recs) > maxCachedPerStream || len(recs) > c.maxRecords {
		recs, seq = nil, 0
	}
	ce.recs, ce.recsSeq = recs, seq
	c.records += len(recs)
}

// head returns id's last known head.
func (c *streamCache) head(id string) (head, bool) {
	if c.off() {
		return head{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return head{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).h, true
}

// putHead records h unless a later head (higher sequence) is known.
func (c *streamCache) putHead(id string, h head) {
	if c.off() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ce := c.entry(id)
	if h.seq < ce.recsSeq {
		// The server knows less than we cached: the stream was recreated.
		c.setRecs(ce, nil, 0)
		ce.h = h
	} else if h.seq >= ce.h.seq {
		ce.h = h
	}
	c.trim()
}

// appended records a successful append of recs (versions expected+1...) in
// the message with sequence seq of partition p's stream, published on top of sequence prev. The
// caller's Data is copied.
func (c *streamCache) appended(id string, p int, expected, prev, seq uint64, recs []persistence.Record) {
	if c.off() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ce := c.entry(id)
	if seq >= ce.h.seq {
		ce.h = head{version: expected + uint64(len(recs)), seq: seq}
	}
	// The server accepted the message on top of prev: if the cached prefix
	// ends exactly there, the new records extend it.
	if uint64(len(ce.recs)) == expected && ce.recsSeq == prev {
		// Appending in place is safe: readers got ce.recs with a shorter
		// length and never look past it, and appends happen under c.mu.
		ext := ce.recs
		for i, r := range recs {
			ext = append(ext, persistence.Record{
				StreamID:  id,
				Version:   expected + uint64(i) + 1,
				Partition: p,
				Position:  seq*positionScale + uint64(i),
				Type:      r.Type,
				Data:      slices.Clone(r.Data),
			})
		}
		c.setRecs(ce, ext, seq)
	}
	c.trim()
}

// prefix returns the cached records of id (a complete prefix from version
// 1) and the sequence of the message holding the last one.
func (c *streamCache) prefix(id string) ([]persistence.Record, uint64) {
	if c.off() {
		return nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return nil, 0
	}
	c.ll.MoveToFront(e)
	ce := e.Value.(*cacheEntry)
	return ce.recs, ce.recsSeq
}

// loaded records that recs (a complete prefix, read from the server) end
// in the message with sequence seq. recs must not be changed afterwards.
func (c *streamCache) loaded(id string, recs []persistence.Record, seq uint64) {
	if c.off() || len(recs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ce := c.entry(id)
	if seq > ce.recsSeq {
		c.setRecs(ce, recs, seq)
	}
	if seq >= ce.h.seq {
		ce.h = head{version: recs[len(recs)-1].Version, seq: seq}
	}
	c.trim()
}
