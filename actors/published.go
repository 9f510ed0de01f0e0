package actors

import (
	"hash/maphash"
	"sync"

	"github.com/ordersystem/ordersystem/internal/idmap"
	"github.com/ordersystem/ordersystem/order"
)

// Published holds the last committed state of every active order actor of
// a node that is its journal's only writer (the in-memory journal), so that
// GET /orders/{id} of an active order is answered without a round trip
// through the actor's mailbox: on such a node the actor's state is the
// stream's head, and the actor publishes each new state before it answers
// the command that made it, so a read that follows an acknowledged write
// sees it. On Redis and NATS another activation may have written (after a
// topology change), so every read goes to the actor, which reads the
// stream's tail first; they get no Published.
//
// A state is published as it is: the actor never changes a state it
// published again (it changes a copy), and its Items are shared (a state's
// items never change after the order was created). An actor that stops, or whose
// state may be behind its stream (a write with an unknown outcome, a record
// it cannot read), withdraws its state, and reads go to the actor again.
type Published struct {
	seed   maphash.Seed
	shards [publishedShards]publishedShard
}

const publishedShards = 64

type publishedShard struct {
	mu sync.RWMutex
	m  *idmap.Map[*order.State] // by State.ID
}

func isState(s *order.State, id string) bool { return s.ID == id }

// NewPublished returns an empty Published.
func NewPublished() *Published {
	p := &Published{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].m = idmap.New(isState)
	}
	return p
}

func (p *Published) shard(id string) *publishedShard {
	return &p.shards[maphash.String(p.seed, id)%publishedShards]
}

// Get returns the published state of order id, if its actor is active and
// published one.
func (p *Published) Get(id string) (order.State, bool) {
	sh := p.shard(id)
	sh.mu.RLock()
	s, ok := sh.m.Get(id)
	sh.mu.RUnlock()
	if !ok {
		return order.State{}, false
	}
	return *s, true
}

// Len is the number of published states.
func (p *Published) Len() int {
	n := 0
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.RLock()
		n += sh.m.Len()
		sh.mu.RUnlock()
	}
	return n
}

// set publishes s itself, not a copy: the caller never changes it again.
func (p *Published) set(s *order.State) {
	sh := p.shard(s.ID)
	sh.mu.Lock()
	sh.m.Set(s.ID, s)
	sh.mu.Unlock()
}

func (p *Published) drop(id string) {
	sh := p.shard(id)
	sh.mu.Lock()
	sh.m.Delete(id)
	sh.mu.Unlock()
}
