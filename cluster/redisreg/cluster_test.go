package redisreg_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

// clusterRegistry returns a registry on a Redis Cluster's seeds under a
// prefix unique to t, whose keys are deleted on every primary when t ends.
func clusterRegistry(t *testing.T, c *testservers.RedisCluster) *redisreg.Registry {
	t.Helper()
	prefix := "ostest:" + registrytest.NewID("p") + ":"
	reg, err := redisreg.New(redisreg.Options{Addr: c.Seeds(), Prefix: prefix, Cluster: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = reg.Close()
		cl := c.Client()
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cl.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
			iter := n.Scan(ctx, 0, prefix+"*", 256).Iterator()
			for iter.Next(ctx) {
				n.Del(ctx, iter.Val())
			}
			return iter.Err()
		})
	})
	return reg
}

// TestRedisClusterRegistryContract runs the registry and secret contracts
// on a private Redis Cluster: member keys, the index and the secret lie in
// different slots, so every multi-key step must be split by slot.
func TestRedisClusterRegistryContract(t *testing.T) {
	c := testservers.StartRedisCluster(t, 3, 0)
	registrytest.Run(t, registrytest.Options{TTL: 500 * time.Millisecond, ExpirySlack: time.Second},
		func(t *testing.T, _ time.Duration) registry.Registry { return clusterRegistry(t, c) })
	regs := map[*testing.T]*redisreg.Registry{}
	registrytest.RunSecret(t, func(t *testing.T) registry.SecretKeeper {
		if r, ok := regs[t]; ok {
			return r
		}
		regs[t] = clusterRegistry(t, c)
		return regs[t]
	})
}
