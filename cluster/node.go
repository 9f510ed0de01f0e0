package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ordersystem/ordersystem/internal/localcall"
)

// Errors of cluster calls.
var (
	// ErrUnavailable means no member could host or reach the actor in time.
	ErrUnavailable = errors.New("actor unavailable")
	// ErrStopped is returned by Request after Stop.
	ErrStopped = errors.New("node stopped")
	// ErrOwnerUnreachable means the actor's owner does not answer this
	// member's reachability probes (it is suspect): the request fails at
	// once instead of waiting for its timeout. It is an ErrUnavailable, and
	// retryable: the owner answers again, or leaves the view and the actor
	// moves to a member that answers.
	ErrOwnerUnreachable = fmt.Errorf("%w: its owner does not answer over the node-to-node port", ErrUnavailable)
)

// Config describes one node.
type Config struct {
	// ClusterName must be the same on every member (default "ordersystem").
	ClusterName string
	// NodeID is the operator's name of the node (--node-id).
	NodeID string
	// Host and Port are where the node-to-node gRPC endpoint listens
	// (Port 0 picks a free one).
	Host string
	Port int
	// AdvertiseHost, if set, is the host other members dial ("host" or
	// "host:port").
	AdvertiseHost string
	// Kinds are the actor kinds this member hosts.
	Kinds []*pcluster.Kind
	// LocalCalls names the kinds whose actors answer a localcall.Call: a
	// Request for one of their activations on this member is sent as one
	// and answered through its channel, without a future (see package
	// localcall). Requests to the other kinds, and to other members, use
	// protoactor's futures.
	LocalCalls []string
	// ServerTLS and ClientTLS, if set, make node-to-node gRPC use (mutual)
	// TLS; both or neither.
	ServerTLS, ClientTLS *tls.Config
	// Provider is the membership provider; nil means a one-member cluster.
	Provider pcluster.ClusterProvider
	// Secret is the cluster secret every node-to-node call authenticates
	// with (see PeerCredentials): at least 16 bytes, the same on every
	// member. Without it the node-to-node port must listen on loopback only
	// (Host a loopback address, no AdvertiseHost), or Start refuses.
	Secret []byte
	// LocalOnly is a standalone node: a one-member cluster (Provider must
	// be nil) with no node-to-node listener. protoactor's remote always
	// listens, so the node listens on a free loopback port behind
	// credentials that fail every handshake, and closes the listener as
	// soon as the member started.
	LocalOnly bool
	// AttemptTimeout bounds one attempt of a Request (default 2 s); the
	// caller's context bounds all attempts together.
	AttemptTimeout time.Duration
	// ProbeInterval spaces the reachability probes of every other member
	// (default 500 ms; negative: no probes), ProbeTimeout bounds one
	// (default 500 ms), IsolationBound is how long this member may reach
	// fewer than a majority of the others before it fences itself (default
	// 4 s; it must exceed the lease TTL plus a listing period, see the notes
	// in probe.go), and DivergenceBound how long its view may differ from a
	// peer's before that is reported and healed (default 1 s). Set them from
	// the lease TTL (node/membership.go does).
	ProbeInterval, ProbeTimeout, IsolationBound, DivergenceBound time.Duration
	// OnIsolated, if set, is called once (on its own goroutine) when this
	// member stopped serving because it could not reach a majority of the
	// others or because a peer dropped it from its view: it must fence
	// (leave and rejoin as a new incarnation; Member does).
	OnIsolated func(reason string)
	Logger     *slog.Logger
	// Now is the wall clock node-to-node tokens are dated by; the others
	// accept a token within 2 minutes of their own clock (default
	// time.Now).
	Now func() time.Time
}

// Node is a running cluster member.
type Node struct {
	cfg     Config
	system  *actor.ActorSystem
	cluster *pcluster.Cluster
	// lookupImpl is the cluster's identity lookup.
	lookupImpl *placement
	guard      *guard
	// deaths notices members whose process is gone (nil without a
	// provider that can evict).
	deaths  *deathWatch
	probes  *prober // nil on a local-only node
	stopped chan struct{}
	// localCalls holds Config.LocalCalls.
	localCalls map[string]bool
}

// ErrUnauthenticated is returned by Start when the node-to-node port would
// be reachable from other machines without authentication.
var ErrUnauthenticated = errors.New("node-to-node port without authentication")

// Start starts the actor system, the remote endpoint and cluster membership.
// It returns an error (never panics) when the member cannot start.
func Start(cfg Config) (n *Node, err error) {
	if cfg.ClusterName == "" {
		cfg.ClusterName = "ordersystem"
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	cfg.Host = strings.Trim(cfg.Host, "[]") // "[::1]" as well as "::1"
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 500 * time.Millisecond
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 500 * time.Millisecond
	}
	if cfg.IsolationBound <= 0 {
		cfg.IsolationBound = 4 * time.Second
	}
	if cfg.DivergenceBound <= 0 {
		cfg.DivergenceBound = time.Second
	}
	var auth *peerAuth
	switch {
	case cfg.LocalOnly:
		if cfg.Provider != nil {
			return nil, errors.New("a local-only node is a one-member cluster: it takes no membership provider")
		}
		cfg.Host, cfg.Port, cfg.AdvertiseHost = "127.0.0.1", 0, ""
	case len(cfg.Secret) > 0:
		if auth, err = newPeerAuth(cfg.Secret, cfg.ClusterName); err != nil {
			return nil, err
		}
		if cfg.Now != nil {
			auth.now = cfg.Now
		}
	case !isLoopback(cfg.Host) || cfg.AdvertiseHost != "":
		return nil, fmt.Errorf("%w: it would listen on %s (advertised as %q) where other machines can reach it; "+
			"set a cluster secret (--cluster-secret, --cluster-secret-file or ORDERSYSTEM_CLUSTER_SECRET, the same on every node), "+
			"or use a Redis or NATS backend, which keeps one for the cluster", ErrUnauthenticated, cfg.Host, cfg.AdvertiseHost)
	default:
		cfg.Logger.Warn("node-to-node port on loopback without authentication: every local process can talk to this node's actors; set --cluster-secret",
			slog.String("host", cfg.Host), slog.Int("port", cfg.Port))
	}
	// Fail with a clear message if the remote port is taken, before
	// protoactor would panic on it.
	if cfg.Port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		if err != nil {
			return nil, fmt.Errorf("node-to-node port %d: %w (choose another with --remote-port)", cfg.Port, err)
		}
		_ = l.Close()
	}
	protoLog := slog.New(minLevel{h: cfg.Logger.Handler(), min: slog.LevelWarn}).With(slog.String("component", "protoactor"))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoLog }))

	var ropts []remote.ConfigOption
	if cfg.AdvertiseHost != "" {
		adv := cfg.AdvertiseHost
		if _, _, err := net.SplitHostPort(adv); err != nil {
			// A bare host: "10.0.0.7", "::1", "[::1]", "node1".
			adv = net.JoinHostPort(strings.Trim(adv, "[]"), strconv.Itoa(cfg.Port))
		}
		ropts = append(ropts, remote.WithAdvertisedHost(adv))
	}
	g := newGuard(cfg.Logger, auth, system.Address)
	sopts := g.serverOptions()
	var dopts []grpc.DialOption
	switch {
	case cfg.LocalOnly:
		sopts = append(sopts, grpc.Creds(refuseHandshakes{}))
		dopts = append(dopts, grpc.WithTransportCredentials(refuseHandshakes{}))
	case cfg.ServerTLS != nil && cfg.ClientTLS != nil:
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(cfg.ServerTLS)))
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(cfg.ClientTLS)))
	default:
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if auth != nil {
		dopts = append(dopts, grpc.WithPerRPCCredentials(peerCreds{auth}))
	}
	stopped := make(chan struct{}) // closed by Stop: ends redials
	if !cfg.LocalOnly {
		dopts = append(dopts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return redial(ctx, addr, stopped)
		}), grpc.WithStreamInterceptor(closeIsEOF))
	}
	// A stop of the server (protoactor's non-graceful one, or its graceful
	// one after its timeout) returns only once every handler has: none of
	// them goes on delivering into a stopped member, or races with the next
	// incarnation that the process starts (gRPC's logger, a global that
	// protoactor sets on every start, is read by handlers).
	sopts = append(sopts, grpc.WaitForHandlers(true))
	ropts = append(ropts, remote.WithServerOptions(sopts...), remote.WithDialOptions(dopts...))
	// protoactor joins host and port with a bare ':': an IPv6 host needs
	// its brackets.
	rcfg := remote.Configure(bracketHost(cfg.Host), cfg.Port, ropts...)
	provider := cfg.Provider
	if provider == nil {
		provider = &singleMember{}
	}
	lookup := newPlacement()
	// The registry alone decides who is a member: protoactor's gossip must
	// not block (and so drop for good) a member whose heartbeat looks old on
	// this member's wall clock (a partition longer than 20 s, a clock step)
	// while its lease is valid. A heartbeat age never exceeds the largest
	// Duration (time.Sub saturates), so this turns the check off. What
	// else blocks a member id in protoactor only follows the registry or
	// the member itself: MemberList.UpdateClusterTopology blocks the members
	// that left the view we publish, the gossip spreads those blocks (the
	// topology's Blocked list), the gossip's gracefully-left key is set by a
	// member on its own graceful stop, and the endpoint reader refuses
	// blocked ids. A block that a diverged view caused is healed by the
	// blocked member fencing itself (see probe.go).
	ccfg := pcluster.Configure(cfg.ClusterName, provider, lookup, rcfg, pcluster.WithKinds(cfg.Kinds...),
		pcluster.WithHeartbeatExpiration(time.Duration(math.MaxInt64)))
	c := pcluster.New(system, ccfg)
	n = &Node{cfg: cfg, system: system, cluster: c, lookupImpl: lookup, guard: g, stopped: stopped, localCalls: map[string]bool{}}
	for _, k := range cfg.LocalCalls {
		n.localCalls[k] = true
	}
	// A local call sent to an activation that stopped reaches the dead
	// letter process, which answers only a sender: answer the call.
	system.EventStream.Subscribe(func(evt any) {
		if dl, ok := evt.(*actor.DeadLetterEvent); ok {
			if call, ok := dl.Message.(*localcall.Call); ok {
				call.Respond(&actor.DeadLetterResponse{Target: dl.PID})
			}
		}
	})
	if !cfg.LocalOnly {
		// Spawned before the member registers, so that it answers as soon
		// as the others list this member.
		if _, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &probeActor{n: n} }), probeName); err != nil {
			system.Shutdown()
			return nil, fmt.Errorf("start the probe actor: %w", err)
		}
	}

	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start cluster member: %v", r)
			// Release the node-to-node port, or the next attempt (a rejoin)
			// cannot bind it.
			if c.Remote != nil {
				c.Remote.Shutdown(false)
			}
			system.Shutdown()
		}
	}()
	c.StartMember()
	if cfg.LocalOnly {
		// Close the listener now (Stop stops the server again: grpc allows
		// that, and it is the one graceful remote shutdown at most).
		c.Remote.Shutdown(false)
	}
	if ev, ok := cfg.Provider.(Evicter); ok {
		n.deaths = newDeathWatch(system, ev, cfg.Logger.With(slog.String("component", "membership")))
		lookup.deaths.Store(n.deaths)
	}
	if !cfg.LocalOnly && cfg.ProbeInterval > 0 {
		n.probes = newProber(n)
		go n.probes.run()
	}
	return n, nil
}

// bracketHost writes an IPv6 address in brackets, as host:port needs it;
// other hosts unchanged.
func bracketHost(host string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}

// isLoopback reports whether host is a loopback address or localhost.
func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WireStats is what this node's node-to-node guard refused or recovered
// from since it started.
func (n *Node) WireStats() WireStats { return n.guard.stats() }

// PlacementAlive asks this node's placement actor (which activates the
// actors it owns) to answer within timeout: ErrPlacementStopped if it is
// gone, another error if it does not answer in time.
func (n *Node) PlacementAlive(timeout time.Duration) error {
	return n.lookupImpl.ping(timeout)
}

// System is the node's actor system.
func (n *Node) System() *actor.ActorSystem { return n.system }

// NodeID is the operator's name of this node.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// Address is the node's remote address (host:port).
func (n *Node) Address() string { return n.system.Address() }

// MemberInfo is one cluster member as this node sees it.
type MemberInfo struct {
	ID      string   `json:"id"`
	NodeID  string   `json:"nodeId,omitempty"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds,omitempty"`
}

// Members lists the cluster members this node currently sees.
func (n *Node) Members() []MemberInfo {
	ms := n.cluster.MemberList.Members().Members()
	out := make([]MemberInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, MemberInfo{ID: m.Id, Address: m.Address(), Kinds: m.Kinds})
	}
	return out
}

// Request sends msg to the actor identity of kind, activating it on its
// owner if needed, and returns the reply. Each attempt is bounded by the
// node's AttemptTimeout, all of them by ctx. A lost reply or a stopped
// activation is retried with the same message, so commands must be
// idempotent by id (order commands are).
func (n *Node) Request(ctx context.Context, identity, kind string, msg any) (any, error) {
	backoff := 5 * time.Millisecond
	var lastErr error
	for attempt := 0; ; attempt++ {
		select {
		case <-n.stopped:
			return nil, ErrStopped
		default:
		}
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%s %s: %w: %w (last error: %v)", kind, identity, ErrUnavailable, ctx.Err(), lastErr)
			case <-t.C:
			}
			backoff = min(backoff*2, 200*time.Millisecond)
		}
		timeout := n.cfg.AttemptTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		if timeout <= 0 {
			return nil, fmt.Errorf("%s %s: %w: %w (last error: %v)", kind, identity, ErrUnavailable, context.DeadlineExceeded, lastErr)
		}
		owner := n.lookupImpl.owner(identity, kind)
		if n.probes != nil && owner != "" && owner != n.system.Address() && n.probes.suspect(owner) {
			n.probes.failedFast.Add(1)
			return nil, fmt.Errorf("%s %s: %w (%s)", kind, identity, ErrOwnerUnreachable, owner)
		}
		if owner == n.system.Address() && n.localCalls[kind] {
			// Owned here: the placement's own map of activations is the
			// cache (a second one in protoactor's PidCache cost a map
			// write per activation and a lookup per request).
			pid := n.lookupImpl.activateLocal(identity, kind)
			if pid == nil {
				lastErr = errors.New("this member could not activate it")
				continue
			}
			res, err := answer(n.askLocal(pid, msg, timeout))
			if err == nil {
				return res, nil
			}
			lastErr = err
			continue
		}
		pid, ok := n.cluster.PidCache.Get(identity, kind)
		if ok && pid != nil && pid.Address != owner {
			// Cached from an earlier view: the actor belongs elsewhere now
			// (its old owner stops it on its own view change).
			n.cluster.PidCache.RemoveByValue(identity, kind, pid)
			ok = false
		}
		if !ok || pid == nil {
			pid = n.lookup(identity, kind, timeout)
			if pid == nil {
				lastErr = errors.New("no member could activate it in time")
				continue
			}
			n.cluster.PidCache.Set(identity, kind, pid)
		}
		res, err := answer(n.ask(pid, kind, msg, timeout))
		if err == nil {
			return res, nil
		}
		lastErr = err
		// The activation stopped, moved or did not answer: forget its PID
		// and try again with the same message.
		n.cluster.PidCache.RemoveByValue(identity, kind, pid)
	}
}

// answer is the result of one attempt: a dead letter (the activation
// stopped) and a gone owner are errors, to be retried.
func answer(res any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	switch res.(type) {
	case *actor.DeadLetterResponse:
		return nil, actor.ErrDeadLetter
	case *ownerGone:
		return nil, errOwnerGone
	}
	return res, nil
}

// ask sends msg to pid and waits for the reply, at most timeout. A request
// to another member is tracked by the death watch, which ends it early
// (ownerGone) when that member's process is found gone.
func (n *Node) ask(pid *actor.PID, kind string, msg any, timeout time.Duration) (any, error) {
	if n.localCalls[kind] && pid.Address == n.system.Address() {
		return n.askLocal(pid, msg, timeout)
	}
	f := n.system.Root.RequestFuture(pid, msg, timeout)
	if n.deaths == nil || pid.Address == n.deaths.self {
		return f.Result()
	}
	n.deaths.track(pid.Address, f)
	res, err := f.Result()
	n.deaths.untrack(pid.Address, f)
	return res, err
}

// askLocal is ask for an activation on this member whose kind answers a
// localcall.Call. Like a future, it gives up after timeout: a message that
// reaches an actor as it stops is dropped by protoactor unanswered.
func (n *Node) askLocal(pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	call := localcall.New(msg)
	n.system.Root.Send(pid, call)
	select {
	case res := <-call.Reply():
		return res, nil
	default:
	}
	t := attemptTimers.Get().(*time.Timer)
	t.Reset(timeout)
	defer func() {
		// Since Go 1.23 a stopped timer delivers nothing stale, so it can
		// be used again.
		t.Stop()
		attemptTimers.Put(t)
	}()
	select {
	case res := <-call.Reply():
		return res, nil
	case <-t.C:
		return nil, actor.ErrTimeout
	}
}

// attemptTimers are the stopped timers of local calls, one per call in
// flight, kept instead of one new timer per request.
var attemptTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// Reachability is what this member's probes know of every other member of
// its view, sorted by address (nil on a local-only node).
func (n *Node) Reachability() []PeerReachability {
	if n.probes == nil {
		return nil
	}
	return n.probes.snapshot()
}

// ProbeStats are this member's probe counts (zero on a local-only node).
func (n *Node) ProbeStats() ProbeStats {
	if n.probes == nil {
		return ProbeStats{}
	}
	return n.probes.probeStats()
}

// Isolated is why this member stopped serving on its probes' findings (it
// could not reach a majority of the others, or a peer dropped it from its
// view), "" while it serves.
func (n *Node) Isolated() string {
	if n.probes == nil {
		return ""
	}
	return n.probes.isolatedReason()
}

// View is this member's routing view (see View).
func (n *Node) View() View { return n.lookupImpl.view() }

// Owner is the address (host:port) of the member that owns the actor
// identity of kind in this member's view: where it is activated. "" while
// the member list is not known yet.
func (n *Node) Owner(identity, kind string) string { return n.lookupImpl.owner(identity, kind) }

// Forget drops the cached location of an actor, so that the next Request
// asks its owner again.
func (n *Node) Forget(identity, kind string) {
	n.cluster.PidCache.Remove(identity, kind)
}

// lookup asks the owner to activate the actor, bounded by timeout:
// protoactor's Get (our placement's) waits a fixed 5 s on an owner that
// just died or is cut off, far longer than one attempt should, so the
// request goes to the placement with the attempt's own timeout.
func (n *Node) lookup(identity, kind string, timeout time.Duration) *actor.PID {
	return n.lookupImpl.getWithin(pcluster.NewClusterIdentity(identity, kind), timeout)
}

// Stop leaves the cluster. With graceful set, the node tells the others it
// leaves and waits for ownership to move (protoactor waits about 2 s).
func (n *Node) Stop(graceful bool) {
	select {
	case <-n.stopped:
		return
	default:
		close(n.stopped)
	}
	if n.deaths != nil {
		n.deaths.stop()
	}
	if n.probes != nil {
		n.probes.close()
	}
	if graceful && n.cfg.Provider != nil {
		// Leave the member list first, so that the others route this
		// member's orders elsewhere while its actors still answer.
		_ = n.cfg.Provider.Shutdown(true)
		time.Sleep(leaveDelay)
	}
	if !graceful && n.cfg.Provider != nil {
		// protoactor calls the provider's Shutdown only on a graceful stop:
		// stop the lease loop here (the record then expires as after a crash).
		_ = n.cfg.Provider.Shutdown(false)
	}
	shutdown(n.cfg.Logger, func() { n.cluster.Shutdown(graceful) })
}

// shutdown runs stop, a shutdown of protoactor's cluster or remote, and
// recovers a panic of protoactor's endpoint manager: its graceful stop
// sends on the channel of every incoming stream, and panics ("send on
// closed channel") when one of them closes at that moment (a peer that
// stops or dies at the same time; seen in the cluster tests). The node is
// stopping anyway; what the panic skipped (the rest of the remote's stop)
// ends with the process.
func shutdown(log *slog.Logger, stop func()) {
	defer func() {
		if r := recover(); r != nil {
			log.Warn("protoactor panicked while stopping the node-to-node endpoint; stopping anyway", slog.Any("panic", r))
		}
	}()
	stop()
}

// ShutdownRemote is a graceful stop of the node-to-node endpoint of
// system alone (its server and its connections to the others), with
// protoactor's panic there recovered as in Stop. For tests that emulate a
// dead process.
func ShutdownRemote(system *actor.ActorSystem, log *slog.Logger) {
	shutdown(log, func() { remote.GetRemote(system).Shutdown(true) })
}

// leaveDelay is how long a leaving member keeps serving after it left the
// member list, so that the others have polled the registry.
const leaveDelay = 750 * time.Millisecond

// singleMember is the membership provider of a standalone node: the member
// list is this node alone.
type singleMember struct{}

func (s *singleMember) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(pcluster.Members{{
		Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds(),
	}})
	return nil
}

func (s *singleMember) StartClient(*pcluster.Cluster) error { return nil }
func (s *singleMember) Shutdown(bool) error                 { return nil }

// minLevel drops records below min (protoactor logs a lot at info level).
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && peerChurn[r.Message] {
		// A peer that stops, restarts or dies: protoactor logs it as an
		// error; the membership logs what it means (a member left, is gone).
		r.Level = slog.LevelInfo
		if r.Level < m.min {
			return nil
		}
	}
	return m.h.Handle(ctx, r)
}

// peerChurn are protoactor's error messages about a connection to a peer
// that went away, which every planned stop and restart of a member causes.
var peerChurn = map[string]bool{
	"EndpointWriter lost connection":                      true,
	"EndpointWriter failed to connect":                    true,
	"EndpointWriter failed to create receive stream":      true,
	"EndpointWriter failed to send connect request":       true,
	"EndpointWriter failed to receive connect response":   true,
	"EndpointWriter error when closing the client conn":   true,
	"EndpointWriter error when closing the stream":        true,
	"EndpointReader failed to send disconnection message": true,
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{h: m.h.WithGroup(g), min: m.min} }
