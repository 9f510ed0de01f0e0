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
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// Both event streams work through any member: a subscriber on one member
// sees the events of orders the other owns, from the shared journal.
func TestEventStreamsThroughAnyMember(t *testing.T) {
	redis := testservers.StartRedis(t)
	name := randomClusterName(t, "sse")
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
	// An order owned by the second member, created through it.
	var id string
	for i := 0; ; i++ {
		r := nodes[1].expect(nodes[1].do("POST", "/orders", seedOrder), http.StatusCreated)
		var c struct{ OrderID string }
		r.json(t, &c)
		if r.header.Get("X-Order-Owner") == nodes[1].n.Config().NodeID {
			id = c.OrderID
			break
		}
		if i > 50 {
			t.Fatal("the second member owns none of 50 orders")
		}
	}
	all := openSSE(t, nodes[0].base+"/events")
	one := openSSE(t, nodes[0].base+"/orders/"+id+"/events")
	if m := one.next(t); m.event != "OrderCreated" {
		t.Fatalf("history through the other member: %s", m.event)
	}
	start := time.Now()
	nodes[1].expect(nodes[1].do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	for name, c := range map[string]*sseClient{"events": all, "order events": one} {
		for {
			m := c.next(t)
			if m.data["orderId"] == id && m.event == "OrderPaid" {
				break
			}
		}
		t.Logf("%s: the other member's event arrived after %v", name, time.Since(start).Round(time.Millisecond))
	}
}
