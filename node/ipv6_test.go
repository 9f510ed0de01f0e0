//go:build !race

// Two cluster members in one process cannot run under the race detector
// (see namespace_test.go); .ci/run runs this file without it.

package node_test

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// Members that advertise an IPv6 address, bare or in brackets, reach each
// other: every create succeeds through either member and both own orders.
func TestIPv6Advertised(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		l.Close()
	}
	redis := testservers.Redis(t)
	name := randomClusterName(t, "ip6")
	nodes := make([]*testNode, 2)
	for i, adv := range []string{"::1", "[::1]"} {
		nodes[i] = startNode(t, clusterOn(node.Redis, redis, name), func(c *node.Config) {
			c.NodeID = fmt.Sprintf("%s-n%d", name, i+1)
			c.AdvertiseHost = adv
		})
	}
	for _, tn := range nodes {
		poll.Eventually(t, 15*time.Second, poll.True("both members in the view", func() bool {
			var info struct{ Members []struct{ Address string } }
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			return len(info.Members) == 2
		}))
	}
	owners := map[string]int{}
	for i := range 20 {
		r := nodes[i%2].do("POST", "/orders", seedOrder)
		if r.status != http.StatusCreated {
			t.Fatalf("create %d through member %d: %d %s", i, i%2+1, r.status, r.body)
		}
		owners[r.header.Get("X-Order-Owner")]++
	}
	if len(owners) != 2 {
		t.Fatalf("owners %v: want both members", owners)
	}
}
