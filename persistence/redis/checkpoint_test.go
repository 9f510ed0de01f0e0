package redis_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// TestPartitionCheckpointKeys: a partition's checkpoint is the key
// <prefix>{p<N>}:checkpoint:<name>, in the partition's slot; one that
// exists only in the <prefix>checkpoints hash of earlier releases is read
// from it once and moved to its key, after which the hash is not read
// again (and not changed); a key saved before the move wins over the hash.
// On one server and on the shared Redis Cluster.
func TestPartitionCheckpointKeys(t *testing.T) {
	t.Run("standalone", func(t *testing.T) { testPartitionCheckpointKeys(t, testservers.Redis(t)) })
	t.Run("cluster", func(t *testing.T) { testPartitionCheckpointKeys(t, redis.SharedCluster.Get(t).Seeds()) })
}

func testPartitionCheckpointKeys(t *testing.T, addr string) {
	prefix := uniquePrefix(t)
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// What an earlier release left: partitions 2 and 3 in the hash.
	if err := raw.HSet(ctx, prefix+"checkpoints", "outbox-2", 7, "outbox-3", 9).Err(); err != nil {
		t.Fatal(err)
	}
	b, err := redis.New(ctx, redis.Options{Addr: addr, Prefix: prefix, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := func(p int, name string) string { return prefix + "{p" + strconv.Itoa(p) + "}:checkpoint:" + name }
	get := func(k string) string {
		t.Helper()
		v, err := raw.Get(ctx, k).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			t.Fatalf("GET %s: %v", k, err)
		}
		return v
	}
	lc := func(p int) persistence.LogCheckpoints { return b.Log(p).(persistence.LogCheckpoints) }

	// Partition 3 saved under the new key before anything read the hash.
	if err := lc(3).SaveCheckpoint(ctx, "outbox-3", 11); err != nil {
		t.Fatal(err)
	}
	if cp, err := lc(3).LoadCheckpoint(ctx, "outbox-3"); err != nil || cp != 11 {
		t.Fatalf("partition 3: %d, %v; want the key's 11, not the hash's 9", cp, err)
	}
	// Partition 2: moved from the hash on the first read (with the head).
	mustAppendTo(t, b, 2, 4)
	cp, head, err := lc(2).CheckpointAndHead(ctx, "outbox-2")
	if err != nil || cp != 7 || head != 1 {
		t.Fatalf("partition 2: checkpoint %d, head %d, %v; want 7 from the hash and head 1", cp, head, err)
	}
	if v := get(key(2, "outbox-2")); v != "7" {
		t.Fatalf("after the move %s is %q, want 7", key(2, "outbox-2"), v)
	}
	if err := lc(2).SaveCheckpoint(ctx, "outbox-2", 8); err != nil {
		t.Fatal(err)
	}
	if cp, err := lc(2).LoadCheckpoint(ctx, "outbox-2"); err != nil || cp != 8 {
		t.Fatalf("partition 2 after a save: %d, %v; want 8", cp, err)
	}
	if v, err := raw.HGet(ctx, prefix+"checkpoints", "outbox-2").Result(); err != nil || v != "7" {
		t.Fatalf("the hash's outbox-2 is %q (%v): the move must leave it as it was", v, err)
	}
	// Partition 1: nowhere, so 0 and no key written.
	if cp, head, err := lc(1).CheckpointAndHead(ctx, "outbox-1"); err != nil || cp != 0 || head != 0 {
		t.Fatalf("partition 1: %d, %d, %v; want 0, 0", cp, head, err)
	}
	if n, err := raw.Exists(ctx, key(1, "outbox-1")).Result(); err != nil || n != 0 {
		t.Fatalf("reading a missing checkpoint wrote %s (exists %d, %v)", key(1, "outbox-1"), n, err)
	}
	// Checkpoints of no partition stay in the hash.
	if cp, err := b.LoadCheckpoint(ctx, "outbox-2"); err != nil || cp != 7 {
		t.Fatalf("Backend.LoadCheckpoint(outbox-2): %d, %v; want the hash's 7", cp, err)
	}
}

// mustAppendTo appends one record to a new stream of partition p of n.
func mustAppendTo(t *testing.T, b *redis.Backend, p, n int) {
	t.Helper()
	id := streamIn("cp", p, n)
	if _, err := b.Append(context.Background(), id, 0, []persistence.Record{{Type: "Ev"}}); err != nil {
		t.Fatalf("append to %s (partition %d): %v", id, p, err)
	}
}
