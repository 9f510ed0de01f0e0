package redis_test

import (
	"testing"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/redis"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

// TestContractCluster runs the transport contract on a private Redis
// Cluster (its seeds as Addr: a cluster client). Every command of the
// transport names one key (the stream), so each goes to that key's shard;
// blocking reads go through the cluster client in short slices. The
// cluster is private: its keys go with it.
func TestContractCluster(t *testing.T) {
	c := testservers.StartRedisCluster(t, 3, 0)
	transporttest.Run(t, func(t *testing.T) transport.Transport {
		return newTransport(t, c.Seeds(), redis.Options{Key: uniqueKey(t)})
	}, transporttest.Features{DuplicatePublishDelivered: true})
}
