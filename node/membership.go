package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/supervisor"
)

// closableRegistry is the membership registry with its Close.
type closableRegistry interface {
	registry.Registry
	io.Closer
}

// discovery returns the backend that holds the member leases: --discovery,
// else the persistence backend if it is shared, else the transport's.
func (c *Config) discovery() string {
	if c.Discovery != "" && c.Discovery != "auto" {
		return c.Discovery
	}
	for _, b := range []string{c.Persistence, c.Transport} {
		if b == Redis || b == NATS {
			return b
		}
	}
	if len(c.Peers) > 0 {
		return "peers"
	}
	return InMemory
}

// peerProvider is static membership over --peers (protoactor's automanaged
// provider: each node answers on its HTTP port + 2000 and polls the others).
// It has no lease and no fencing; it is for in-memory experiments only.
func (n *Node) peerProvider() (pcluster.ClusterProvider, error) {
	hosts := make([]string, 0, len(n.cfg.Peers))
	for _, p := range n.cfg.Peers {
		h, port, _ := net.SplitHostPort(p)
		pn, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("--peers=%s: %w", p, err)
		}
		hosts = append(hosts, net.JoinHostPort(h, strconv.Itoa(pn+peerPortOffset)))
	}
	if n.cfg.Persistence == InMemory {
		n.log.Warn("IN-MEMORY CLUSTER: every node keeps its own orders in memory; when a node stops, the orders it owned are LOST and others cannot see them. Use --persistence redis or nats for anything but an experiment.")
	}
	return automanaged.NewWithConfig(time.Second, n.cfg.Port+peerPortOffset, hosts...), nil
}

// peerPortOffset is the distance from a node's HTTP port to its --peers
// membership port.
const peerPortOffset = 2000

// openRegistry connects the membership registry of a cluster node.
func (n *Node) openRegistry(ctx context.Context) (closableRegistry, error) {
	switch d := n.cfg.discovery(); d {
	case Redis:
		r, err := redisreg.New(redisreg.Options{Client: n.conns.redis, Addr: n.cfg.Redis, Cluster: n.cfg.ClusterName})
		if err != nil {
			return nil, fmt.Errorf("cluster membership on Redis (--redis=%s): %w", redact.URL(n.cfg.Redis), err)
		}
		return r, nil
	case NATS:
		r, err := natsreg.New(ctx, natsreg.Options{Conn: n.conns.nats, URL: n.cfg.NATS, Cluster: n.cfg.ClusterName, TTL: n.cfg.LeaseTTL})
		if err != nil {
			return nil, fmt.Errorf("cluster membership on NATS (--nats=%s): %w", redact.URL(n.cfg.NATS), err)
		}
		return r, nil
	default:
		return nil, fmt.Errorf("--cluster needs a shared backend for membership and orders: use --persistence redis or nats (--discovery=%s)", d)
	}
}

// newProvider returns the membership provider of a new incarnation: nil (a
// one-member cluster) in standalone mode.
func (n *Node) newProvider(ctx context.Context) (pcluster.ClusterProvider, error) {
	if !n.cfg.Cluster {
		return nil, nil
	}
	if n.cfg.discovery() == "peers" {
		return n.peerProvider()
	}
	if n.registry == nil {
		r, err := n.openRegistry(ctx)
		if err != nil {
			return nil, err
		}
		n.registry = r
	}
	lp := cluster.NewLeaseProvider(n.registry, cluster.LeaseOptions{
		NodeID:   n.cfg.NodeID,
		TTL:      n.cfg.LeaseTTL,
		Poll:     n.cfg.LeaseTTL / 8,
		Logger:   n.log,
		OnFenced: n.onFenced,
	})
	n.lease.Store(lp)
	return lp, nil
}

// serving refuses work while this node's lease is not valid (paused, cut off
// from the backend): another member may own its orders by now.
func (n *Node) serving() error {
	lp := n.lease.Load()
	if lp == nil {
		return nil
	}
	if lp.Fenced() {
		return fmt.Errorf("node %s lost its cluster lease and is rejoining", n.cfg.NodeID)
	}
	// While it leaves gracefully the node keeps serving; otherwise a lease
	// that ran out (a pause the provider has not noticed yet) stops it.
	if ok, _ := lp.Lease(); !ok && !n.leaving.Load() {
		return fmt.Errorf("node %s lost its cluster lease and is rejoining", n.cfg.NodeID)
	}
	return nil
}

// onFenced runs when the provider fenced itself: stop serving, leave, and
// rejoin as a new incarnation (protoactor never readmits a member id).
func (n *Node) onFenced(reason string) {
	n.log.Warn("fenced: this node lost its cluster lease; stopping its actors and rejoining", slog.String("reason", reason))
	n.fenced.Store(true)
	go n.rejoin()
}

func (n *Node) rejoin() {
	n.rejoinMu.Lock()
	defer n.rejoinMu.Unlock()
	if old := n.member.Swap(nil); old != nil {
		old.Stop(false)
	}
	backoff := supervisor.BackoffPolicy{Base: 200 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		select {
		case <-n.stopping:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := n.join(ctx)
		cancel()
		if err == nil {
			n.fenced.Store(false)
			n.log.Info("rejoined the cluster as a new incarnation", slog.Int("attempt", attempt))
			n.driver.Nudge()
			return
		}
		n.log.Warn("rejoin failed", slog.Int("attempt", attempt), slog.Any("error", err))
		select {
		case <-n.stopping:
			return
		case <-time.After(backoff.Delay(attempt)):
		}
	}
}

// members lists the members this node sees, with their node ids.
func (n *Node) members() []cluster.Member {
	if lp := n.lease.Load(); lp != nil {
		recs := lp.Records()
		out := make([]cluster.Member, 0, len(recs))
		for _, r := range recs {
			out = append(out, cluster.Member{ID: r.MemberID, NodeID: r.NodeID, Address: r.Address(), Kinds: r.Kinds})
		}
		return out
	}
	m := n.member.Load()
	if m == nil {
		return nil
	}
	ms := m.Members()
	for i := range ms {
		if ms[i].ID == m.System().ID {
			ms[i].NodeID = n.cfg.NodeID
		}
	}
	return ms
}
