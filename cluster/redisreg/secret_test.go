package redisreg_test

import (
	"sync"
	"testing"

	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestRedisRegistrySecretContract(t *testing.T) {
	addr := testservers.Redis(t)
	var mu sync.Mutex
	prefixes := map[*testing.T]string{}
	registrytest.RunSecret(t, func(t *testing.T) registry.SecretKeeper {
		mu.Lock()
		prefix, ok := prefixes[t]
		if !ok {
			prefix = "ostest:" + registrytest.NewID("s") + ":"
			prefixes[t] = prefix
			t.Cleanup(func() { deleteKeys(t, addr, prefix) })
		}
		mu.Unlock()
		reg, err := redisreg.New(redisreg.Options{Addr: addr, Prefix: prefix, Cluster: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reg.Close() })
		return reg
	})
}
