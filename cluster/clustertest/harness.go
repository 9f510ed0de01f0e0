package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/poll"
)

// EchoKind is the grain kind every harness member hosts: it answers a
// *wrapperspb.StringValue with the node id of its host.
const EchoKind = "echo"

// ErrBare is returned by Echo on a harness of bare members (no grains).
var ErrBare = errors.New("bare members host no grains")

type echoGrain struct{ nodeID string }

func (g *echoGrain) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
		ctx.Respond(wrapperspb.String(g.nodeID))
	}
}

// EchoKindFor returns the echo kind of a member named nodeID.
func EchoKindFor(nodeID string) *pcluster.Kind {
	return pcluster.NewKind(EchoKind, actor.PropsFromProducer(func() actor.Actor { return &echoGrain{nodeID: nodeID} }))
}

// Options configure a Harness. The zero value of each field takes its
// default; the defaults are short so that failures show up in seconds.
type Options struct {
	// Backend makes each member's registry (default Memory()).
	Backend Backend
	// TTL (default 1 s), Heartbeat (default TTL/3) and Poll (default
	// 100 ms) are the members' LeaseOptions.
	TTL, Heartbeat, Poll time.Duration
	// AttemptTimeout bounds one attempt of Node.Request (default 500 ms).
	AttemptTimeout time.Duration
	// ProbeInterval (default 200 ms), ProbeTimeout (default 250 ms),
	// IsolationBound (default 2 TTL) and DivergenceBound (default 2 Poll
	// plus ProbeInterval) configure full members' reachability probes (see
	// cluster.Config).
	ProbeInterval, ProbeTimeout, IsolationBound, DivergenceBound time.Duration
	// Kinds returns extra kinds for the member named nodeID (the echo kind
	// is always there).
	Kinds func(nodeID string) []*pcluster.Kind
	// Bare members are membership only: an actor system and protoactor's
	// MemberList driven by a real LeaseProvider, without the remote
	// endpoint, gossip or grains (Node returns nil, Echo fails with
	// ErrBare). They start in milliseconds and, unlike full members, can
	// run several to a process under the race detector: protoactor's
	// remote and gossip code has data races between in-process members
	// (see the package documentation).
	Bare bool
	// Secret is the cluster secret of full members (default: a random one
	// per harness, so that node-to-node calls authenticate as in
	// production). NoSecret runs them without one, on loopback.
	Secret   []byte
	NoSecret bool
	// Logger receives every member's logs (default: the test log, at info).
	Logger *slog.Logger
}

// Harness is a cluster of in-process members; member i is named "node-<i>".
type Harness struct {
	t    testing.TB
	opts Options

	mu      sync.Mutex
	members []*member
	closed  bool
}

// member is one slot: a node id and its current incarnation.
type member struct {
	nodeID      string
	incarnation int
	node        *cluster.Node     // full member
	bare        *pcluster.Cluster // bare member
	provider    *cluster.LeaseProvider
	reg         registry.Registry
	running     bool
	fenced      chan struct{} // closed by OnFenced
	reason      string        // set before fenced is closed
	view        *memberView   // the incarnation's protoactor topology
}

// memberView is the latest member set protoactor published on a member's
// event stream. Reading MemberList.Members() directly would race with
// UpdateClusterTopology (protoactor reads that field without its lock);
// the topology event is published under the member list's lock.
type memberView struct {
	mu      sync.Mutex
	members []cluster.MemberInfo
}

func (v *memberView) subscribe(c *pcluster.Cluster) {
	c.ActorSystem.EventStream.Subscribe(func(evt any) {
		topo, ok := evt.(*pcluster.ClusterTopology)
		if !ok {
			return
		}
		ms := make([]cluster.MemberInfo, 0, len(topo.Members))
		for _, m := range topo.Members {
			ms = append(ms, cluster.MemberInfo{ID: m.Id, Address: m.Address(), Kinds: slices.Clone(m.Kinds)})
		}
		slices.SortFunc(ms, func(a, b cluster.MemberInfo) int { return strings.Compare(a.ID, b.ID) })
		v.mu.Lock()
		v.members = ms
		v.mu.Unlock()
	})
}

func (v *memberView) get() []cluster.MemberInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.members)
}

// Start starts n members and waits until each sees all n. The harness
// stops when t ends.
func Start(t testing.TB, n int, opts Options) *Harness {
	t.Helper()
	if opts.Backend == nil {
		opts.Backend = Memory()
	}
	if opts.TTL == 0 {
		opts.TTL = time.Second
	}
	if opts.Poll == 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.AttemptTimeout == 0 {
		opts.AttemptTimeout = 500 * time.Millisecond
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 200 * time.Millisecond
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = 250 * time.Millisecond
	}
	if opts.IsolationBound == 0 {
		opts.IsolationBound = 2 * opts.TTL
	}
	if opts.DivergenceBound == 0 {
		opts.DivergenceBound = 2*opts.Poll + opts.ProbeInterval
	}
	if opts.Secret == nil && !opts.NoSecret {
		s, err := registry.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		opts.Secret = s
	}
	if opts.NoSecret {
		opts.Secret = nil
	}
	if opts.Logger == nil {
		w := &testWriter{t: t}
		t.Cleanup(w.stop) // registered first: runs after every other cleanup
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	h := &Harness{t: t, opts: opts}
	t.Cleanup(h.Close)
	for i := range n {
		h.members = append(h.members, &member{nodeID: fmt.Sprintf("node-%d", i)})
	}
	h.startAll(t, h.members)
	for i := range n {
		h.WaitMembers(t, i, n, 10*time.Second)
	}
	return h
}

// startAll starts the given members. A full member's start takes over a
// second (protoactor sleeps after joining), so starts overlap: member k+1
// starts as soon as member k's remote endpoint listens (its provider's
// StartMember runs).
func (h *Harness) startAll(t testing.TB, ms []*member) {
	t.Helper()
	regs := make([]registry.Registry, len(ms))
	for i := range ms {
		regs[i] = h.opts.Backend(t, h.opts.TTL) // may t.Fatal: on the test goroutine
	}
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		remoteUp := make(chan struct{})
		wg.Go(func() { errs[i] = h.start(m, regs[i], remoteUp) })
		<-remoteUp
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %s: %v", ms[i].nodeID, err)
		}
	}
}

// signalingProvider closes up when protoactor calls StartMember, that is
// once the member's remote endpoint listens, and subscribes view to the
// member's topology before the provider publishes the first one.
type signalingProvider struct {
	*cluster.LeaseProvider
	view *memberView
	once sync.Once
	up   chan struct{}
}

func (s *signalingProvider) StartMember(c *pcluster.Cluster) error {
	s.view.subscribe(c)
	s.signal()
	return s.LeaseProvider.StartMember(c)
}

func (s *signalingProvider) signal() { s.once.Do(func() { close(s.up) }) }

// start starts a new incarnation of m on reg; remoteUp is closed once the
// member's remote endpoint is up or the start failed.
func (h *Harness) start(m *member, reg registry.Registry, remoteUp chan struct{}) error {
	h.mu.Lock()
	m.incarnation++
	fenced := make(chan struct{})
	m.fenced, m.reason = fenced, ""
	nodeID, inc := m.nodeID, m.incarnation
	h.mu.Unlock()

	log := h.opts.Logger.With(slog.String("node_id", nodeID), slog.Int("incarnation", inc))
	var once sync.Once
	fence := func(reason string) {
		once.Do(func() {
			h.mu.Lock()
			m.reason = reason
			h.mu.Unlock()
			close(fenced)
		})
	}
	p := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{
		NodeID: nodeID, TTL: h.opts.TTL, Heartbeat: h.opts.Heartbeat, Poll: h.opts.Poll, Logger: log,
		OnFenced: fence,
	})
	view := &memberView{}
	sp := &signalingProvider{LeaseProvider: p, view: view, up: remoteUp}
	defer sp.signal()

	var node *cluster.Node
	var bare *pcluster.Cluster
	var err error
	if h.opts.Bare {
		bare, err = startBare(sp)
	} else {
		kinds := []*pcluster.Kind{EchoKindFor(nodeID)}
		if h.opts.Kinds != nil {
			kinds = append(kinds, h.opts.Kinds(nodeID)...)
		}
		node, err = cluster.Start(cluster.Config{
			NodeID: nodeID, Host: "127.0.0.1", Port: 0, Kinds: kinds, Provider: sp, Secret: h.opts.Secret,
			AttemptTimeout: h.opts.AttemptTimeout, Logger: log,
			ProbeInterval: h.opts.ProbeInterval, ProbeTimeout: h.opts.ProbeTimeout,
			IsolationBound: h.opts.IsolationBound, DivergenceBound: h.opts.DivergenceBound,
			// As cluster.Member does: the isolated member removes its record
			// (the others take its actors over now) and counts as fenced; the
			// harness does not rejoin it (Restart does).
			OnIsolated: func(reason string) {
				_ = p.Shutdown(true)
				fence(reason)
			},
		})
	}
	if err != nil {
		_ = p.Shutdown(false)
		closeRegistry(reg)
		return err
	}
	h.mu.Lock()
	m.node, m.bare, m.provider, m.reg, m.view, m.running = node, bare, p, reg, view, true
	h.mu.Unlock()
	return nil
}

var barePort atomic.Int32

// startBare starts a membership-only member: an actor system whose address
// is a made-up loopback port (nothing listens there), protoactor's cluster
// object with its MemberList and block list, and the provider.
func startBare(p pcluster.ClusterProvider) (*pcluster.Cluster, error) {
	c := newBare(p)
	if err := p.StartMember(c); err != nil {
		c.ActorSystem.Shutdown()
		return nil, err
	}
	return c, nil
}

// newBare builds a bare member's cluster object without starting anything.
func newBare(p pcluster.ClusterProvider) *pcluster.Cluster {
	port := 20000 + int(barePort.Add(1)%40000)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	system.ProcessRegistry.Address = fmt.Sprintf("127.0.0.1:%d", port)
	rcfg := remote.Configure("127.0.0.1", port)
	c := pcluster.New(system, pcluster.Configure("ordersystem", p, disthash.New(), rcfg))
	c.Remote = remote.NewRemote(system, rcfg) // for its block list; never started
	return c
}

func closeRegistry(reg registry.Registry) {
	if c, ok := reg.(io.Closer); ok {
		_ = c.Close()
	}
}

func (h *Harness) member(i int) *member {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < 0 || i >= len(h.members) {
		h.t.Fatalf("clustertest: no member %d (have %d)", i, len(h.members))
	}
	return h.members[i]
}

// stop stops m's running incarnation. graceful runs protoactor's graceful
// shutdown (full members), during which the provider deregisters;
// deregister alone deletes the record after a non-graceful stop. With
// neither, the record outlives the member until its lease expires, as
// after a crash.
func (h *Harness) stop(m *member, graceful, deregister bool) {
	h.mu.Lock()
	if !m.running {
		h.mu.Unlock()
		return
	}
	m.running = false
	node, bare, p, reg := m.node, m.bare, m.provider, m.reg
	h.mu.Unlock()
	switch {
	case node != nil:
		node.Stop(graceful) // graceful calls p.Shutdown(true)
		if !graceful {
			// A dead process's outgoing connections die with it; protoactor's
			// non-graceful shutdown only stops the server and leaves the
			// endpoint writers (gRPC clients) redialing forever.
			cluster.ShutdownRemote(node.System(), h.opts.Logger)
		}
	case graceful:
		_ = p.Shutdown(true)
	}
	if bare != nil {
		bare.ActorSystem.Shutdown()
	}
	// protoactor calls the provider only on a graceful shutdown.
	_ = p.Shutdown(graceful || deregister)
	closeRegistry(reg)
}

// Options are the harness's options with their defaults filled in.
func (h *Harness) Options() Options { return h.opts }

// Secret is the cluster secret of the harness's full members (nil with
// NoSecret).
func (h *Harness) Secret() []byte { return h.opts.Secret }

// NodeID is the node id of member i ("node-<i>").
func (h *Harness) NodeID(i int) string { return h.member(i).nodeID }

// Node is member i's current incarnation (stopped after Kill or Leave);
// nil for bare members.
func (h *Harness) Node(i int) *cluster.Node {
	m := h.member(i)
	h.mu.Lock()
	defer h.mu.Unlock()
	return m.node
}

// Provider is the lease provider of member i's current incarnation.
func (h *Harness) Provider(i int) *cluster.LeaseProvider {
	m := h.member(i)
	h.mu.Lock()
	defer h.mu.Unlock()
	return m.provider
}

// MemberID is the member id (actor system id) of member i's current
// incarnation.
func (h *Harness) MemberID(i int) string { return h.Provider(i).MemberID() }

// Members is member i's current view of the cluster: the members of the
// last topology protoactor published (blocked members excluded), sorted
// by member id.
func (h *Harness) Members(i int) []cluster.MemberInfo {
	m := h.member(i)
	h.mu.Lock()
	view := m.view
	h.mu.Unlock()
	if view == nil {
		return nil
	}
	return view.get()
}

// MemberIDs is member i's current view as member ids, sorted.
func (h *Harness) MemberIDs(i int) []string {
	ms := h.Members(i)
	ids := make([]string, len(ms))
	for k, m := range ms {
		ids[k] = m.ID
	}
	return ids
}

// WaitMembers waits until member i sees want members and returns how long
// that took; it fails t after timeout.
func (h *Harness) WaitMembers(t testing.TB, i, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []cluster.MemberInfo
	err := poll.Until(timeout, poll.True("members", func() bool {
		got = h.Members(i)
		return len(got) == want
	}))
	if err != nil {
		ids := make([]string, len(got))
		for k, m := range got {
			ids[k] = h.Provider(i).NodeIDOf(m.ID) + "=" + m.ID
		}
		t.Fatalf("%s sees %d members %v after %v, want %d", h.NodeID(i), len(got), ids, timeout, want)
	}
	return time.Since(start)
}

// WaitFenced waits until member i's current incarnation fenced itself and
// returns the reason; it fails t after timeout.
func (h *Harness) WaitFenced(t testing.TB, i int, timeout time.Duration) string {
	t.Helper()
	m := h.member(i)
	h.mu.Lock()
	fenced := m.fenced
	h.mu.Unlock()
	select {
	case <-fenced:
		h.mu.Lock()
		defer h.mu.Unlock()
		return m.reason
	case <-time.After(timeout):
		t.Fatalf("%s did not fence itself within %v", m.nodeID, timeout)
		return ""
	}
}

// Fenced reports whether member i's current incarnation fenced itself,
// and why.
func (h *Harness) Fenced(i int) (reason string, fenced bool) {
	m := h.member(i)
	h.mu.Lock()
	ch := m.fenced
	h.mu.Unlock()
	select {
	case <-ch:
		h.mu.Lock()
		defer h.mu.Unlock()
		return m.reason, true
	default:
		return "", false
	}
}

// Kill stops member i abruptly: the member stops and its record stays in
// the registry until the lease expires, as if the process died.
func (h *Harness) Kill(i int) { h.stop(h.member(i), false, false) }

// Leave stops member i gracefully, the way a SIGTERM does: protoactor's
// graceful shutdown, during which the provider deregisters (a full member
// takes about two seconds: protoactor waits for ownership to move).
func (h *Harness) Leave(i int) { h.stop(h.member(i), true, true) }

// Pause freezes member i's membership loop for d, as SIGSTOP would: no
// lease renewal, no polling. The rest of the member keeps running.
func (h *Harness) Pause(i int, d time.Duration) { h.Provider(i).SimulatePause(d) }

// Cut cuts member i's node-to-node traffic both ways (cluster.SimulateCut),
// or restores it with cut false; its registry connection stays up. The
// harness restores it when it closes.
func (h *Harness) Cut(i int, cut bool) {
	h.t.Helper()
	node := h.Node(i)
	if node == nil {
		h.t.Fatalf("clustertest: Cut(%d) on a bare member", i)
	}
	addr := node.Address()
	cluster.SimulateCut(addr, cut)
	if cut {
		h.t.Cleanup(func() { cluster.SimulateCut(addr, false) })
	}
}

// Restart stops member i's incarnation if it runs (deregistering what is
// left of its record) and starts a new incarnation with the same node id,
// a new member id and a new port.
func (h *Harness) Restart(i int) {
	h.t.Helper()
	m := h.member(i)
	h.stop(m, false, true)
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		h.t.Fatalf("clustertest: Restart(%d) after Close", i)
	}
	h.startAll(h.t, []*member{m})
}

// Echo asks the echo grain identity through member from and returns the
// node id of the member hosting it.
func (h *Harness) Echo(ctx context.Context, from int, identity string) (string, error) {
	node := h.Node(from)
	if node == nil {
		return "", ErrBare
	}
	res, err := node.Request(ctx, identity, EchoKind, wrapperspb.String(identity))
	if err != nil {
		return "", err
	}
	s, ok := res.(*wrapperspb.StringValue)
	if !ok {
		return "", fmt.Errorf("echo %s: unexpected reply %T", identity, res)
	}
	return s.GetValue(), nil
}

// Close stops every member (deregistering) and closes the registries.
// Start registers it as a cleanup; idempotent.
func (h *Harness) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	ms := slices.Clone(h.members)
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { h.stop(m, false, true) })
	}
	wg.Wait()
}

// testWriter sends log lines to t.Log until the test ends (protoactor
// goroutines may log after that).
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
