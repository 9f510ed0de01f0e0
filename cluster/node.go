package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Errors of cluster calls.
var (
	// ErrUnavailable means no member could host or reach the actor in time.
	ErrUnavailable = errors.New("actor unavailable")
	// ErrStopped is returned by Request after Stop.
	ErrStopped = errors.New("node stopped")
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
	Logger         *slog.Logger
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
	stopped    chan struct{}
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
			adv = net.JoinHostPort(adv, strconv.Itoa(cfg.Port))
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
	ropts = append(ropts, remote.WithServerOptions(sopts...), remote.WithDialOptions(dopts...))
	rcfg := remote.Configure(cfg.Host, cfg.Port, ropts...)
	provider := cfg.Provider
	if provider == nil {
		provider = &singleMember{}
	}
	lookup := newPlacement()
	ccfg := pcluster.Configure(cfg.ClusterName, provider, lookup, rcfg, pcluster.WithKinds(cfg.Kinds...))
	c := pcluster.New(system, ccfg)

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
	return &Node{cfg: cfg, system: system, cluster: c, lookupImpl: lookup, guard: g, stopped: make(chan struct{})}, nil
}

// isLoopback reports whether host is a loopback address or localhost.
func isLoopback(host string) bool {
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
		pid, ok := n.cluster.PidCache.Get(identity, kind)
		if !ok || pid == nil {
			pid = n.lookup(identity, kind, timeout)
			if pid == nil {
				lastErr = errors.New("no member could activate it in time")
				continue
			}
			n.cluster.PidCache.Set(identity, kind, pid)
		}
		res, err := n.system.Root.RequestFuture(pid, msg, timeout).Result()
		if err == nil {
			if _, dead := res.(*actor.DeadLetterResponse); !dead {
				return res, nil
			}
			err = actor.ErrDeadLetter
		}
		lastErr = err
		// The activation stopped, moved or did not answer: forget its PID
		// and try again with the same message.
		n.cluster.PidCache.RemoveByValue(identity, kind, pid)
	}
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
// protoactor's Get waits a fixed 5 s on an owner that just died, far longer
// than one attempt should (the goroutine it runs in ends with it).
func (n *Node) lookup(identity, kind string, timeout time.Duration) *actor.PID {
	if n.lookupImpl.ownedHere(identity, kind) {
		// This member's own placement actor answers at once (a stopped one
		// dead-letters the request at once, and the member's health check
		// then starts a new incarnation): ask it directly (every create
		// takes this path on a single node).
		return n.cluster.Get(identity, kind)
	}
	ch := make(chan *actor.PID, 1)
	go func() { ch <- n.cluster.Get(identity, kind) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case pid := <-ch:
		return pid
	case <-t.C:
		return nil
	case <-n.stopped:
		return nil
	}
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
	n.cluster.Shutdown(graceful)
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
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{h: m.h.WithGroup(g), min: m.min} }
