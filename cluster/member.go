package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/backoff"
)

// ErrStarted is returned by Member.Start when the member was already
// started or stopped: a Member joins once for its lifetime.
var ErrStarted = errors.New("member already started")

// ProviderFunc returns the membership provider of a new incarnation; nil
// means a one-member cluster. A provider that fences itself must call
// fenced once, with the reason (LeaseOptions.OnFenced); the member then
// starts a new incarnation with a new provider. ctx bounds what the call
// does (connecting a registry, say), not the provider's life.
type ProviderFunc func(ctx context.Context, fenced func(reason string)) (pcluster.ClusterProvider, error)

// Leaser is the optional ability of a membership provider that holds a
// lease (LeaseProvider has it). A member whose provider has it refuses to
// serve while the lease is not valid, and lists the members from the
// provider's records (which carry node ids); without it a member always
// serves and lists protoactor's member view.
type Leaser interface {
	// Fenced reports whether the provider fenced itself.
	Fenced() bool
	// Lease reports whether this member's lease is valid now.
	Lease() (valid bool, expires time.Time)
	// Records is the provider's member view.
	Records() []registry.MemberRecord
}

var _ Leaser = (*LeaseProvider)(nil)

// MemberConfig configures a Member.
type MemberConfig struct {
	// Node configures every incarnation; its Provider is ignored (each
	// incarnation gets its own from NewProvider).
	Node Config
	// NewProvider makes the provider of each incarnation; nil means a
	// one-member cluster.
	NewProvider ProviderFunc
	// Secret, if set, returns the cluster secret of each incarnation
	// (Config.Secret); it is called after NewProvider (so it may read the
	// registry the provider opened). Nil keeps Node.Secret.
	Secret func(ctx context.Context) ([]byte, error)
	// PingTimeout bounds the answer of the placement actor in Check
	// (default 1 s).
	PingTimeout time.Duration
	// Rejoined, if set, is called after a new incarnation replaced a fenced
	// one (on the member's rejoin goroutine; it must not block).
	Rejoined func()
	// JoinTimeout bounds NewProvider during a rejoin (default 10 s).
	JoinTimeout time.Duration
	// Backoff spaces failed rejoins (default 200 ms to 5 s).
	Backoff backoff.Policy
	// Logger receives fencing and rejoins (default: Node.Logger).
	Logger *slog.Logger
	// Dial checks that this process can reach a member's node-to-node
	// address before an incarnation that follows an isolation fence
	// registers (default: a TCP connect within Node.ProbeTimeout).
	Dial func(ctx context.Context, address string) error
}

// Member is this process's cluster member across incarnations. protoactor
// never readmits a member id it dropped (issue #1083), so when the
// membership provider fences itself (the lease ran out: a pause, a cut-off
// registry) the member stops the fenced incarnation and starts a new one
// (a new actor system, a new provider) with capped backoff until one
// joins or Stop is called. Callers hold the Member for the process's
// lifetime and never see the incarnations change.
//
// Create it with NewMember, join with Start, leave with Stop. Its methods
// are safe for concurrent use, and safe (they refuse or report nothing)
// before Start, while no incarnation runs and after Stop.
type Member struct {
	cfg MemberConfig
	log *slog.Logger

	mu        sync.Mutex
	cur       *Node  // the running incarnation, nil while none runs
	lease     Leaser // the lease of the newest provider, nil without one
	gen       int    // incarnation counter: the newest provider's number
	started   bool
	stopped   bool
	leaving   bool // Stop runs: serve on while the lease is handed back
	fenced    bool // the newest incarnation fenced and no new one joined yet
	rejoining bool // the rejoin goroutine runs
	again     bool // the incarnation the rejoin goroutine is starting fenced
	cutOff    bool // the last fence was an isolation: check reachability before rejoining
	replaced  int  // the newest incarnation replace was called for
	// pastProbes sums the probe counts of the stopped incarnations, so that
	// the counters a scrape sees never go back.
	pastProbes ProbeStats
	stop       chan struct{}
	rejoin     sync.WaitGroup
	stopOnce   sync.Once
}

// NewMember returns a member that has not joined yet.
func NewMember(cfg MemberConfig) *Member {
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 10 * time.Second
	}
	if cfg.Backoff.Base <= 0 {
		cfg.Backoff.Base = 200 * time.Millisecond
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 5 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = cfg.Node.Logger
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Member{cfg: cfg, log: log, stop: make(chan struct{})}
}

// Start joins the cluster as the first incarnation. It returns an error
// (and leaves nothing running) when that incarnation cannot start; fencing
// later is handled by the member itself.
func (m *Member) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started || m.stopped {
		m.mu.Unlock()
		return ErrStarted
	}
	m.started = true
	m.mu.Unlock()
	n, gen, err := m.incarnate(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	switch {
	case m.stopped: // Stop ran meanwhile
		m.mu.Unlock()
		n.Stop(false)
		return ErrStopped
	case m.rejoining || m.gen != gen:
		// It fenced while it started: the rejoin goroutine is starting
		// (or started) its successor.
		m.mu.Unlock()
		n.Stop(false)
		return nil
	}
	m.cur = n
	m.mu.Unlock()
	return nil
}

// incarnate starts a new incarnation with a new provider and returns it
// with its number.
func (m *Member) incarnate(ctx context.Context) (*Node, int, error) {
	m.mu.Lock()
	m.gen++
	gen := m.gen
	m.mu.Unlock()
	cfg := m.cfg.Node
	cfg.Provider = nil
	cfg.OnIsolated = func(reason string) { m.onIsolated(gen, reason) }
	if m.cfg.NewProvider != nil {
		p, err := m.cfg.NewProvider(ctx, func(reason string) { m.onFenced(gen, reason) })
		if err != nil {
			return nil, gen, err
		}
		cfg.Provider = p
		if err := m.admit(ctx, p); err != nil {
			_ = p.Shutdown(false)
			return nil, gen, err
		}
	}
	if m.cfg.Secret != nil {
		secret, err := m.cfg.Secret(ctx)
		if err != nil {
			if cfg.Provider != nil {
				_ = cfg.Provider.Shutdown(false)
			}
			return nil, gen, fmt.Errorf("cluster secret: %w", err)
		}
		cfg.Secret = secret
	}
	lease, _ := cfg.Provider.(Leaser)
	m.mu.Lock()
	m.lease = lease
	m.mu.Unlock()
	n, err := Start(cfg)
	return n, gen, err
}

// onFenced runs on incarnation gen's provider goroutine when it fenced
// itself: stop serving, leave, and rejoin as a new incarnation.
func (m *Member) onFenced(gen int, reason string) {
	m.replace(gen, "fenced: this node lost its cluster lease; stopping its actors and rejoining", reason)
}

// onIsolated runs when incarnation gen's probes found it cut off from a
// majority of the members, or dropped from a peer's view: it stops serving
// at once (Serving checks the node), removes its record so that the others
// take its actors over now rather than at the lease's end, and rejoins.
func (m *Member) onIsolated(gen int, reason string) {
	m.mu.Lock()
	n, cur := m.cur, m.gen == gen && !m.stopped
	if cur {
		m.cutOff = true
	}
	m.mu.Unlock()
	if !cur {
		return
	}
	if n != nil && n.cfg.Provider != nil {
		_ = n.cfg.Provider.Shutdown(true) // deregisters; the node stops below
	}
	m.replace(gen, "fenced: this node cannot reach the cluster over the node-to-node port; stopping its actors and rejoining", reason)
}

// errCutOff means an incarnation was held back because this process still
// cannot reach a majority of the members (Member.admit). Checking again
// costs a few connects, so the rejoin retries it on the probe schedule
// rather than with the backoff.
var errCutOff = errors.New("still cut off")

// lister is the ability of a membership provider to list the registry
// (LeaseProvider has it).
type lister interface {
	ListMembers(ctx context.Context) ([]registry.MemberRecord, error)
}

// admit holds back an incarnation that follows an isolation fence until
// this process reaches a majority of the members the registry lists, so
// that a member still cut off does not register, take ownership and fence
// again (it flaps otherwise). Other incarnations pass at once.
func (m *Member) admit(ctx context.Context, p pcluster.ClusterProvider) error {
	m.mu.Lock()
	cutOff := m.cutOff
	m.mu.Unlock()
	l, ok := p.(lister)
	if !cutOff || !ok {
		return nil
	}
	recs, err := l.ListMembers(ctx)
	if err != nil {
		return fmt.Errorf("list the members before rejoining: %w", err)
	}
	dial := m.cfg.Dial
	if dial == nil {
		timeout := m.cfg.Node.ProbeTimeout
		if timeout <= 0 {
			timeout = 500 * time.Millisecond
		}
		dial = func(ctx context.Context, addr string) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err
		}
	}
	var others, reached int
	var unreached []string
	for _, r := range recs {
		if r.NodeID == m.cfg.Node.NodeID {
			continue // what is left of this node's own fenced record
		}
		others++
		if err := dial(ctx, r.Address()); err != nil {
			unreached = append(unreached, r.NodeID+"@"+r.Address())
			continue
		}
		reached++
	}
	if reached*2 < others || (others > 0 && reached == 0) {
		return fmt.Errorf("%w: reached %d of the %d members the registry lists (not %s)", errCutOff, reached, others, strings.Join(unreached, ","))
	}
	m.mu.Lock()
	m.cutOff = false
	m.mu.Unlock()
	return nil
}

// replace stops incarnation gen and starts a new one (on the rejoin
// goroutine), unless the member stopped or gen is not the newest.
func (m *Member) replace(gen int, msg, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped || gen != m.gen || gen == m.replaced {
		// Stopped, not the newest, or replaced already (the lease and the
		// probes may both find a paused incarnation fenced).
		return
	}
	m.replaced = gen
	m.log.Warn(msg, slog.String("reason", reason))
	m.fenced = true
	if m.rejoining {
		// The incarnation the rejoin goroutine just started fenced already:
		// it starts another once it has this one.
		m.again = true
		return
	}
	m.rejoining = true
	m.rejoin.Add(1)
	go m.rejoinLoop()
}

// rejoinLoop stops the fenced incarnation and starts new ones until one
// joins (and stays unfenced while it starts) or Stop is called.
func (m *Member) rejoinLoop() {
	defer m.rejoin.Done()
	for {
		m.mu.Lock()
		old := m.cur
		m.cur, m.again = nil, false
		m.mu.Unlock()
		if old != nil {
			old.Stop(false)
			c := old.ProbeStats()
			m.mu.Lock()
			m.pastProbes.add(c)
			m.mu.Unlock()
		}
		n, attempt := m.joinWithBackoff()
		m.mu.Lock()
		switch {
		case n == nil || m.stopped:
			m.rejoining = false
			m.mu.Unlock()
			if n != nil {
				n.Stop(false)
			}
			return
		case m.again:
			m.cur = n
			m.mu.Unlock()
			continue
		}
		m.cur, m.fenced, m.rejoining = n, false, false
		m.mu.Unlock()
		m.log.Info("rejoined the cluster as a new incarnation", slog.Int("attempt", attempt))
		if m.cfg.Rejoined != nil {
			m.cfg.Rejoined()
		}
		return
	}
}

// joinWithBackoff starts incarnations until one runs; nil once Stop is
// called.
func (m *Member) joinWithBackoff() (*Node, int) {
	for attempt := 1; ; attempt++ {
		select {
		case <-m.stop:
			return nil, attempt
		default:
		}
		n, err := m.incarnateUntilStop()
		if err == nil {
			return n, attempt
		}
		delay := m.cfg.Backoff.Delay(attempt)
		lvl := slog.LevelWarn
		if errors.Is(err, errCutOff) {
			delay = min(delay, max(m.cfg.Node.ProbeInterval, 100*time.Millisecond))
			if attempt%20 != 1 {
				lvl = slog.LevelDebug // checked every probe interval: log every 20th
			}
		}
		m.log.Log(context.Background(), lvl, "rejoin failed", slog.Int("attempt", attempt), slog.Any("error", err))
		t := time.NewTimer(delay)
		select {
		case <-m.stop:
			t.Stop()
			return nil, attempt
		case <-t.C:
		}
	}
}

// incarnateUntilStop is incarnate bounded by JoinTimeout and by Stop.
func (m *Member) incarnateUntilStop() (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.JoinTimeout)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	n, _, err := m.incarnate(ctx)
	cancel()
	<-watched
	return n, err
}

// Check is Ready plus a ping of the running incarnation's placement actor
// (bounded by PingTimeout and ctx): an incarnation whose placement actor
// stopped can activate none of its actors, so the member replaces it with
// a new incarnation (as after fencing) and Check fails until that one
// runs. A placement actor that is only slow fails Check without a
// replacement. The readiness probe and the supervisor call it.
func (m *Member) Check(ctx context.Context) error {
	if err := m.Ready(); err != nil {
		return err
	}
	m.mu.Lock()
	n, gen := m.cur, m.gen
	m.mu.Unlock()
	if n == nil {
		return fmt.Errorf("node %s is not a cluster member right now (rejoining)", m.cfg.Node.NodeID)
	}
	timeout := m.cfg.PingTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return ctx.Err()
	}
	err := n.PlacementAlive(timeout)
	if errors.Is(err, ErrPlacementStopped) {
		m.replace(gen, "this node's placement actor stopped; starting a new incarnation", err.Error())
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", m.cfg.Node.NodeID, err)
	}
	return nil
}

// WireStats is what the running incarnation's node-to-node guard refused
// or recovered from (nil while none runs).
func (m *Member) WireStats() WireStats {
	if n := m.current(); n != nil {
		return n.WireStats()
	}
	return nil
}

// current is the running incarnation, nil while none runs.
func (m *Member) current() *Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// Request sends msg to the actor identity of kind through the running
// incarnation (see Node.Request). While none runs (before Start, during a
// rejoin, after Stop) it fails at once with ErrUnavailable.
func (m *Member) Request(ctx context.Context, identity, kind string, msg any) (any, error) {
	n := m.current()
	if n == nil {
		return nil, fmt.Errorf("%w: this node is not a cluster member right now", ErrUnavailable)
	}
	return n.Request(ctx, identity, kind, msg)
}

// Forget drops the cached location of an actor (see Node.Forget); a no-op
// while no incarnation runs.
func (m *Member) Forget(identity, kind string) {
	if n := m.current(); n != nil {
		n.Forget(identity, kind)
	}
}

// Reachability is what the running incarnation's probes know of the other
// members (see Node.Reachability); nil while none runs.
func (m *Member) Reachability() []PeerReachability {
	if n := m.current(); n != nil {
		return n.Reachability()
	}
	return nil
}

// ProbeStats are the running incarnation's probe counts plus those of the
// incarnations before it.
func (m *Member) ProbeStats() ProbeStats {
	m.mu.Lock()
	s := m.pastProbes
	n := m.cur
	m.mu.Unlock()
	if n != nil {
		s.add(n.ProbeStats())
	}
	return s
}

// View is the running incarnation's routing view (see Node.View); the
// empty view while none runs.
func (m *Member) View() View {
	if n := m.current(); n != nil {
		return n.View()
	}
	return (&ring{}).view()
}

// Owner is the address of the member that owns the actor identity of kind
// in the running incarnation's view (see Node.Owner); "" while none runs.
func (m *Member) Owner(identity, kind string) string {
	if n := m.current(); n != nil {
		return n.Owner(identity, kind)
	}
	return ""
}

// Address is the remote address (host:port) of the running incarnation,
// "" while none runs.
func (m *Member) Address() string {
	if n := m.current(); n != nil {
		return n.Address()
	}
	return ""
}

// Members lists the members this member sees, with their node ids: the
// lease provider's records when the provider holds a lease, else
// protoactor's member view (in which only this member's node id is known).
// Nil while no incarnation runs and the provider holds no lease.
func (m *Member) Members() []MemberInfo {
	m.mu.Lock()
	lease, n := m.lease, m.cur
	m.mu.Unlock()
	if lease != nil {
		recs := lease.Records()
		out := make([]MemberInfo, 0, len(recs))
		for _, r := range recs {
			out = append(out, MemberInfo{ID: r.MemberID, NodeID: r.NodeID, Address: r.Address(), Kinds: r.Kinds})
		}
		return out
	}
	if n == nil {
		return nil
	}
	ms := n.Members()
	for i := range ms {
		if ms[i].ID == n.System().ID {
			ms[i].NodeID = n.NodeID()
		}
	}
	return ms
}

// Serving refuses work while this member's lease is not valid (paused, cut
// off from the registry): another member may own its actors by now. While
// the member leaves gracefully (Stop) it keeps serving, so that its actors
// answer until ownership moved. Always nil without a lease.
func (m *Member) Serving() error {
	m.mu.Lock()
	lease, leaving := m.lease, m.leaving
	m.mu.Unlock()
	if lease == nil {
		return nil
	}
	if lease.Fenced() {
		return fmt.Errorf("node %s lost its cluster lease and is rejoining", m.cfg.Node.NodeID)
	}
	if n := m.current(); n != nil {
		if why := n.Isolated(); why != "" && !leaving {
			return fmt.Errorf("node %s is cut off from the cluster and is rejoining: %s", m.cfg.Node.NodeID, why)
		}
	}
	// A lease that ran out (a pause the provider has not noticed yet) stops it.
	if ok, _ := lease.Lease(); !ok && !leaving {
		return fmt.Errorf("node %s lost its cluster lease and is rejoining", m.cfg.Node.NodeID)
	}
	return nil
}

// Ready reports whether this member is in the cluster with a valid lease:
// an incarnation runs, none is fenced, and Serving accepts.
func (m *Member) Ready() error {
	m.mu.Lock()
	fenced, running := m.fenced, m.cur != nil
	m.mu.Unlock()
	if fenced || !running {
		return fmt.Errorf("node %s is not a cluster member right now (fenced, rejoining)", m.cfg.Node.NodeID)
	}
	return m.Serving()
}

// Stop leaves the cluster: it ends a rejoin in progress (waiting for an
// incarnation being started, which it then stops), and stops the running
// incarnation, gracefully if graceful is set (see Node.Stop). It returns
// once no goroutine of the member runs; a Start in progress stops what it
// started itself and returns ErrStopped. Idempotent; safe before Start.
func (m *Member) Stop(graceful bool) {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped, m.leaving = true, true
		m.mu.Unlock()
		close(m.stop)
		m.rejoin.Wait()
		m.mu.Lock()
		n := m.cur
		m.cur = nil
		m.mu.Unlock()
		if n != nil {
			n.Stop(graceful)
		}
	})
}
