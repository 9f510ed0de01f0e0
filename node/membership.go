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

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/peerreg"
	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/redact"
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

// peerRegistry is static membership over --peers (cluster/peerreg): each
// node serves its own member record on its HTTP port + 2000, on the
// node-to-node interface (loopback unless --advertise-host), behind the
// cluster secret when one is set and the node-to-node mutual TLS when
// --tls-ca is;
// and polls the others. The lease provider runs on top as with Redis or
// NATS. It is for in-memory experiments only: nothing is shared.
func (n *Node) peerRegistry() (closableRegistry, error) {
	peers := make([]string, 0, len(n.cfg.Peers))
	for _, p := range n.cfg.Peers {
		h, port, _ := net.SplitHostPort(p)
		pn, err := strconv.Atoi(port)
		if err != nil || pn+peerPortOffset > 65535 {
			return nil, fmt.Errorf("--peers=%s: the port must be a number up to %d (membership runs on it + %d)", p, 65535-peerPortOffset, peerPortOffset)
		}
		peers = append(peers, net.JoinHostPort(h, strconv.Itoa(pn+peerPortOffset)))
	}
	if n.cfg.Persistence == InMemory {
		n.log.Warn("IN-MEMORY CLUSTER: every node keeps its own orders in memory; when a node stops, the orders it owned are LOST and others cannot see them, and /orders, /stats and the event streams of a node show only the orders it journaled itself (readModel.scope in /stats says so). Use --persistence redis or nats for anything but an experiment.")
	}
	serverTLS, clientTLS, err := n.cfg.peerTLS()
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort(remoteHost(n.cfg), strconv.Itoa(n.cfg.Port+peerPortOffset))
	// The membership port authenticates with a key derived from the cluster
	// secret (the header it travels in then never shows the secret); open
	// on loopback without one (Validate refuses --advertise-host then).
	var secret string
	if n.cfg.ClusterSecret != "" {
		secret = cluster.DeriveSecret([]byte(n.cfg.ClusterSecret), "peer-membership/v1")
	} else {
		n.log.Warn("--peers without --cluster-secret: the membership port (HTTP port + 2000) and the node-to-node port accept every local process")
	}
	r, err := peerreg.New(peerreg.Options{
		Listen:    listen,
		Peers:     peers,
		Cluster:   n.cfg.ClusterName,
		Secret:    secret,
		ServerTLS: serverTLS,
		ClientTLS: clientTLS,
		Logger:    n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster membership over --peers (HTTP port %d + %d): %w", n.cfg.Port, peerPortOffset, err)
	}
	return r, nil
}

// peerPortOffset is the distance from a node's HTTP port to its --peers
// membership port.
const peerPortOffset = 2000

// openRegistry connects the membership registry of a cluster node.
func (n *Node) openRegistry(ctx context.Context) (closableRegistry, error) {
	switch d := n.cfg.discovery(); d {
	case "peers":
		return n.peerRegistry()
	case Redis:
		members := n.conns.redisMembers
		if members == nil {
			members = n.conns.redis // a Redis Cluster or Sentinel (see connections.open)
		}
		r, err := redisreg.New(redisreg.Options{Client: members, RenewClient: n.conns.redisLease, Addr: n.cfg.Redis, Cluster: n.cfg.ClusterName})
		if err != nil {
			return nil, fmt.Errorf("cluster membership on Redis (--redis=%s): %w", redact.URL(n.cfg.Redis), err)
		}
		return r, nil
	case NATS:
		r, err := natsreg.New(ctx, natsreg.Options{Conn: n.conns.nats, URL: n.cfg.NATS, Cluster: n.cfg.ClusterName, TTL: n.cfg.LeaseTTL,
			Replicas: n.cfg.NATSReplicas, Logger: n.log})
		if err != nil {
			return nil, fmt.Errorf("cluster membership on NATS (--nats=%s): %w", redact.URL(n.cfg.NATS), err)
		}
		return r, nil
	default:
		return nil, fmt.Errorf("--cluster needs a shared backend for membership and orders: use --persistence redis or nats (--discovery=%s)", d)
	}
}

// newProvider returns the membership provider of a new incarnation (a
// cluster.ProviderFunc): nil (a one-member cluster) in standalone mode, a
// lease provider on the registry, opened on the first call, that calls
// fenced when it fences itself.
func (n *Node) newProvider(ctx context.Context, fenced func(reason string)) (pcluster.ClusterProvider, error) {
	if !n.cfg.Cluster {
		return nil, nil
	}
	if n.registry == nil {
		r, err := n.openRegistry(ctx)
		if err != nil {
			return nil, err
		}
		n.registry = r
	}
	return cluster.NewLeaseProvider(n.registry, cluster.LeaseOptions{
		NodeID:   n.cfg.NodeID,
		TTL:      n.cfg.LeaseTTL,
		Poll:     n.cfg.LeaseTTL / 8,
		Logger:   n.log,
		Now:      n.cfg.Now,
		OnFenced: func(reason string) { n.metrics.ObserveFence(); fenced(reason) },
	}), nil
}

// secretSetupTimeout bounds the retries of the first read of the cluster
// secret, as persistence/nats's DefaultSetupTimeout bounds its setup.
const secretSetupTimeout = 30 * time.Second

// clusterSecret is the node-to-node secret of a new incarnation (a
// cluster.MemberConfig.Secret): --cluster-secret (or its file or
// variable) if set, else the one the registry keeps for the cluster
// (registry.SecretKeeper: Redis, NATS), else none (--peers without a
// secret, on loopback only; cluster.Start refuses anything else). Each
// incarnation reads the registry again, so that a rejoining member follows
// the stored secret; if the registry does not answer, the last secret read
// is used. It is never logged.
func (n *Node) clusterSecret(ctx context.Context) ([]byte, error) {
	if n.cfg.ClusterSecret != "" {
		return []byte(n.cfg.ClusterSecret), nil
	}
	keeper, ok := n.registry.(registry.SecretKeeper)
	if !ok {
		return nil, nil
	}
	n.secretMu.Lock()
	known := n.secret != nil
	n.secretMu.Unlock()
	s, err := keeper.ClusterSecret(ctx)
	if !known {
		// The first read waits for the backend as the journal's setup does
		// (a fresh replicated NATS cluster may not answer the bucket create
		// for several seconds); later incarnations fall back at once.
		deadline := time.Now().Add(secretSetupTimeout)
		for attempt := 1; err != nil && ctx.Err() == nil; attempt++ {
			wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}.Delay(attempt)
			if time.Now().Add(wait).After(deadline) {
				break
			}
			n.log.Warn("cluster secret: the registry did not answer; retrying", slog.Int("attempt", attempt),
				slog.Duration("retry_in", wait), slog.Any("error", err))
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				s, err = keeper.ClusterSecret(ctx)
			}
		}
	}
	n.secretMu.Lock()
	defer n.secretMu.Unlock()
	if err != nil {
		if n.secret != nil {
			n.log.Warn("cluster secret: the registry did not answer; using the one read before", slog.Any("error", err))
			return n.secret, nil
		}
		return nil, fmt.Errorf("read the cluster secret from the %s backend (or set --cluster-secret): %w", n.cfg.discovery(), err)
	}
	n.secret = s
	return s, nil
}
