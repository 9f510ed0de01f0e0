package cluster

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// probeName is the name of the actor, on every member, that answers the
// reachability probes of the other members (and relays indirect ones).
const probeName = "member-probe"

// Reachability probes (Orleans' and SWIM's scheme, without writes to the
// registry). Every member probes every other member of its view over the
// node-to-node port each ProbeInterval: a ProbeRequest to the peer's probe
// actor, answered within ProbeTimeout. When a direct probe fails, the
// member asks up to two other members it reached directly to probe the
// peer for it (SWIM's ping-req). Every answer carries the answering
// member's view (digest and member ids), so members also notice when their
// views diverge.
//
//   - Suspect: a peer whose last suspectAfter direct probes failed. Requests
//     to actors it owns fail at once with ErrOwnerUnreachable (the HTTP
//     layer answers 503 with Retry-After) instead of waiting out their
//     timeout, until a direct probe succeeds again or the peer leaves the
//     view (its record expired or was removed), when its actors move to
//     their new owner.
//   - Isolated: this member reached (directly or through a relay) fewer than
//     a majority of the other members for longer than IsolationBound, while
//     the registry kept listing them. IsolationBound is longer than a lease
//     TTL plus a listing period, so a member that died has left the view by
//     then; the ones still listed renewed their leases, so they are alive and
//     the fault is on this side. The member stops serving at once and
//     fences itself (Config.OnIsolated). That is safe whichever side is
//     wrong: a member only ever stops itself, and the others take its actors
//     over only once its record is gone or expired, as after any fence.
//   - Divergence: a peer whose view digest differed from this member's for
//     longer than DivergenceBound. Logged once per episode (WARN, both
//     member lists) and counted; this member asks its provider to list the
//     registry again at once (Relister). If the peer's view lacks this very
//     member and the peer blocked its id (protoactor blocks a dropped member
//     id for good: listing again cannot readmit it), this member fences
//     itself and rejoins as a new incarnation. Missing without a block is a
//     listing the peer has not made yet, which its relisting heals.

// suspectAfter is how many direct probes in a row must fail before a peer
// is suspect.
const suspectAfter = 2

// maxRelays is how many other members are asked to probe a peer that did
// not answer a direct probe.
const maxRelays = 2

// Relister is the optional ability of a membership provider to list the
// registry again at once and republish the view even if it looks unchanged
// (LeaseProvider has it). A member calls it when its view diverged from a
// peer's.
type Relister interface {
	Relist()
}

// PeerReachability is what one member knows of another's reachability.
type PeerReachability struct {
	// ID and Address name the peer (its incarnation and node-to-node
	// address).
	ID      string `json:"id"`
	Address string `json:"address"`
	// Reachable: the last direct probe was answered, or a relay reached the
	// peer since.
	Reachable bool `json:"reachable"`
	// Direct: the last direct probe was answered.
	Direct bool `json:"direct"`
	// Suspect: the last suspectAfter direct probes failed; requests to the
	// peer's actors fail fast.
	Suspect bool `json:"suspect"`
	// RoundTrip is the round trip of the last answered direct probe.
	RoundTrip time.Duration `json:"roundTripNs"`
	// LastReached is when the peer last answered (directly or through a
	// relay); zero if never.
	LastReached time.Time `json:"lastReached,omitzero"`
	// ViewDigest is the peer's view digest in its last answer.
	ViewDigest string `json:"viewDigest,omitempty"`
}

// ProbeStats are a member's probe counts since its incarnation started.
type ProbeStats struct {
	// Sent and Failed count direct probes; Indirect counts relayed probes
	// asked of other members.
	Sent, Failed, Indirect uint64
	// Divergences counts view divergence episodes (see the package notes on
	// probes).
	Divergences uint64
	// FailedFast counts requests refused at once because their owner was
	// suspect.
	FailedFast uint64
}

func (s *ProbeStats) add(o ProbeStats) {
	s.Sent += o.Sent
	s.Failed += o.Failed
	s.Indirect += o.Indirect
	s.Divergences += o.Divergences
	s.FailedFast += o.FailedFast
}

// peerState is the prober's state of one other member.
type peerState struct {
	id, address string
	since       time.Time // first seen in the view
	lastDirect  time.Time // last answered direct probe
	lastReached time.Time // last answer, direct or relayed
	rtt         time.Duration
	failures    int // direct probes failed in a row
	direct      bool
	digest      string
	members     []string
	diverged    time.Time // since when its digest differs from ours; zero if it agrees
	reported    bool      // the divergence episode was logged
	probing     bool      // a probe round of this peer is in flight
}

// prober runs one incarnation's probes and holds their results.
type prober struct {
	n        *Node
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration
	bound    time.Duration
	diverge  time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu        sync.Mutex
	peers     map[string]*peerState // by address
	isolated  string                // reason, "" while not isolated
	lastRound time.Time             // when the last round started
	stats     ProbeStats

	failedFast atomic.Uint64
}

func newProber(n *Node) *prober {
	cfg := n.cfg
	return &prober{
		n: n, log: cfg.Logger.With(slog.String("component", "reachability"), slog.String("node_id", cfg.NodeID)),
		interval: cfg.ProbeInterval, timeout: cfg.ProbeTimeout, bound: cfg.IsolationBound, diverge: cfg.DivergenceBound,
		stop: make(chan struct{}), done: make(chan struct{}), peers: map[string]*peerState{},
	}
}

// probeActor answers probes: at once for a direct one, after probing the
// named member for an indirect one (reentrantly, so that the mailbox goes
// on meanwhile).
type probeActor struct{ n *Node }

func (a *probeActor) Receive(ctx actor.Context) {
	req, ok := ctx.Message().(*orderpb.ProbeRequest)
	if !ok {
		return
	}
	reply := a.n.probeReply()
	if id := req.GetCheckMemberId(); id != "" {
		reply.CheckedBlocked = a.n.cluster.Remote.BlockList().IsBlocked(id)
	}
	if req.GetRelayTo() == "" {
		ctx.Respond(reply)
		return
	}
	reply.Relayed = true
	timeout := time.Duration(req.GetRelayTimeoutMs()) * time.Millisecond
	timeout = min(max(timeout, 10*time.Millisecond), 10*time.Second)
	f := ctx.RequestFuture(actor.NewPID(req.GetRelayTo(), probeName),
		&orderpb.ProbeRequest{FromMemberId: a.n.system.ID, CheckMemberId: req.GetCheckMemberId()}, timeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		if r, ok := res.(*orderpb.ProbeReply); ok && err == nil {
			reply.RelayOk, reply.RelayMemberId = true, r.GetMemberId()
			reply.RelayViewDigest, reply.RelayMemberIds = r.GetViewDigest(), r.GetMemberIds()
			reply.RelayCheckedBlocked = r.GetCheckedBlocked()
		}
		ctx.Respond(reply)
	})
}

// probeReply is this member's answer to a probe: its id and view.
func (n *Node) probeReply() *orderpb.ProbeReply {
	r := n.lookupImpl.ring.Load()
	if r == nil {
		r = &ring{}
	}
	ids := make([]string, len(r.members))
	for i, m := range r.members {
		ids[i] = m.id
	}
	slices.Sort(ids)
	return &orderpb.ProbeReply{MemberId: n.system.ID, ViewDigest: r.view().Digest, MemberIds: ids}
}

// run probes every interval until stop.
func (p *prober) run() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.round()
	}
}

// round starts a probe of every peer of the view that has none in flight,
// and checks the isolation rule.
func (p *prober) round() {
	r := p.n.lookupImpl.ring.Load()
	if r == nil {
		return
	}
	self := p.n.Address()
	now := time.Now()
	p.mu.Lock()
	if !p.lastRound.IsZero() && now.Sub(p.lastRound) > 2*p.interval+p.timeout {
		// This member itself stalled (a pause, CPU starvation): what it
		// knew is old, so the isolation bound starts over from now.
		for _, pe := range p.peers {
			pe.since = now
		}
	}
	p.lastRound = now
	inView := make(map[string]bool, len(r.members))
	var start []*peerState
	for _, m := range r.members {
		if m.address == self {
			continue
		}
		inView[m.address] = true
		pe := p.peers[m.address]
		if pe == nil || pe.id != m.id {
			pe = &peerState{id: m.id, address: m.address, since: now}
			p.peers[m.address] = pe
		}
		if !pe.probing {
			pe.probing = true
			start = append(start, pe)
		}
	}
	for addr := range p.peers {
		if !inView[addr] {
			delete(p.peers, addr) // it left the view: its actors moved
		}
	}
	p.mu.Unlock()
	for _, pe := range start {
		go p.probe(pe)
	}
	p.checkIsolation(now)
}

// probe probes pe directly and, if that fails, through up to maxRelays
// other members.
func (p *prober) probe(pe *peerState) {
	defer func() {
		p.mu.Lock()
		pe.probing = false
		p.mu.Unlock()
	}()
	sent := time.Now()
	res, err := p.n.system.Root.RequestFuture(actor.NewPID(pe.address, probeName),
		&orderpb.ProbeRequest{FromMemberId: p.n.system.ID, CheckMemberId: p.n.system.ID}, p.timeout).Result()
	reply, ok := res.(*orderpb.ProbeReply)
	p.mu.Lock()
	p.stats.Sent++
	if err == nil && ok {
		pe.lastDirect, pe.lastReached, pe.rtt = time.Now(), time.Now(), time.Since(sent)
		if pe.failures >= suspectAfter {
			p.log.Info("member reachable again", slog.String("member_id", pe.id), slog.String("address", pe.address),
				slog.Duration("round_trip", pe.rtt.Round(time.Microsecond)))
		}
		pe.failures, pe.direct = 0, true
		p.mu.Unlock()
		p.compare(pe, reply.GetMemberId(), reply.GetViewDigest(), reply.GetMemberIds(), reply.GetCheckedBlocked())
		return
	}
	p.stats.Failed++
	pe.failures++
	pe.direct = false
	if pe.failures == suspectAfter {
		p.log.Warn("member unreachable over the node-to-node port: requests to its actors fail fast until it answers or leaves the view",
			slog.String("member_id", pe.id), slog.String("address", pe.address), slog.Int("failed_probes", pe.failures),
			slog.Duration("probe_timeout", p.timeout))
	}
	var relays []string
	for _, o := range p.peers {
		if o != pe && o.direct && len(relays) < maxRelays {
			relays = append(relays, o.address)
		}
	}
	p.stats.Indirect += uint64(len(relays))
	p.mu.Unlock()
	if d := p.n.deaths; d != nil {
		// A probe that got no answer may mean the peer's process is gone
		// without this member having seen a connection drop: protoactor
		// publishes EndpointTerminatedEvent only for a connection that was
		// up, so a peer killed while this member's endpoint writer was
		// still connecting to it (a member that just started) went
		// unnoticed until its lease ran out (1.9 s, about one kill in
		// forty in the failover-distribution drill). The death watch dials
		// its port, which proves nothing unless it is refused.
		d.suspect(pe.address)
	}
	p.relay(pe, relays)
}

// relay asks the relays to probe pe, all at once, and records the first
// success.
func (p *prober) relay(pe *peerState, relays []string) {
	if len(relays) == 0 {
		return
	}
	type answer struct{ r *orderpb.ProbeReply }
	ch := make(chan answer, len(relays))
	for _, addr := range relays {
		go func() {
			res, err := p.n.system.Root.RequestFuture(actor.NewPID(addr, probeName), &orderpb.ProbeRequest{
				FromMemberId: p.n.system.ID, RelayTo: pe.address, RelayTimeoutMs: p.timeout.Milliseconds(), CheckMemberId: p.n.system.ID,
			}, 2*p.timeout+p.timeout/2).Result()
			r, _ := res.(*orderpb.ProbeReply)
			if err != nil {
				r = nil
			}
			ch <- answer{r}
		}()
	}
	for range relays {
		a := <-ch
		if a.r == nil || !a.r.GetRelayOk() || a.r.GetRelayMemberId() != pe.id {
			continue
		}
		p.mu.Lock()
		pe.lastReached = time.Now()
		p.mu.Unlock()
		p.compare(pe, a.r.GetRelayMemberId(), a.r.GetRelayViewDigest(), a.r.GetRelayMemberIds(), a.r.GetRelayCheckedBlocked())
		return
	}
}

// compare checks a peer's view against this member's: a divergence that
// lasts DivergenceBound is reported once and healed. blocked says whether
// the peer blocked this member's id.
func (p *prober) compare(pe *peerState, id, digest string, members []string, blocked bool) {
	mine := p.n.probeReply()
	now := time.Now()
	p.mu.Lock()
	pe.digest, pe.members = digest, members
	if digest == mine.GetViewDigest() {
		if pe.reported {
			p.log.Info("member views agree again", slog.String("member_id", id), slog.String("view_digest", digest))
		}
		pe.diverged, pe.reported = time.Time{}, false
		p.mu.Unlock()
		return
	}
	if pe.diverged.IsZero() {
		pe.diverged = now
	}
	if now.Sub(pe.diverged) < p.diverge || pe.reported {
		p.mu.Unlock()
		return
	}
	pe.reported = true
	p.stats.Divergences++
	p.mu.Unlock()
	// Missing from the peer's view alone may be a listing the peer has not
	// made yet (or cannot make): only a block is for good.
	dropped := blocked && !slices.Contains(members, p.n.system.ID)
	p.log.Warn("member views diverge: listing the registry again",
		slog.String("peer_member_id", id), slog.String("peer_address", pe.address),
		slog.String("view_digest", mine.GetViewDigest()), slog.String("peer_view_digest", digest),
		slog.String("member_ids", strings.Join(mine.GetMemberIds(), ",")), slog.String("peer_member_ids", strings.Join(members, ",")),
		slog.Duration("diverged_for", now.Sub(pe.diverged).Round(time.Millisecond)), slog.Bool("dropped_by_peer", dropped))
	if rl, ok := p.n.cfg.Provider.(Relister); ok {
		rl.Relist()
	}
	if dropped {
		p.isolate(fmt.Sprintf("member %s (%s) dropped this member from its view %v ago and blocked its id (its members: %s); protoactor never readmits a dropped member id",
			id, pe.address, now.Sub(pe.diverged).Round(time.Millisecond), strings.Join(members, ",")))
	}
}

// checkIsolation fences this member when it could not reach a majority of
// the other members for longer than the bound.
func (p *prober) checkIsolation(now time.Time) {
	p.mu.Lock()
	others, cut := len(p.peers), 0
	var names []string
	for _, pe := range p.peers {
		last := pe.lastReached
		if last.Before(pe.since) {
			last = pe.since
		}
		if now.Sub(last) > p.bound {
			cut++
			names = append(names, pe.id+"@"+pe.address)
		}
	}
	p.mu.Unlock()
	if others == 0 || cut*2 <= others {
		return
	}
	slices.Sort(names)
	p.isolate(fmt.Sprintf("reached %d of the %d other members for more than %v (directly or through the others); unreachable: %s",
		others-cut, others, p.bound, strings.Join(names, ",")))
}

// isolate marks this member isolated (it stops serving at once) and calls
// OnIsolated once.
func (p *prober) isolate(reason string) {
	p.mu.Lock()
	if p.isolated != "" {
		p.mu.Unlock()
		return
	}
	p.isolated = reason
	p.mu.Unlock()
	p.log.Error("member isolated: it stops serving and fences itself", slog.String("member_id", p.n.system.ID), slog.String("reason", reason))
	if f := p.n.cfg.OnIsolated; f != nil {
		go f(reason)
	}
}

// suspect reports whether the member at address is suspect.
func (p *prober) suspect(address string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.peers[address]
	return pe != nil && pe.failures >= suspectAfter
}

// isolatedReason is why this member is isolated, "" if it is not.
func (p *prober) isolatedReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isolated
}

// snapshot is the reachability of every peer, sorted by address.
func (p *prober) snapshot() []PeerReachability {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PeerReachability, 0, len(p.peers))
	for _, pe := range p.peers {
		out = append(out, PeerReachability{
			ID: pe.id, Address: pe.address, Direct: pe.direct,
			Reachable:   pe.direct || (!pe.lastReached.IsZero() && pe.lastReached.After(pe.lastDirect) && time.Since(pe.lastReached) <= 2*p.interval+p.timeout*3),
			Suspect:     pe.failures >= suspectAfter,
			RoundTrip:   pe.rtt,
			LastReached: pe.lastReached,
			ViewDigest:  pe.digest,
		})
	}
	slices.SortFunc(out, func(a, b PeerReachability) int { return strings.Compare(a.Address, b.Address) })
	return out
}

func (p *prober) probeStats() ProbeStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.FailedFast = p.failedFast.Load()
	return s
}

// close stops the probe loop and waits for it (probes in flight end with
// their timeouts on their own).
func (p *prober) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}
