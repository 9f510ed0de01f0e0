//go:build !race

// Two cluster members in one process cannot run under the race detector
// (see namespace_test.go); .ci/run runs this file without it.

package node_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// GET /orders/{id}?asOf= through the member that does not own the order
// reaches the owner's actor (GetOrderAsOf over the members' gRPC), which
// answers from the order's snapshot (every 2 events here) or from the first
// event, and refuses a version the order does not have.
func TestOrderAsOfThroughAnyMember(t *testing.T) {
	redis := testservers.StartRedis(t)
	name := randomClusterName(t, "asof")
	nodes := make([]*testNode, 2)
	for i := range nodes {
		nodes[i] = startNode(t, clusterOn(node.Redis, redis.Addr(), name), func(c *node.Config) {
			c.NodeID, c.SnapshotEvery = fmt.Sprintf("%s-n%d", name, i+1), 2
		})
	}
	for _, tn := range nodes {
		poll.Eventually(t, 15*time.Second, poll.True("both members in the view", func() bool {
			var info struct{ Members []struct{ ID string } }
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			return len(info.Members) == 2
		}))
	}
	owner := nodes[1].n.Config().NodeID
	var id string
	for i := 0; ; i++ {
		r := nodes[1].expect(nodes[1].do("POST", "/orders", seedOrder), http.StatusCreated)
		var c struct{ OrderID string }
		r.json(t, &c)
		if r.header.Get("X-Order-Owner") == owner {
			id = c.OrderID
			break
		}
		if i > 50 {
			t.Fatal("the second member owns none of 50 orders")
		}
	}
	nodes[1].expect(nodes[1].do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	nodes[1].expect(nodes[1].do("POST", "/orders/"+id+"/ship", `{"trackingNumber":"T-1"}`), http.StatusOK)
	if s, ok, err := nodes[1].n.Backend().LoadSnapshot(context.Background(), id); err != nil || !ok || s.Version != 2 {
		t.Fatalf("snapshot: version %d ok=%v err=%v, want 2", s.Version, ok, err)
	}
	for _, c := range []struct {
		version uint64
		status  string
	}{{1, "Pending"}, {2, "Paid"}, {3, "Shipped"}} {
		r := nodes[0].expect(nodes[0].do("GET", "/orders/"+id+"?asOf="+strconv.FormatUint(c.version, 10), ""), http.StatusOK)
		var got struct {
			OrderID, Status string
			Version         uint64
		}
		r.json(t, &got)
		if got.OrderID != id || got.Status != c.status || got.Version != c.version || r.header.Get("X-Order-Owner") != owner {
			t.Errorf("asOf=%d through the other member: %+v (owner %q), want %s v%d from %s", c.version, got, r.header.Get("X-Order-Owner"), c.status, c.version, owner)
		}
	}
	nodes[0].expect(nodes[0].do("GET", "/orders/"+id+"?asOf=4", ""), http.StatusNotFound)
}
