package cluster

import (
	"net"
	"strconv"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// Test hooks that break one in-process member from inside, as the faults of
// issue 14 do (clustertest uses them; SimulateCut is in wireguard.go).

// SimulateDrop removes the member memberID from this member's protoactor
// member list, as protoactor's gossip did to a member whose heartbeat
// looked stale: protoactor blocks that member id here for good, so this
// member's view diverges from the others' until the dropped member fences
// and rejoins as a new incarnation.
func (n *Node) SimulateDrop(memberID string) {
	r := n.lookupImpl.ring.Load()
	if r == nil {
		return
	}
	ms := make(pcluster.Members, 0, len(r.members))
	for _, m := range r.members {
		if m.id == memberID {
			continue
		}
		host, port, err := net.SplitHostPort(m.address)
		if err != nil {
			continue
		}
		p, _ := strconv.Atoi(port)
		ms = append(ms, &pcluster.Member{Id: m.id, Host: host, Port: int32(p), Kinds: append([]string(nil), m.kinds...)})
	}
	n.cluster.MemberList.UpdateClusterTopology(ms)
}

// SimulateGossipStall stops this member's protoactor gossip (its loop and
// actor), so that the others see its gossip heartbeat age. The member must
// not stop gracefully afterwards (protoactor would stop the gossip again,
// which panics); Stop(false) is fine.
func (n *Node) SimulateGossipStall() {
	n.cluster.Gossip.Shutdown()
}
