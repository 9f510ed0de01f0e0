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
