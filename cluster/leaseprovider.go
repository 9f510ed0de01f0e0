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

// LeaseOptions configure a LeaseProvider. The zero value of each field
// takes its default.
type LeaseOptions struct {
	// NodeID is the operator's name of the node (--node-id), published in
	// the member record.
	NodeID string
	// TTL is the lease: a member whose record was not renewed for TTL is
	// dropped by the others, and fences itself (default 3 s).
	TTL time.Duration
	// Heartbeat is the renewal interval (default TTL/3; must be below TTL).
	Heartbeat time.Duration
	// Poll is how often the registry is listed to update the member view
	// (default 500 ms). A dead member leaves the others' view within about
	// TTL + Poll.
	Poll time.Duration
	// Timeout bounds one registry call (default Heartbeat).
	Timeout time.Duration
	// Logger receives membership changes and registry errors (default: discard).
	Logger *slog.Logger
	// OnFenced, if set, is called once when the provider fences itself,
	// with the reason. It runs on the provider's goroutine after the
	// membership loop has stopped, so it may call Shutdown or stop the node
	// (Shutdown does not wait for OnFenced to return). The caller is expected
	// to stop this member and start a new one (a new incarnation).
	OnFenced func(reason string)
}

func (o *LeaseOptions) setDefaults() {
	if o.TTL == 0 {
		o.TTL = 3 * time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = o.TTL / 3
	}
	if o.Poll == 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = o.Heartbeat
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
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
// a member registers a record with a lease, renews it every Heartbeat and
// lists the registry every Poll, handing the alive set to protoactor's
// MemberList (sorted by member id) whenever it changes.
//
// Self-fencing: when a renewal fails with registry.ErrLeaseLost, or no renewal
// succeeded within TTL of being sent (measured on the monotonic clock, so a
// process that was SIGSTOPped notices it as soon as it runs again), the
// provider marks itself fenced: it stops renewing and polling, removes what
// is left of its record, reports Fenced() == true and Lease() invalid, and
// calls OnFenced once. It never registers the same member id again: the
// other members have blocked that id for good (protoactor issue #1083), so
// rejoining takes a new actor system and a new provider.
//
// One LeaseProvider serves one incarnation: StartMember or StartClient once,
// then Shutdown (idempotent). The provider owns one goroutine, stopped by
// Shutdown. protoactor calls Shutdown only on a graceful cluster shutdown, so
// whoever shuts a cluster down non-gracefully must call Shutdown(false)
// itself. The query methods are safe for concurrent use.
type LeaseProvider struct {
	reg  registry.Registry
	opts LeaseOptions
	log  *slog.Logger

	stop     chan struct{} // closed by Shutdown
	loopDone chan struct{} // closed when the loop returns
	pause    chan time.Duration

	mu       sync.Mutex
	started  bool
	member   bool // started with StartMember (else client)
	shutdown bool
	self     registry.MemberRecord
	expires  time.Time // local lease expiry: last successful renewal sent + TTL
	fenced   string    // reason, "" while not fenced
	view     []registry.MemberRecord
	viewKey  string
	pc       *pcluster.Cluster
}

var _ pcluster.ClusterProvider = (*LeaseProvider)(nil)

// NewLeaseProvider returns a provider over reg. Options are validated by
// StartMember/StartClient.
func NewLeaseProvider(reg registry.Registry, opts LeaseOptions) *LeaseProvider {
	opts.setDefaults()
	return &LeaseProvider{
		reg:      reg,
		opts:     opts,
		log:      opts.Logger.With(slog.String("component", "membership"), slog.String("node_id", opts.NodeID)),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		pause:    make(chan time.Duration),
	}
}

// StartMember registers this member (id = the actor system id, address =
// the advertised remote address, the cluster's kinds), publishes the
// initial member view and starts the membership goroutine. It is called by
// protoactor's Cluster.StartMember; an error there makes protoactor panic,
// which cluster.Start turns into an error.
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
		StartedAt: time.Now().UTC().Truncate(time.Millisecond),
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

	sent := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	err = p.reg.Register(ctx, rec, p.opts.TTL)
	cancel()
	if err != nil {
		p.mu.Lock()
		p.shutdown = true
		p.mu.Unlock()
		close(p.loopDone)
		return fmt.Errorf("membership: register member %s: %w", rec.MemberID, err)
	}
	p.mu.Lock()
	p.expires = sent.Add(p.opts.TTL)
	p.mu.Unlock()
	p.log.Info("registered cluster member", slog.String("member_id", rec.MemberID), slog.String("address", rec.Address()),
		slog.Duration("ttl", p.opts.TTL))
	p.refresh()
	go p.run()
	return nil
}

// StartClient starts polling the registry without registering: the member
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
	p.refresh()
	go p.run()
	return nil
}

// Shutdown stops the membership goroutine and waits for it. With graceful
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
	started, member, fenced, self := p.started, p.member, p.fenced != "", p.self
	p.mu.Unlock()

	close(p.stop)
	if !started {
		return nil
	}
	<-p.loopDone
	if !graceful || !member || fenced {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
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

// SimulatePause freezes the membership goroutine for d, as SIGSTOP freezes
// a whole process: no renewal and no poll happen meanwhile, while the
// monotonic clock runs on. It is a test hook (clustertest.Harness.Pause);
// it returns once the goroutine is frozen, or at once if it is not running.
func (p *LeaseProvider) SimulatePause(d time.Duration) {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return
	}
	select {
	case p.pause <- d:
	case <-p.loopDone:
	case <-p.stop:
	}
}

// run is the membership goroutine: renew every Heartbeat, poll every Poll,
// fence when the lease is lost.
func (p *LeaseProvider) run() {
	reason := p.loop()
	close(p.loopDone)
	if reason != "" && p.opts.OnFenced != nil {
		p.opts.OnFenced(reason)
	}
}

func (p *LeaseProvider) loop() (fenceReason string) {
	p.mu.Lock()
	member := p.member
	p.mu.Unlock()
	var renewC <-chan time.Time
	if member {
		hb := time.NewTicker(p.opts.Heartbeat)
		defer hb.Stop()
		renewC = hb.C
	}
	poll := time.NewTicker(p.opts.Poll)
	defer poll.Stop()
	for {
		select {
		case <-p.stop:
			return ""
		case d := <-p.pause:
			t := time.NewTimer(d)
			select {
			case <-p.stop:
				t.Stop()
				return ""
			case <-t.C:
			}
		case <-renewC:
			if r := p.checkLease(); r != "" {
				return p.fence(r)
			}
			if r := p.renew(); r != "" {
				return p.fence(r)
			}
		case <-poll.C:
			if member {
				if r := p.checkLease(); r != "" {
					return p.fence(r)
				}
			}
			p.refresh()
		}
	}
}

// checkLease returns a fence reason when the local lease ran out.
func (p *LeaseProvider) checkLease() string {
	p.mu.Lock()
	expires := p.expires
	p.mu.Unlock()
	if now := time.Now(); !now.Before(expires) {
		return fmt.Sprintf("no lease renewal succeeded within the ttl %v (lease expired %v ago)",
			p.opts.TTL, now.Sub(expires).Round(time.Millisecond))
	}
	return ""
}

// renew renews the lease; it returns a fence reason when the registry
// says the lease is lost. Other errors are retried at the next heartbeat
// until the local lease runs out.
func (p *LeaseProvider) renew() string {
	p.mu.Lock()
	self := p.self
	p.mu.Unlock()
	sent := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	err := p.reg.Renew(ctx, self, p.opts.TTL)
	cancel()
	switch {
	case err == nil:
		p.mu.Lock()
		if exp := sent.Add(p.opts.TTL); exp.After(p.expires) {
			p.expires = exp
		}
		p.mu.Unlock()
		return ""
	case errors.Is(err, registry.ErrLeaseLost):
		return "registry: " + err.Error()
	default:
		p.log.Warn("lease renewal failed; retrying", slog.String("member_id", self.MemberID), slog.Any("error", err))
		return ""
	}
}

// fence marks the provider fenced and removes what is left of the record,
// so the others drop this member now rather than at the lease's end.
func (p *LeaseProvider) fence(reason string) string {
	p.mu.Lock()
	p.fenced = reason
	self := p.self
	p.mu.Unlock()
	p.log.Error("membership lease lost: member fenced; it must stop serving and rejoin as a new incarnation",
		slog.String("member_id", self.MemberID), slog.String("reason", reason))
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	defer cancel()
	if err := p.reg.Deregister(ctx, self); err != nil {
		p.log.Warn("fenced member could not remove its record; it expires with its lease",
			slog.String("member_id", self.MemberID), slog.Any("error", err))
	}
	return reason
}

// refresh lists the registry and hands the alive set to protoactor when it
// changed. A failed list keeps the current view: members are only dropped
// when their record is gone.
func (p *LeaseProvider) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	recs, err := p.reg.List(ctx)
	cancel()
	if err != nil {
		p.log.Warn("listing cluster members failed; keeping the current view", slog.Any("error", err))
		return
	}

	p.mu.Lock()
	if p.member && p.fenced == "" {
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
			Id: r.MemberID, Host: r.Host, Port: int32(r.Port), Kinds: append([]string(nil), r.Kinds...),
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
