//go:build !race

// Two cluster members in one process cannot run under the race detector
// (see namespace_test.go); .ci/run runs this file without it.

package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// TestOutboxLagIsTheClustersOnEveryNode: two members on one Redis; one hosts
// the outbox. Once it published everything, both report lag 0 (in /stats,
// GET /, /health and outbox_lag_events) at the cluster's checkpoint, not the
// journal's whole length on the member that does not host it.
func TestOutboxLagIsTheClustersOnEveryNode(t *testing.T) {
	redis := testservers.StartRedis(t)
	name := randomClusterName(t, "lag")
	nodes := make([]*testNode, 2)
	for i := range nodes {
		nodes[i] = startNode(t, clusterOn(node.Redis, redis.Addr(), name), func(c *node.Config) { c.NodeID = fmt.Sprintf("%s-n%d", name, i+1) })
	}
	for _, tn := range nodes {
		poll.Eventually(t, 15*time.Second, poll.True("both members in the view", func() bool {
			var info struct{ Members []struct{ ID string } }
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			return len(info.Members) == 2
		}))
	}
	const orders = 10
	for i := range orders {
		nodes[i%2].create(seedOrder)
	}
	var published uint64
	for i, tn := range nodes {
		poll.Eventually(t, 15*time.Second, func() error {
			st, h, gauge := outboxOf(t, tn)
			if st.Lag != 0 || h.Lag != 0 || gauge != 0 || st.Head < orders || st.Checkpoint != st.Head {
				return fmt.Errorf("node %d: /stats %+v, /health %+v, outbox_lag_events %d", i+1, st, h, gauge)
			}
			return nil
		})
		st, _, _ := outboxOf(t, tn)
		published += st.Published
		if st.CheckpointAhead {
			t.Fatalf("node %d reports checkpointAhead without any loss: %+v", i+1, st)
		}
	}
	if published < orders {
		t.Fatalf("the nodes count %d events published, want at least %d", published, orders)
	}
	// Both members route alike: GET / shows the same view digest of two
	// members on both.
	var views [2]struct {
		View struct {
			Digest  string
			Members int
		}
	}
	for i, tn := range nodes {
		tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &views[i])
	}
	if v := views[0].View; v.Members != 2 || v.Digest == "" || v.Digest != views[1].View.Digest {
		t.Fatalf("views %+v and %+v: want one digest of two members", views[0].View, views[1].View)
	}
	// Each reaches the other over the node-to-node port: GET / shows the
	// other member reachable with a round trip and the same view digest,
	// and /metrics its reachability and the probes.
	for i, tn := range nodes {
		poll.Eventually(t, 10*time.Second, func() error {
			var info struct {
				Members []struct {
					NodeID       string
					Address      string
					Reachability *struct {
						Reachable, Direct, Suspect bool
						RoundTripMs                float64
						ViewDigest                 string
					}
				}
			}
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			var peer string
			for _, m := range info.Members {
				r := m.Reachability
				if m.NodeID == fmt.Sprintf("%s-n%d", name, i+1) {
					if r != nil {
						return fmt.Errorf("node %d lists its own reachability %+v", i+1, *r)
					}
					continue
				}
				if r == nil || !r.Reachable || !r.Direct || r.Suspect || r.RoundTripMs <= 0 || r.ViewDigest != views[i].View.Digest {
					return fmt.Errorf("node %d sees %s as %+v, want reachable directly with a round trip and digest %s", i+1, m.NodeID, r, views[i].View.Digest)
				}
				peer = m.Address
			}
			body := string(tn.expect(tn.do("GET", "/metrics", ""), http.StatusOK).body)
			for _, want := range []string{`cluster_peer_reachable{peer="` + peer + `"} 1`, `cluster_peer_suspect{peer="` + peer + `"} 0`,
				"cluster_view_divergences_total 0", "cluster_requests_failed_fast_total 0"} {
				if !strings.Contains(body, want) {
					return fmt.Errorf("node %d: no %q in /metrics", i+1, want)
				}
			}
			if strings.Contains(body, "cluster_probes_total 0\n") {
				return fmt.Errorf("node %d sent no probes", i+1)
			}
			return nil
		})
	}
	// Both members agree on who drains each partition, and the outboxes
	// are spread over both.
	a, _, _ := outboxOf(t, nodes[0])
	b, _, _ := outboxOf(t, nodes[1])
	owners := map[string]int{}
	for p := range a.Partitions {
		if a.Partitions[p].Owner == "" || a.Partitions[p].Owner != b.Partitions[p].Owner {
			t.Fatalf("partition %d: owner %q on node 1, %q on node 2", p, a.Partitions[p].Owner, b.Partitions[p].Owner)
		}
		owners[a.Partitions[p].Owner]++
	}
	if len(owners) != 2 {
		t.Fatalf("the outboxes of %d partitions are drained by %v, want both members", len(a.Partitions), owners)
	}
}

// TestOutboxAfterRedisRestartsEmpty: Redis loses everything under a running
// node; the next order is published (the read model lists it), and /health
// and /stats say that the outbox found its checkpoint ahead and reset it.
func TestOutboxAfterRedisRestartsEmpty(t *testing.T) {
	redis := testservers.StartRedis(t)
	tn := startNode(t, func(c *node.Config) {
		c.Transport, c.Persistence, c.Redis = node.Redis, node.Redis, redis.Addr()
		c.RequestTimeout = 3 * time.Second
		c.Partitions = 1 // one log, so that the reset's figures are the test's
	})
	listed := func(id string) bool {
		var list []struct{ OrderID string }
		tn.expect(tn.do("GET", "/orders", ""), http.StatusOK).json(t, &list)
		return slices.ContainsFunc(list, func(o struct{ OrderID string }) bool { return o.OrderID == id })
	}
	var last string
	for range 3 {
		last = tn.create(seedOrder)
	}
	poll.Eventually(t, 10*time.Second, poll.True("the orders listed", func() bool { return listed(last) }))
	poll.Eventually(t, 10*time.Second, func() error {
		if st, _, _ := outboxOf(t, tn); st.Lag != 0 || st.Checkpoint != 3 {
			return fmt.Errorf("outbox %+v, want checkpoint 3 and lag 0", st)
		}
		return nil
	})

	redis.RestartEmpty()
	poll.Eventually(t, 30*time.Second, poll.True("readiness 200 after the restart", func() bool {
		return tn.do("GET", "/health/ready", "").status == http.StatusOK
	}))
	var after string
	poll.Eventually(t, 20*time.Second, func() error {
		r := tn.do("POST", "/orders", seedOrder)
		if r.status != http.StatusCreated {
			return fmt.Errorf("create after the restart: %d %s", r.status, r.body)
		}
		var c struct{ OrderID string }
		r.json(t, &c)
		after = c.OrderID
		return nil
	})
	poll.Eventually(t, 15*time.Second, poll.True("the order created after the restart listed", func() bool { return listed(after) }))
	poll.Eventually(t, 10*time.Second, func() error {
		st, h, gauge := outboxOf(t, tn)
		for _, f := range []outboxReport{st, h} {
			if !f.CheckpointAhead || f.CheckpointReset == nil || f.CheckpointReset.Checkpoint != 3 || f.CheckpointReset.StoredCheckpoint != 0 {
				return fmt.Errorf("outbox %+v: want checkpointAhead and a reset from checkpoint 3", f)
			}
		}
		if st.Lag != 0 || gauge != 0 || st.Checkpoint != st.Head || st.Head == 0 {
			return fmt.Errorf("outbox %+v, outbox_lag_events %d: want everything published", st, gauge)
		}
		return nil
	})
}
