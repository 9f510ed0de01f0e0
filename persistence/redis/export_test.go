package redis

import (
	"context"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/testservers"
)

// SharedCluster is the private Redis Cluster (3 primaries, 1 replica
// each) that the package's cluster tests and benchmarks share; TestMain
// stops it. Tests that kill nodes start clusters of their own.
var SharedCluster = &testservers.RedisClusterOnce{Primaries: 3, ReplicasPerPrimary: 1}

// DeleteKeys deletes every key under prefix, on every primary of a cluster
// client, and returns the number deleted.
func DeleteKeys(ctx context.Context, c goredis.UniversalClient, prefix string) (int, error) {
	if cc, ok := c.(*goredis.ClusterClient); ok {
		var (
			mu sync.Mutex
			n  int
		)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
			k, err := deleteOn(ctx, node, prefix)
			mu.Lock()
			n += k
			mu.Unlock()
			return err
		})
		return n, err
	}
	return deleteOn(ctx, c, prefix)
}

func deleteOn(ctx context.Context, c goredis.UniversalClient, prefix string) (int, error) {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	n := 0
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	for _, k := range keys { // one by one: keys of many slots
		if err := c.Unlink(ctx, k).Err(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// SetReadModelSnapshotChunkSize makes read-model snapshots use chunks of n
// bytes.
func (b *Backend) SetReadModelSnapshotChunkSize(n int) { b.rmsnapChunk.Store(int64(n)) }

// ReadModelSnapshotChunkKey is the key of chunk i of generation gen of
// partition p's read-model snapshot.
func (b *Backend) ReadModelSnapshotChunkKey(p int, gen uint64, i int) string {
	return b.parts[p].rmsnapChunkKeys(gen, i+1)[i]
}

// Client is the backend's Redis client.
func (b *Backend) Client() goredis.UniversalClient { return b.rdb }
