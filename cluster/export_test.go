package cluster

import (
	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// System is the actor system of the running incarnation (nil while none
// runs), for tests that break it from inside.
func (m *Member) System() *actor.ActorSystem {
	if n := m.current(); n != nil {
		return n.System()
	}
	return nil
}

// PlacementName is the name of the placement actor.
const PlacementName = placementName

// CachePID puts pid in the node's PID cache for identity of kind, as a
// lookup would (for tests of a stale cached activation).
func (n *Node) CachePID(identity, kind string, pid *actor.PID) {
	n.cluster.PidCache.Set(identity, kind, pid)
}

// StaleActivation makes this member's placement hold, for identity of
// kind, an activation that has stopped but whose termination has not
// arrived yet: its PID is registered and dead-letters every message, as a
// stopped mailbox does. end delivers the termination.
func (n *Node) StaleActivation(identity, kind string) (pid *actor.PID, end func()) {
	ci := pcluster.NewClusterIdentity(identity, kind)
	pid, _ = n.system.ProcessRegistry.Add(n.system.DeadLetter, "stale-"+identity)
	p := n.lookupImpl
	p.mu.Lock()
	p.setLocked(&activation{id: ci, pid: pid})
	p.mu.Unlock()
	return pid, func() {
		n.system.ProcessRegistry.Remove(pid)
		p.terminated(ci, pid)
	}
}
