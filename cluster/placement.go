package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/cespare/xxhash/v2"

	"github.com/ordersystem/ordersystem/internal/idmap"
)

// placementName is the name of the actor, on every member, that activates
// the virtual actors that member owns.
const placementName = "order-placement"

// placement is the identity lookup of the cluster: rendezvous hashing over
// the members picks an identity's owner, and the owner's placement actor
// activates it. It does what protoactor's disthash lookup does, without two
// of its costs that grow with the number of activations:
//
//   - disthash finds a stopped activation by scanning all of them, so
//     passivating n actors costs O(n²) (about 40 minutes of one core for a
//     million orders); here the stopping activation names its identity,
//     found in the map at once;
//   - disthash spawns activations as children of its actor, and protoactor's
//     child set keeps a pointer to each removed child in its backing array,
//     so every actor that was ever active at once stays on the heap after it
//     stopped; here activations are spawned from the root context. They are
//     not watched either (a watcher set costs each activation a map): the
//     cluster middleware publishes ActivationTerminating when one stops, and
//     an activation request that finds a PID no longer running spawns anew.
//
// It also reads the member ring through an atomic pointer (disthash swaps it
// unguarded while requests read it), and scores members with a hash that
// spreads identities evenly (see ring).
type placement struct {
	cluster *pcluster.Cluster
	ring    atomic.Pointer[ring]
	pid     *actor.PID
	sub     *eventstream.Subscription
	// deaths, once set, ends activation requests to a member whose
	// process is gone (see deathWatch).
	deaths atomic.Pointer[deathWatch]

	// mu guards this member's activations: the placement actor (requests
	// from other members, terminations, view changes) and this member's
	// own requests (getWithin, without a round trip through the actor)
	// both activate.
	mu     sync.Mutex
	byKind map[string]*idmap.Map[*activation] // each kind's, by identity
	closed bool                               // the member is leaving: activate nothing
	// props holds each kind's props for its activations, made once: the
	// kind's props with an init step that names the activation's identity
	// from spawning. protoactor's WithClusterIdentity clones the props (and
	// rebuilds their middleware chain) for every activation instead, and
	// each activation keeps its clone for as long as it lives.
	props map[string]*actor.Props
	// spawning is the identity being activated, under mu: protoactor runs
	// a props' init steps in the spawning goroutine, before the spawn
	// returns.
	spawning *pcluster.ClusterIdentity
}

// activationTimeout bounds one activation request to the owner.
const activationTimeout = 5 * time.Second

var _ pcluster.IdentityLookup = (*placement)(nil)

func newPlacement() *placement {
	return &placement{byKind: map[string]*idmap.Map[*activation]{}, props: map[string]*actor.Props{}}
}

// propsLocked returns the props that activations of kind are spawned with
// (see props). The caller holds mu.
func (p *placement) propsLocked(kind *pcluster.ActivatedKind) *actor.Props {
	if props, ok := p.props[kind.Kind]; ok {
		return props
	}
	props := kind.Props.Clone(actor.WithOnInit(func(ctx actor.Context) {
		// Only activate spawns these props, so spawning is set.
		pcluster.SetClusterIdentity(ctx, p.spawning)
	}))
	p.props[kind.Kind] = props
	return props
}

// Setup implements pcluster.IdentityLookup.
func (p *placement) Setup(c *pcluster.Cluster, _ []string, _ bool) {
	p.cluster = c
	p.ring.Store(newRing(nil))
	sys := c.ActorSystem
	props := actor.PropsFromProducer(func() actor.Actor {
		return &placementActor{cluster: c, lookup: p}
	})
	p.pid, _ = sys.Root.SpawnNamed(props, placementName)
	p.sub = sys.EventStream.Subscribe(func(ev any) {
		switch t := ev.(type) {
		case *pcluster.ClusterTopology:
			p.ring.Store(newRing(t.Members))
			sys.Root.Send(p.pid, t)
		case *pcluster.ActivationTerminating:
			// Published by the stopping activation itself (protoactor's
			// cluster middleware, on Stopped).
			sys.Root.Send(p.pid, t)
		}
	})
}

// Shutdown implements pcluster.IdentityLookup: the placement actor stops
// every activation of this member, then itself.
func (p *placement) Shutdown() {
	sys := p.cluster.ActorSystem
	sys.EventStream.Unsubscribe(p.sub)
	if err := sys.Root.PoisonFuture(p.pid).Wait(); err != nil {
		p.cluster.Logger().Error("stopping the placement actor", slog.Any("error", err))
	}
}

// Get implements pcluster.IdentityLookup: it asks the identity's owner to
// activate it (or to name the running activation).
func (p *placement) Get(ci *pcluster.ClusterIdentity) *actor.PID {
	return p.getWithin(ci, activationTimeout)
}

// getWithin is Get bounded by timeout. This member's own placement actor
// answers at once (a stopped one dead-letters the request at once, and the
// member's health check then starts a new incarnation).
func (p *placement) getWithin(ci *pcluster.ClusterIdentity, timeout time.Duration) *actor.PID {
	owner := p.ring.Load().owner(ci)
	if owner == "" {
		return nil
	}
	if owner == p.cluster.ActorSystem.Address() {
		return p.activate(ci)
	}
	req := &pcluster.ActivationRequest{ClusterIdentity: ci}
	f := p.cluster.ActorSystem.Root.RequestFuture(actor.NewPID(owner, placementName), req, timeout)
	if w := p.deaths.Load(); w != nil && owner != w.self {
		w.track(owner, f)
		defer w.untrack(owner, f)
	}
	res, err := f.Result()
	if err != nil {
		return nil
	}
	if r, ok := res.(*pcluster.ActivationResponse); ok {
		return r.Pid
	}
	return nil
}

// owner is the address of the member that owns the identity now, "" while
// the member list is not known yet.
func (p *placement) owner(identity, kind string) string {
	ring := p.ring.Load()
	if ring == nil {
		return ""
	}
	return ring.owner(&pcluster.ClusterIdentity{Identity: identity, Kind: kind})
}

// view is the routing view in force.
func (p *placement) view() View {
	r := p.ring.Load()
	if r == nil {
		r = &ring{}
	}
	return r.view()
}

// ownedHere reports whether this member owns the identity now.
func (p *placement) ownedHere(identity, kind string) bool {
	ring := p.ring.Load()
	if ring == nil {
		return false
	}
	return ring.owner(&pcluster.ClusterIdentity{Identity: identity, Kind: kind}) == p.cluster.ActorSystem.Address()
}

// RemovePid implements pcluster.IdentityLookup: every member's PID cache
// forgets the activation.
func (p *placement) RemovePid(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	p.cluster.MemberList.BroadcastEvent(&pcluster.ActivationTerminated{Pid: pid, ClusterIdentity: ci}, true)
}

type activation struct {
	id  *pcluster.ClusterIdentity
	pid *actor.PID
	// own is id when this member made it (its own requests carry an
	// identity and a kind, not a ClusterIdentity): one allocation for both.
	own pcluster.ClusterIdentity
}

func isActivation(a *activation, identity string) bool { return a.id.Identity == identity }

// getLocked returns the activation of identity key names, or nil.
func (p *placement) getLocked(key activationKey) *activation {
	if acts := p.byKind[key.kind]; acts != nil {
		act, _ := acts.Get(key.identity)
		return act
	}
	return nil
}

// setLocked makes act its identity's activation.
func (p *placement) setLocked(act *activation) {
	acts := p.byKind[act.id.Kind]
	if acts == nil {
		acts = idmap.New(isActivation)
		p.byKind[act.id.Kind] = acts
	}
	acts.Set(act.id.Identity, act)
}

// lenLocked is the number of activations.
func (p *placement) lenLocked() int {
	n := 0
	for _, acts := range p.byKind {
		n += acts.Len()
	}
	return n
}

// allLocked yields every activation.
func (p *placement) allLocked(yield func(*activation) bool) {
	for _, acts := range p.byKind {
		for act := range acts.All() {
			if !yield(act) {
				return
			}
		}
	}
}

// activationKey names an activation: a struct of the two strings, not
// protoactor's AsKey (kind + "/" + identity), which concatenates a new
// string for every lookup.
type activationKey struct{ kind, identity string }

// placementActor answers the activation requests of the other members and
// passes terminations and view changes to the placement.
type placementActor struct {
	cluster *pcluster.Cluster
	lookup  *placement
}

func (a *placementActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *pcluster.ActivationRequest:
		if msg.GetClusterIdentity() == nil {
			ctx.Respond(&pcluster.ActivationResponse{Failed: true})
			return
		}
		ctx.Respond(&pcluster.ActivationResponse{Pid: a.lookup.activate(msg.ClusterIdentity)})
	case *pcluster.ActivationTerminating:
		a.lookup.terminated(msg.ClusterIdentity, msg.Pid)
	case *pcluster.ClusterTopology:
		a.lookup.rebalance(ctx)
	case placementPing:
		ctx.Respond(placementPong{})
	case *actor.Stopping:
		a.lookup.stopAll(ctx)
	}
}

// placementPing asks the placement actor to answer placementPong (local
// only: neither is a protobuf message, so neither can come off the wire).
type placementPing struct{}

type placementPong struct{}

// ErrPlacementStopped means this member's placement actor is gone: the
// member can activate none of its actors any more (see Member.Check).
var ErrPlacementStopped = errors.New("the placement actor stopped")

// ping asks the placement actor to answer within timeout.
func (p *placement) ping(timeout time.Duration) error {
	res, err := p.cluster.ActorSystem.Root.RequestFuture(p.pid, placementPing{}, timeout).Result()
	switch {
	case errors.Is(err, actor.ErrDeadLetter):
		return ErrPlacementStopped
	case err != nil:
		return fmt.Errorf("the placement actor did not answer within %v: %w", timeout, err)
	case res == (placementPong{}):
		return nil
	}
	if _, dead := res.(*actor.DeadLetterResponse); dead {
		return ErrPlacementStopped
	}
	return fmt.Errorf("the placement actor answered %T", res)
}

// activate returns the running activation of ci, or spawns one. An unknown
// kind answers a nil PID, which the requester treats as a failed lookup.
//
// A member activates only what it owns in its own view: a requester whose
// view is older (a member just joined or left) gets a nil PID and asks
// again once its view caught up. Activating for it would start a second
// copy beside the owner's, which nothing would ever stop (rebalance runs on
// view changes only) and which the requester's PID cache would keep using.
func (p *placement) activate(ci *pcluster.ClusterIdentity) *actor.PID {
	return p.activateKey(activationKey{kind: ci.Kind, identity: ci.Identity}, ci)
}

// activateLocal is activate for this member's own requests: the identity
// is made only when an activation is spawned, not for every request to one
// that runs.
func (p *placement) activateLocal(identity, kind string) *actor.PID {
	return p.activateKey(activationKey{kind: kind, identity: identity}, nil)
}

// activateKey is activate of the identity key names; ci is that identity,
// or nil to make it if it is spawned.
func (p *placement) activateKey(key activationKey, ci *pcluster.ClusterIdentity) *actor.PID {
	sys := p.cluster.ActorSystem
	lookup := ci != nil
	if ring := p.ring.Load(); ring != nil && ring.owner(&pcluster.ClusterIdentity{Identity: key.identity, Kind: key.kind}) != sys.Address() {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	var gone *activation
	if act := p.getLocked(key); act != nil {
		if _, running := sys.ProcessRegistry.GetLocal(act.pid.Id); running {
			p.mu.Unlock()
			return act.pid
		}
		// Stopped without its termination reaching us: start it again.
		p.forgetLocked(act)
		gone = act
	}
	kind, ok := p.cluster.TryGetClusterKind(key.kind)
	if !ok {
		p.mu.Unlock()
		p.cluster.Logger().Error("activation of an unknown kind", slog.String("kind", key.kind))
		p.removed(gone)
		return nil
	}
	act := &activation{id: ci}
	if ci == nil {
		act.own.Identity, act.own.Kind = key.identity, key.kind
		ci = &act.own
		act.id = ci
	}
	// Spawned from the root rather than as a child: see the type's comment.
	p.spawning = ci
	pid := sys.Root.SpawnPrefix(p.propsLocked(kind), ci.Identity)
	p.spawning = nil
	kind.Inc()
	act.pid = pid
	p.setLocked(act)
	p.mu.Unlock()
	p.removed(gone)
	if lookup && pid != nil {
		// The requester sends its message later, or never if it died
		// meanwhile: a mailbox that holds Started for the first message
		// gets this one now.
		sys.Root.Send(pid, Wake{})
	}
	return pid
}

// Wake is the message the placement sends an activation it spawned for a
// lookup (another member's, or protoactor's cluster API), so that a mailbox
// that holds the Started of a spawn until the next message (the order
// actors', see actors.orderMailbox) starts it even when the requester never
// sends one. An activation spawned for this member's own request gets that
// request at once instead. Actors ignore it. It restarts a receive timeout
// like any message (it comes right after Started): one that did not would
// race with protoactor's timer, which clears the timeout from its own
// goroutine.
type Wake struct{}

// terminated forgets a stopped activation, unless a newer one of the same
// identity replaced it already.
func (p *placement) terminated(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	if ci == nil || pid == nil {
		return
	}
	key := activationKey{kind: ci.Kind, identity: ci.Identity}
	p.mu.Lock()
	act := p.getLocked(key)
	ok := act != nil && act.pid.Id == pid.Id
	if ok {
		p.forgetLocked(act)
	}
	p.mu.Unlock()
	if ok {
		p.removed(act)
	}
}

// forgetLocked drops an activation from the map; the caller tells the
// members with removed once it released the lock.
func (p *placement) forgetLocked(act *activation) {
	p.byKind[act.id.Kind].Delete(act.id.Identity)
	if kind, ok := p.cluster.TryGetClusterKind(act.id.Kind); ok {
		kind.Dec()
	}
}

// removed makes every member's PID cache forget a forgotten activation
// (nil: none).
func (p *placement) removed(act *activation) {
	if act != nil {
		p.RemovePid(act.id, act.pid)
	}
}

// rebalance stops the activations whose identity another member owns now;
// their next request activates them there.
func (p *placement) rebalance(ctx actor.Context) {
	ring, me := p.ring.Load(), p.cluster.ActorSystem.Address()
	p.mu.Lock()
	var moved []*actor.PID
	for act := range p.allLocked {
		if ring.owner(act.id) != me {
			moved = append(moved, act.pid)
		}
	}
	p.mu.Unlock()
	for _, pid := range moved {
		ctx.Poison(pid)
	}
}

// stopAll stops every activation and waits for them (the member is
// leaving); nothing is activated after it began.
func (p *placement) stopAll(ctx actor.Context) {
	p.mu.Lock()
	p.closed = true
	var futures []*actor.Future
	for act := range p.allLocked {
		futures = append(futures, ctx.PoisonFuture(act.pid))
	}
	p.mu.Unlock()
	for _, f := range futures {
		if err := f.Wait(); err != nil {
			ctx.Logger().Error("stopping an activation", slog.Any("error", err))
		}
	}
}

// ring is one member view for rendezvous hashing: an identity belongs to the
// member of its kind with the highest score mix(hash(identity) ^
// hash(address)). It is immutable once built, so lookups take no lock.
//
// protoactor's Rendezvous scores with 32-bit FNV-1a over identity+address,
// whose last bytes barely mix: members whose addresses differ only in the
// last digit (127.0.0.1:6001..6003, the README's one-host cluster) split
// the identities about 2:1:1. xxhash64 and the 64-bit finalizer of
// murmur3 avalanche fully, and both are fixed functions of the bytes, so
// every member, in every process, computes the same owner.
//
// Members are scored by address, not member id: the id changes with every
// incarnation, the address does not, so a restarted member gets its old
// identities back.
type ring struct {
	members []ringMember // sorted by address: equal scores pick the first
}

type ringMember struct {
	address string
	id      string // the member id: its incarnation
	seed    uint64 // xxhash64 of the address
	kinds   []string
}

func newRing(members []*pcluster.Member) *ring {
	r := &ring{members: make([]ringMember, 0, len(members))}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if m == nil || seen[m.Address()] {
			continue
		}
		addr := m.Address()
		seen[addr] = true
		r.members = append(r.members, ringMember{address: addr, id: m.Id, seed: xxhash.Sum64String(addr), kinds: m.Kinds})
	}
	slices.SortFunc(r.members, func(a, b ringMember) int { return strings.Compare(a.address, b.address) })
	return r
}

// View is a member's routing view: the members its placement places
// actors on, summed up so that members can compare views.
type View struct {
	// Digest is xxhash64 of the members' addresses, incarnations (member
	// ids) and kinds in address order, in hex: members that route alike
	// have the same digest.
	Digest string `json:"digest"`
	// Sum is the digest's first 53 bits, a number a metric can carry.
	Sum uint64 `json:"-"`
	// Members is how many members the view holds.
	Members int `json:"members"`
}

// view is the ring's View.
func (r *ring) view() View {
	h := xxhash.New()
	for _, m := range r.members {
		_, _ = h.WriteString(m.address)
		_, _ = h.WriteString("\x00")
		_, _ = h.WriteString(m.id)
		for _, k := range m.kinds {
			_, _ = h.WriteString("\x00")
			_, _ = h.WriteString(k)
		}
		_, _ = h.WriteString("\n")
	}
	sum := h.Sum64()
	return View{Digest: fmt.Sprintf("%016x", sum), Sum: sum >> 11, Members: len(r.members)}
}

// owner is the address of the member that owns ci, "" when no member hosts
// its kind.
func (r *ring) owner(ci *pcluster.ClusterIdentity) string {
	key := xxhash.Sum64String(ci.Identity)
	best, bestScore := "", uint64(0)
	for i := range r.members {
		m := &r.members[i]
		if !slices.Contains(m.kinds, ci.Kind) {
			continue
		}
		if s := mix64(key ^ m.seed); best == "" || s > bestScore {
			best, bestScore = m.address, s
		}
	}
	return best
}

// mix64 is the 64-bit finalizer of murmur3 (fmix64): every input bit flips
// each output bit with probability about one half.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
