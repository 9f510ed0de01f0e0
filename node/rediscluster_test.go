package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/persistence"
)

// TestNodeOnARedisCluster: a cluster member whose journal, transport and
// membership all live on a Redis Cluster of three primaries (--redis with
// the seed list) serves orders, publishes them (every partition's lag
// back to 0, the read model lists them), and a restarted node rebuilds
// them from the partitions spread over the shards.
func TestNodeOnARedisCluster(t *testing.T) {
	rc := testservers.StartRedisCluster(t, 3, 0)
	cfg := clusterOn(node.Redis, rc.Seeds(), randomClusterName(t, "rc"))
	tn := startNode(t, cfg)
	var ids []string
	for range 20 {
		ids = append(ids, tn.create(seedOrder))
	}
	for _, id := range ids[:5] {
		tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	}
	listedAll := func(tn *testNode) error {
		var list []struct{ OrderID string }
		tn.expect(tn.do("GET", "/orders?limit=100", ""), http.StatusOK).json(t, &list)
		for _, id := range ids {
			if !slices.ContainsFunc(list, func(o struct{ OrderID string }) bool { return o.OrderID == id }) {
				return fmt.Errorf("order %s not listed (%d listed)", id, len(list))
			}
		}
		return nil
	}
	poll.Eventually(t, 15*time.Second, func() error { return listedAll(tn) })
	poll.Eventually(t, 15*time.Second, func() error {
		st, _, gauge := outboxOf(t, tn)
		if st.Lag != 0 || gauge != 0 || st.Head != 25 || len(st.Partitions) != persistence.DefaultPartitions {
			return fmt.Errorf("outbox %+v, gauge %d: want 25 events published over %d partitions", st, gauge, persistence.DefaultPartitions)
		}
		return nil
	})
	stopNode(t, tn.n)

	tn = startNode(t, cfg)
	if err := listedAll(tn); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	var paid []struct{ OrderID string }
	tn.expect(tn.do("GET", "/orders?status=Paid", ""), http.StatusOK).json(t, &paid)
	if len(paid) != 5 {
		t.Fatalf("%d paid orders after a restart, want 5", len(paid))
	}
}

// TestPartitionCountIsEnforced: a node configured with another partition
// count than the journal was created with refuses to start and says how to
// fix it; --partitions 0 takes the stored count.
func TestPartitionCountIsEnforced(t *testing.T) {
	s := testservers.StartRedis(t)
	on := func(parts int) func(*node.Config) {
		return func(c *node.Config) {
			c.Persistence, c.Transport, c.Redis, c.Partitions = node.Redis, node.Redis, s.Addr(), parts
		}
	}
	tn := startNode(t, on(8))
	id := tn.create(seedOrder)
	stopNode(t, tn.n)

	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.DrainDelay = 0, "n1", 0
	on(16)(&cfg)
	n, err := node.Start(context.Background(), cfg)
	var mm *persistence.PartitionMismatchError
	if err == nil {
		_ = n.Shutdown(context.Background())
		t.Fatal("a node with 16 partitions started on a journal made with 8")
	}
	if !errors.As(err, &mm) || mm.Stored != 8 || mm.Configured != 16 {
		t.Fatalf("start with 16 partitions on a journal of 8: %v, want a PartitionMismatchError", err)
	}
	tn = startNode(t, on(0))
	tn.expect(tn.do("GET", "/orders/"+id, ""), http.StatusOK)
}

// stopNode shuts a node down and fails the test if that fails.
func stopNode(t *testing.T, n *node.Node) {
	t.Helper()
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
