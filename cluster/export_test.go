package cluster

import "github.com/asynkron/protoactor-go/actor"

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
