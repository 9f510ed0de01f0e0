package registrytest_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryRegistryContract(t *testing.T) {
	registrytest.Run(t, registrytest.Options{TTL: 300 * time.Millisecond, ExpirySlack: 500 * time.Millisecond},
		func(t *testing.T, _ time.Duration) registry.Registry { return registry.NewMemoryRegistry() })
}
