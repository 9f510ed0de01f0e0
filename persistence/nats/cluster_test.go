package nats

import (
	"testing"

	"github.com/ordersystem/ordersystem/internal/testservers"
)

// cluster starts a private three-server JetStream cluster for one test.
func cluster(t *testing.T) *testservers.JSCluster {
	t.Helper()
	return testservers.StartJetStreamCluster(t, 3)
}
