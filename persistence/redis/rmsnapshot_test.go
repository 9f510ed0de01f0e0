package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// snapshotChunk is the chunk size of the read-model snapshot tests: small,
// so the cases cross several chunks without writing megabytes.
const snapshotChunk = 64 << 10

func snapshotFixture(addr string) journaltest.SnapshotFixture {
	rb := func(b journaltest.SnapshotBackend) *redis.Backend { return b.(*redis.Backend) }
	return journaltest.SnapshotFixture{
		New: func(t *testing.T) journaltest.SnapshotBackend {
			b := newBackend(t, addr, redis.Options{Partitions: 4})
			b.SetReadModelSnapshotChunkSize(snapshotChunk)
			return b
		},
		ChunkSize: func(journaltest.SnapshotBackend) int { return snapshotChunk },
		Chunk: func(t *testing.T, b journaltest.SnapshotBackend, p int, gen uint64, i int) bool {
			n, err := rb(b).Client().Exists(context.Background(), rb(b).ReadModelSnapshotChunkKey(p, gen, i)).Result()
			if err != nil {
				t.Fatal(err)
			}
			return n == 1
		},
		DropChunk: func(t *testing.T, b journaltest.SnapshotBackend, p int, gen uint64, i int) {
			if err := rb(b).Client().Del(context.Background(), rb(b).ReadModelSnapshotChunkKey(p, gen, i)).Err(); err != nil {
				t.Fatal(err)
			}
		},
		SpoilChunk: func(t *testing.T, b journaltest.SnapshotBackend, p int, gen uint64, i int) {
			ctx := context.Background()
			key := rb(b).ReadModelSnapshotChunkKey(p, gen, i)
			v, err := rb(b).Client().Get(ctx, key).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			v[len(v)/2] ^= 0x55
			if err := rb(b).Client().Set(ctx, key, v, 0).Err(); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestReadModelSnapshots(t *testing.T) {
	journaltest.RunReadModelSnapshots(t, snapshotFixture(testservers.Redis(t)))
}

// TestReadModelSnapshotsCluster runs the snapshot contract on the shared
// private Redis Cluster: every key of a partition's snapshot shares the
// partition's hash tag, so the commit script (manifest and chunks) runs on
// the partition's shard.
func TestReadModelSnapshotsCluster(t *testing.T) {
	journaltest.RunReadModelSnapshots(t, snapshotFixture(redis.SharedCluster.Get(t).Seeds()))
}

// TestJournalIdentity: the identity is stored with the journal (the same
// on reopen) and a journal wiped and started again has another.
func TestJournalIdentity(t *testing.T) {
	srv := testservers.StartRedis(t)
	open := func() *redis.Backend {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := redis.New(ctx, redis.Options{Addr: srv.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	first := open().JournalIdentity()
	if again := open().JournalIdentity(); first == "" || again != first {
		t.Fatalf("identity %q, then %q on reopen", first, again)
	}
	srv.RestartEmpty()
	if wiped := open().JournalIdentity(); wiped == first || wiped == "" {
		t.Fatalf("identity %q after the server restarted empty, %q before", wiped, first)
	}
}
