package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

// Lease arithmetic. TTL is the lease (LeaseOptions.TTL; --lease-ttl, 2 s
// on a node); the figures in brackets are those of a 2 s TTL.
//
//   - The lease runs from the send time of the last acknowledged call that
//     set it (the registration, then each renewal), on the monotonic clock:
//     local_expiry = send_time_of_last_ack + TTL. The backend starts the
//     same TTL when it processes that call, which is at or after its send
//     time, so backend_expiry >= local_expiry: this member stops serving
//     (Lease invalid, then fences) no later than the moment its record can
//     expire and the others may drop it and take its actors over. Only
//     rates are involved (each side measures one TTL on its own monotonic
//     clock; no timestamps are compared), so clock drift costs at most
//     drift_rate * TTL (0.2 ms at 100 ppm), taken out of the one-way
//     latency of the call, and the others add their Poll on top.
//   - Renewals run on their own goroutine, every Heartbeat = TTL/4 (500 ms)
//     counted from the previous renewal's send time, one at a time, never
//     behind a listing (the member view is listed on another goroutine).
//     A failed renewal is retried Heartbeat/4 (125 ms) after it was sent,
//     at once if it failed by timing out.
//   - Renew times out after Timeout = TTL/2 (1 s), and at local_expiry,
//     past which its answer is of no use. List and Deregister, which no
//     lease depends on and which take two or three round trips, time out
//     after TTL; Register after 3TTL/4 (below).
//   - No fence while renewals are answered: a renewal sent at s and
//     acknowledged at s+rtt is followed by one sent at s+max(TTL/4, rtt),
//     acknowledged before s+TTL as long as rtt < TTL/2 (1 s): backend round
//     trips up to TTL/2 are carried (the registries renew in one round
//     trip). At rtt <= TTL/4 (500 ms) a renewal may even hang to its
//     timeout (sent at s+TTL/4, given up at s+3TTL/4) and the retry still
//     lands before s+TTL.
//   - Fence: when the registry says the record is gone (ErrLeaseLost), or
//     when local_expiry passes without an acknowledged renewal: between
//     3TTL/4 and TTL (1.5-2 s) after the backend stopped answering, at once
//     after a pause (SIGSTOP) longer than the remaining lease.
//   - Registration: the provider first lists the registry (which also
//     opens the connection: dial, handshake), then registers, which the
//     registries do in one round trip (go-redis spends a second one on the
//     first transaction of a connection), so the lease clock (the register
//     call's send time) starts about when the backend sets the TTL, not
//     before a slow exchange. Register times out after 3TTL/4 (1.5 s):
//     two round trips of up to TTL/4 plus the first renewal, sent at once
//     when Heartbeat has passed since the registration was sent, still
//     land before the lease's end.
//   - The others drop this member when its record expired in the backend
//     (at most TTL after the backend processed its last renewal), at their
//     next List, within Poll.

// LeaseOptions configure a LeaseProvider. The zero value of each field
// takes its default; see "Lease arithmetic" above for how they relate.
type LeaseOptions struct {
	// NodeID is the operator's name of the node (--node-id), published in
	// the member record.
	NodeID string
	// TTL is the lease: a member whose record was not renewed for TTL is
	// dropped by the others, and fences itself (default 3 s).
	TTL time.Duration
	// Heartbeat is the renewal interval (default TTL/4; must be below TTL).
	Heartbeat time.Duration
	// Poll is the pause between two listings of the registry that update
	// the member view (default 500 ms). A dead member leaves the others'
	// view within about TTL + Poll.
	Poll time.Duration
	// Timeout bounds a renewal (default TTL/2; must be below TTL).
	// Registrations are bounded by 3TTL/4, listings and deregistrations by
	// TTL.
	Timeout time.Duration
	// Logger receives membership changes and registry errors (default: discard).
	Logger *slog.Logger
	// Now is the wall clock of the record's StartedAt, which the others
	// read (default time.Now). The lease itself never reads it: it runs on
	// the monotonic clock.
	Now func() time.Time
	// OnFenced, if set, is called once when the provider fences itself,
	// with the reason. It runs on the provider's goroutine after the
	// membership goroutines have stopped, so it may call Shutdown or stop
	// the node (Shutdown does not wait for OnFenced to return). The caller
	// is expected to stop this member and start a new one (a new
	// incarnation).
	OnFenced func(reason string)
}

func (o *LeaseOptions) setDefaults() {
	if o.TTL == 0 {
		o.TTL = 3 * time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = o.TTL / 4
	}
	if o.Poll == 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = o.TTL / 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate checks the options after defaults.
func (o LeaseOptions) Validate() error {
	o.setDefaults()
	switch {
	case o.TTL < 0:
		return fmt.Errorf("lease ttl %v must be positive", o.TTL)
	case o.Heartbeat <= 0 || o.Heartbeat >= o.TTL:
		return fmt.Errorf("lease heartbeat %v must be positive and below the ttl %v", o.Heartbeat, o.TTL)
	case o.Poll <= 0:
		return fmt.Errorf("membership poll interval %v must be positive", o.Poll)
	case o.Timeout <= 0 || o.Timeout >= o.TTL:
		return fmt.Errorf("registry call timeout %v must be positive and below the ttl %v", o.Timeout, o.TTL)
	}
	return nil
}

// ErrProviderUsed is returned by LeaseProvider.StartMember and StartClient
// when the provider was already started: a provider serves one incarnation
// for its lifetime.
var ErrProviderUsed = errors.New("lease provider already started")

// LeaseProvider is a protoactor cluster.ClusterProvider over a registry.Registry:
// a member registers a record with a lease and renews it every Heartbeat
// on one goroutine, and lists the registry every Poll on another, handing
// the alive set to protoactor's MemberList (sorted by member id) whenever
// it changes.
//
// Self-fencing: when a renewal fails with registry.ErrLeaseLost, or no renewal
// was acknowledged before the lease it measured ran out (send time of the
// last acknowledged renewal + TTL, on the monotonic clock, so a process
// that was SIGSTOPped notices it as soon as it runs again), the provider
// marks itself fenced: it stops renewing and listing, removes what is left
// of its record, reports Fenced() == true and Lease() invalid, and calls
// OnFenced once. It never registers the same member id again: the other
// members have blocked that id for good (protoactor issue #1083), so
// rejoining takes a new actor system and a new provider.
//
// One LeaseProvider serves one incarnation: StartMember or StartClient once,
// then Shutdown (idempotent). The provider owns its goroutines (a renewer
// for a member, a poller, and the one that waits for them), stopped by
// Shutdown. protoactor calls Shutdown only on a graceful cluster shutdown,
// so whoever shuts a cluster down non-gracefully must call Shutdown(false)
// itself. The query methods are safe for concurrent use.
type LeaseProvider struct {
	reg  registry.Registry
	opts LeaseOptions
	log  *slog.Logger

	stop       chan struct{} // closed by Shutdown
	loopDone   chan struct{} // closed when the goroutines have returned
	pauseRenew chan time.Duration
	pausePoll  chan time.Duration
	relist     chan struct{} // Relist: list at once (buffered, one pending)

	mu       sync.Mutex
	started  bool
	member   bool // started with StartMember (else client)
	shutdown bool
	self     registry.MemberRecord
	expires  time.Time // local lease expiry: send time of the last acknowledged renewal + TTL
	fenced   string    // reason, "" while not fenced
	view     []registry.MemberRecord
	viewKey  string
	pc       *pcluster.Cluster
	// evicted are the members this one found dead (Evict): left out of
	// every view until the registry's listing no longer has them.
	evicted map[string]struct{}
}

var _ pcluster.ClusterProvider = (*LeaseProvider)(nil)

// NewLeaseProvider returns a provider over reg. Options are validated by
// StartMember/StartClient.
func NewLeaseProvider(reg registry.Registry, opts LeaseOptions) *LeaseProvider {
	opts.setDefaults()
	return &LeaseProvider{
		reg:        reg,
		opts:       opts,
		log:        opts.Logger.With(slog.String("component", "membership")), // the caller's logger names the node
		stop:       make(chan struct{}),
		loopDone:   make(chan struct{}),
		pauseRenew: make(chan time.Duration),
		pausePoll:  make(chan time.Duration),
		relist:     make(chan struct{}, 1),
	}
}

// StartMember lists the registry (opening the connection), registers this
// member (id = the actor system id, address = the advertised remote
// address, the cluster's kinds), publishes the initial member view and
// starts the renewal and listing goroutines. It is called by protoactor's
// Cluster.StartMember; an error there makes protoactor panic, which
// cluster.Start turns into an error.
func (p *LeaseProvider) StartMember(c *pcluster.Cluster) error {
	if err := p.opts.Validate(); err != nil {
		return err
	}
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("membership: remote address: %w", err)
	}
	rec := registry.MemberRecord{
		MemberID:  c.ActorSystem.ID,
		NodeID:    p.opts.NodeID,
		Host:      host,
		Port:      port,
		Kinds:     c.GetClusterKinds(),
		StartedAt: p.opts.Now().UTC().Truncate(time.Millisecond),
	}.Canonical()
	if err := rec.Validate(); err != nil {
		return err
	}

	p.mu.Lock()
	if p.started || p.shutdown {
		p.mu.Unlock()
		return ErrProviderUsed
	}
	p.started, p.member, p.self, p.pc = true, true, rec, c
	p.mu.Unlock()

	// The listing comes first: it opens (and warms) the connection, so that
	// the registration below is one round trip from its send time.
	recs, listErr := p.list()
	sent := time.Now()
	registerTimeout := p.opts.TTL * 3 / 4
	ctx, cancel := context.WithTimeout(context.Background(), registerTimeout)
	err = p.reg.Register(ctx, rec, p.opts.TTL)
	cancel()
	if err != nil {
		p.mu.Lock()
		p.shutdown = true
		p.mu.Unlock()
		close(p.loopDone)
		return fmt.Errorf("membership: register member %s (within %v): %w", rec.MemberID, registerTimeout, err)
	}
	acked := time.Now()
	p.mu.Lock()
	p.expires = sent.Add(p.opts.TTL)
	p.mu.Unlock()
	p.log.Info("registered cluster member", slog.String("member_id", rec.MemberID), slog.String("address", rec.Address()),
		slog.Duration("ttl", p.opts.TTL), slog.Duration("round_trip", acked.Sub(sent).Round(time.Millisecond)))
	halt := make(chan struct{})
	renewDone := make(chan string, 1)
	go func() { renewDone <- p.renewLoop(sent, halt) }()
	if listErr == nil {
		p.publish(recs)
	}
	go p.run(renewDone, halt, listErr == nil)
	return nil
}

// StartClient starts listing the registry without registering: the member
// view holds the other members only.
func (p *LeaseProvider) StartClient(c *pcluster.Cluster) error {
	if err := p.opts.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.started || p.shutdown {
		p.mu.Unlock()
		return ErrProviderUsed
	}
	p.started, p.pc = true, c
	p.mu.Unlock()
	recs, err := p.list()
	if err == nil {
		p.publish(recs)
	}
	go p.run(nil, make(chan struct{}), err == nil)
	return nil
}

// Shutdown stops the membership goroutines and waits for them. With graceful
// set, it also deletes this member's record so the others drop it at their
// next poll; without, the record stays until its lease expires (what a
// crash looks like). A fenced provider has nothing to delete. Idempotent;
// safe to call from OnFenced.
func (p *LeaseProvider) Shutdown(graceful bool) error {
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		return nil
	}
	p.shutdown = true
	started, member := p.started, p.member
	p.mu.Unlock()

	close(p.stop)
	if !started {
		return nil
	}
	<-p.loopDone
	p.mu.Lock()
	fenced, self := p.fenced != "", p.self
	p.mu.Unlock()
	if !graceful || !member || fenced {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.TTL)
	defer cancel()
	if err := p.reg.Deregister(ctx, self); err != nil {
		p.log.Warn("deregister failed; the record expires with its lease", slog.String("member_id", self.MemberID), slog.Any("error", err))
		return fmt.Errorf("membership: deregister %s: %w", self.MemberID, err)
	}
	p.log.Info("deregistered cluster member", slog.String("member_id", self.MemberID))
	return nil
}

// Fenced reports whether the provider fenced itself (its lease was lost).
func (p *LeaseProvider) Fenced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fenced != ""
}

// Lease reports whether this member's lease is valid now, and until when
// it is valid as far as this member knows (the last successful renewal
// sent + TTL). The request path should refuse to serve when valid is false:
// the others may already have dropped this member and moved its actors.
// Always invalid for a client, before StartMember, after fencing or
// Shutdown.
func (p *LeaseProvider) Lease() (valid bool, expires time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	valid = p.member && !p.shutdown && p.fenced == "" && time.Now().Before(p.expires)
	return valid, p.expires
}

// MemberID is this member's id (the actor system id), "" before StartMember.
func (p *LeaseProvider) MemberID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self.MemberID
}

// Records returns the member records of the current view (sorted by
// member id), including this member while its lease is held.
func (p *LeaseProvider) Records() []registry.MemberRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]registry.MemberRecord, len(p.view))
	for i, r := range p.view {
		r.Kinds = append([]string(nil), r.Kinds...)
		out[i] = r
	}
	return out
}

// NodeIDOf returns the node id of a member in the current view, "" if the
// member is unknown.
func (p *LeaseProvider) NodeIDOf(memberID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.view {
		if r.MemberID == memberID {
			return r.NodeID
		}
	}
	if p.self.MemberID == memberID {
		return p.self.NodeID
	}
	return ""
}

// Relist makes the listing goroutine list the registry at once and hand
// the view to protoactor even if it did not change (Relister): a member
// whose view diverged from a peer's calls it. It never blocks.
func (p *LeaseProvider) Relist() {
	p.mu.Lock()
	p.viewKey = ""
	p.mu.Unlock()
	select {
	case p.relist <- struct{}{}:
	default:
	}
}

// ListMembers lists the registry within ctx, without touching the view.
func (p *LeaseProvider) ListMembers(ctx context.Context) ([]registry.MemberRecord, error) {
	return p.reg.List(ctx)
}

// SimulatePause freezes the membership goroutines for d, as SIGSTOP
// freezes a whole process: no renewal and no listing happen meanwhile,
// while the monotonic clock runs on. It is a test hook
// (clustertest.Harness.Pause); it returns once the goroutines are frozen
// (each after the call it is making), or at once if they are not running.
func (p *LeaseProvider) SimulatePause(d time.Duration) {
	p.mu.Lock()
	started, member := p.started, p.member
	p.mu.Unlock()
	if !started {
		return
	}
	chans := []chan time.Duration{p.pausePoll}
	if member {
		chans = append(chans, p.pauseRenew)
	}
	for _, ch := range chans {
		select {
		case ch <- d:
		case <-p.loopDone:
			return
		case <-p.stop:
			return
		}
	}
}

// sleep waits d unless the provider stops or halt closes first; it reports
// whether it waited d.
func (p *LeaseProvider) sleep(d time.Duration, halt <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.stop:
		return false
	case <-halt:
		return false
	case <-t.C:
		return true
	}
}

// run owns the membership goroutines: it starts the poller, waits for the
// renewer (a member) or Shutdown (a client), and fences when the renewer
// reports the lease lost. listed says whether the initial view was
// published (else the poller lists at once).
func (p *LeaseProvider) run(renewDone <-chan string, halt chan struct{}, listed bool) {
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		p.pollLoop(halt, listed)
	}()
	var reason string
	if renewDone != nil {
		reason = <-renewDone
	} else {
		<-p.stop
	}
	if reason != "" {
		p.mu.Lock()
		p.fenced = reason
		p.mu.Unlock()
	}
	close(halt)
	<-pollDone
	if reason != "" {
		p.deregisterFenced(reason)
	}
	close(p.loopDone)
	if reason != "" && p.opts.OnFenced != nil {
		p.opts.OnFenced(reason)
	}
}

// renewLoop renews the lease every Heartbeat from the registration sent
// at registered until Shutdown ("") or until the lease is lost (the fence
// reason). halt is closed by run once the loop returned; the loop itself
// never sees it closed but uses it for its sleeps.
func (p *LeaseProvider) renewLoop(registered time.Time, halt <-chan struct{}) string {
	p.mu.Lock()
	self := p.self
	p.mu.Unlock()
	retry := max(p.opts.Heartbeat/4, time.Millisecond)
	next := registered.Add(p.opts.Heartbeat)
	failures := 0
	for {
		expires := p.expiry()
		wake := next
		if expires.Before(wake) {
			wake = expires
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-p.stop:
			t.Stop()
			return ""
		case d := <-p.pauseRenew:
			t.Stop()
			if !p.sleep(d, halt) {
				return ""
			}
			continue
		case <-t.C:
		}
		sent := time.Now()
		if !sent.Before(expires) {
			return fmt.Sprintf("no lease renewal was acknowledged within the ttl %v (lease expired %v ago, %d renewals failed)",
				p.opts.TTL, sent.Sub(expires).Round(time.Millisecond), failures)
		}
		if sent.Before(next) {
			continue // woke early (timer slack)
		}
		ctx, cancel := p.callContext(min(p.opts.Timeout, expires.Sub(sent)))
		err := p.reg.Renew(ctx, self, p.opts.TTL)
		cancel()
		switch {
		case p.stopped():
			return ""
		case err == nil:
			p.mu.Lock()
			if exp := sent.Add(p.opts.TTL); exp.After(p.expires) {
				p.expires = exp
			}
			p.mu.Unlock()
			p.log.Debug("lease renewed", slog.String("member_id", self.MemberID),
				slog.Duration("round_trip", time.Since(sent).Round(time.Millisecond)))
			if failures > 0 {
				p.log.Info("lease renewal recovered", slog.String("member_id", self.MemberID), slog.Int("failed_renewals", failures))
			}
			failures = 0
			next = sent.Add(p.opts.Heartbeat)
		case errors.Is(err, registry.ErrLeaseLost):
			return "registry: " + err.Error()
		default:
			failures++
			lvl := slog.LevelDebug
			if failures == 1 {
				lvl = slog.LevelWarn
			}
			p.log.Log(context.Background(), lvl, "lease renewal failed; retrying until the lease runs out",
				slog.String("member_id", self.MemberID), slog.Int("failures", failures),
				slog.Duration("lease_left", time.Until(p.expiry()).Round(time.Millisecond)), slog.Any("error", err))
			next = sent.Add(retry) // at once if the call timed out
		}
	}
}

// expiry is the local lease expiry.
func (p *LeaseProvider) expiry() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expires
}

// pollLoop lists the registry Poll after the end of each listing until
// Shutdown or halt; with listed unset it lists at once.
func (p *LeaseProvider) pollLoop(halt <-chan struct{}, listed bool) {
	wait := p.opts.Poll
	if !listed {
		wait = 0
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-p.stop:
			t.Stop()
			return
		case <-halt:
			t.Stop()
			return
		case d := <-p.pausePoll:
			t.Stop()
			if !p.sleep(d, halt) {
				return
			}
			wait = 0
			continue
		case <-p.relist:
			t.Stop()
		case <-t.C:
		}
		wait = p.opts.Poll
		recs, err := p.list()
		if err != nil {
			p.log.Warn("listing cluster members failed; keeping the current view", slog.Any("error", err))
			continue
		}
		select {
		case <-halt: // fenced meanwhile: publish nothing more
			return
		default:
		}
		p.publish(recs)
	}
}

// deregisterFenced logs the fence and removes what is left of the record,
// so the others drop this member now rather than at the lease's end.
func (p *LeaseProvider) deregisterFenced(reason string) {
	p.mu.Lock()
	self := p.self
	p.mu.Unlock()
	p.log.Error("membership lease lost: member fenced; it must stop serving and rejoin as a new incarnation",
		slog.String("member_id", self.MemberID), slog.String("reason", reason))
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.TTL)
	defer cancel()
	if err := p.reg.Deregister(ctx, self); err != nil {
		p.log.Warn("fenced member could not remove its record; it expires with its lease",
			slog.String("member_id", self.MemberID), slog.Any("error", err))
	}
}

// list lists the registry within TTL.
func (p *LeaseProvider) list() ([]registry.MemberRecord, error) {
	ctx, cancel := p.callContext(p.opts.TTL)
	defer cancel()
	return p.reg.List(ctx)
}

// callContext bounds one registry call of the membership goroutines: it
// ends after timeout or when Shutdown is called, whichever comes first.
func (p *LeaseProvider) callContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	done := make(chan struct{})
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		case <-done:
		}
	}()
	return ctx, func() { close(done); cancel() }
}

// stopped reports whether Shutdown was called.
func (p *LeaseProvider) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// publish hands the alive set recs to protoactor when it changed. A failed
// list keeps the current view (the caller does not publish): members are
// only dropped when their record is gone.
func (p *LeaseProvider) publish(recs []registry.MemberRecord) {
	p.mu.Lock()
	if p.fenced != "" {
		p.mu.Unlock()
		return // the fenced incarnation is on its way out: its view stays
	}
	if p.member {
		// This member is alive as long as its lease is: a List that raced
		// with a renewal must not drop (and so block) ourselves.
		found := false
		for i := range recs {
			if recs[i].MemberID == p.self.MemberID {
				recs[i], found = p.self, true
			}
		}
		if !found {
			recs = append(recs, p.self)
		}
	}
	if len(p.evicted) > 0 {
		listed := make(map[string]struct{}, len(recs))
		kept := recs[:0]
		for _, r := range recs {
			listed[r.MemberID] = struct{}{}
			if _, gone := p.evicted[r.MemberID]; !gone {
				kept = append(kept, r)
			}
		}
		recs = kept
		for id := range p.evicted {
			if _, ok := listed[id]; !ok {
				delete(p.evicted, id) // its record is gone from the registry too
			}
		}
	}
	registry.SortRecords(recs)
	key := viewKey(recs)
	changed := key != p.viewKey
	p.view, p.viewKey = recs, key
	c := p.pc
	p.mu.Unlock()
	if !changed {
		return
	}

	members := make(pcluster.Members, 0, len(recs))
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		members = append(members, &pcluster.Member{
			// protoactor's Member.Address joins Host and Port with a bare
			// ':': an IPv6 host goes in brackets, so that it matches the
			// members' PID addresses ("[::1]:5001").
			Id: r.MemberID, Host: bracketHost(r.Host), Port: int32(r.Port), Kinds: append([]string(nil), r.Kinds...),
		})
		ids = append(ids, r.NodeID+"="+r.MemberID)
	}
	p.log.Info("cluster members changed", slog.Int("members", len(recs)), slog.String("member_ids", strings.Join(ids, ",")))
	c.MemberList.UpdateClusterTopology(members)
}

// viewKey identifies a member view: ids, addresses and kinds.
func viewKey(recs []registry.MemberRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.MemberID)
		b.WriteByte('@')
		b.WriteString(r.Address())
		b.WriteByte('[')
		b.WriteString(strings.Join(r.Kinds, ","))
		b.WriteString("];")
	}
	return b.String()
}

// Evict drops the member at address from this member's view now and
// deletes its record from the registry (in the background), so that the
// others drop it at their next listing instead of when its lease runs out.
// It is for a member whose process is known to be gone (see deathWatch:
// its node-to-node port refuses connections): a member that is alive after
// all finds its record gone at its next renewal and fences itself, the
// same path as an expired lease. It returns the evicted member's id, or
// false when no other member of the view has that address.
func (p *LeaseProvider) Evict(address, reason string) (string, bool) {
	p.mu.Lock()
	var victim registry.MemberRecord
	found := false
	for _, r := range p.view {
		if r.Address() == address && r.MemberID != p.self.MemberID {
			victim, found = r, true
		}
	}
	if !found || p.fenced != "" || p.shutdown {
		p.mu.Unlock()
		return "", false
	}
	if p.evicted == nil {
		p.evicted = map[string]struct{}{}
	}
	p.evicted[victim.MemberID] = struct{}{}
	recs := append([]registry.MemberRecord(nil), p.view...)
	p.mu.Unlock()
	p.log.Warn("cluster member is gone: dropped before its lease ends", slog.String("member_id", victim.MemberID),
		slog.String("member_node_id", victim.NodeID), slog.String("address", address), slog.String("reason", reason))
	p.publish(recs)
	go func() {
		ctx, cancel := p.callContext(p.opts.TTL)
		defer cancel()
		if err := p.reg.Deregister(ctx, victim); err != nil {
			p.log.Warn("could not remove the record of a member that is gone; it expires with its lease",
				slog.String("member_id", victim.MemberID), slog.Any("error", err))
		}
	}()
	return victim.MemberID, true
}
