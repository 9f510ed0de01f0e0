package registrytest_test

import (
	"sync"
	"testing"

	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
)

func TestMemoryRegistrySecretContract(t *testing.T) {
	var mu sync.Mutex
	regs := map[*testing.T]*registry.MemoryRegistry{}
	registrytest.RunSecret(t, func(t *testing.T) registry.SecretKeeper {
		mu.Lock()
		defer mu.Unlock()
		if regs[t] == nil {
			regs[t] = registry.NewMemoryRegistry()
		}
		return regs[t]
	})
}
