//go:build !race

// Two cluster members in one process cannot run under the race detector
// (see namespace_test.go); .ci/run runs this file without it.

package node_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/persistence"
)

// TestClusterOnRedisSentinel: two members whose journal, transport and
// membership are on the master a Sentinel watches (--redis <sentinel>
// --redis-master-name) see each other, split the orders between them,
// answer for the other's orders, and both report every event published
// (the lag from the checkpoints on the primary, lag 0 on both); the
// membership and journal keys are on the primary.
func TestClusterOnRedisSentinel(t *testing.T) {
	s := startSentinelSetup(t)
	name := randomClusterName(t, "sent")
	nodes := make([]*testNode, 2)
	for i := range nodes {
		nodes[i] = startNode(t, clusterOn(node.Redis, s.sentinel, name), func(c *node.Config) {
			c.RedisMasterName, c.NodeID = sentinelMaster, fmt.Sprintf("%s-n%d", name, i+1)
		})
	}
	for _, tn := range nodes {
		poll.Eventually(t, 15*time.Second, poll.True("both members in the view", func() bool {
			var info struct{ Members []struct{ ID string } }
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			return len(info.Members) == 2
		}))
	}
	owners := map[string]int{}
	want := map[string]int64{}
	var ids []string
	for i := range 20 {
		r := nodes[i%2].expect(nodes[i%2].do("POST", "/orders", seedOrder), http.StatusCreated)
		var c struct{ OrderID string }
		r.json(t, &c)
		owners[r.header.Get("X-Order-Owner")]++
		ids, want[c.OrderID] = append(ids, c.OrderID), 1
	}
	if len(owners) != 2 {
		t.Fatalf("owners of 20 orders: %v, want both members", owners)
	}
	for i, id := range ids[:6] {
		nodes[(i+1)%2].expect(nodes[(i+1)%2].do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
		want[id] = 2
	}
	for _, tn := range nodes {
		for _, id := range ids[:6] {
			if status, version := orderStatus(tn, id); status != "Paid" || version != 2 {
				t.Errorf("order %s through %s: %s v%d, want Paid v2", id, tn.n.Config().NodeID, status, version)
			}
		}
		poll.Eventually(t, 15*time.Second, func() error { return listsAll(tn, ids) })
		poll.Eventually(t, 15*time.Second, func() error {
			st, _, gauge := outboxOf(t, tn)
			if st.Lag != 0 || gauge != 0 || st.Head != 26 || len(st.Partitions) != persistence.DefaultPartitions {
				return fmt.Errorf("outbox on %s: %+v, gauge %d: want 26 events published over %d partitions", tn.n.Config().NodeID, st, gauge, persistence.DefaultPartitions)
			}
			return nil
		})
	}
	rdb := plainRedis(t, s.primary.Addr())
	keys, err := rdb.Keys(t.Context(), name+":members:*").Result()
	if err != nil || len(keys) < 2 {
		t.Errorf("membership keys %s:members:* on the primary: %v, %v; want the two members'", name, keys, err)
	}
	checkJournaledOn(t, s.primary.Addr(), name+":", want)
}
