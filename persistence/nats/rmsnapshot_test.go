package nats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
)

// snapshotChunk is the chunk size of the read-model snapshot tests.
const snapshotChunk = 64 << 10

func snapshotFixture(url string, opts Options) journaltest.SnapshotFixture {
	nb := func(b journaltest.SnapshotBackend) *Backend { return b.(*Backend) }
	return journaltest.SnapshotFixture{
		New: func(t *testing.T) journaltest.SnapshotBackend {
			o := opts
			o.Partitions = 4
			b := newBackend(t, url, o)
			b.rmsnapChunk = snapshotChunk
			return b
		},
		ChunkSize: func(journaltest.SnapshotBackend) int { return snapshotChunk },
		Chunk: func(t *testing.T, b journaltest.SnapshotBackend, p int, gen uint64, i int) bool {
			_, err := nb(b).rmsnap.Get(context.Background(), rmsnapChunkKey(p, gen, i))
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			return true
		},
		DropChunk: func(t *testing.T, b journaltest.SnapshotBackend, p int, gen uint64, i int) {
			if err := nb(b).rmsnap.Purge(context.Background(), rmsnapChunkKey(p, gen, i)); err != nil {
				t.Fatal(err)
			}
		},
		SpoilChunk: func(t *testing.T, b journaltest.SnapshotBackend, p int, gen uint64, i int) {
			ctx := context.Background()
			e, err := nb(b).rmsnap.Get(ctx, rmsnapChunkKey(p, gen, i))
			if err != nil {
				t.Fatal(err)
			}
			v := append([]byte(nil), e.Value()...)
			v[len(v)/2] ^= 0x55
			if _, err := nb(b).rmsnap.Put(ctx, rmsnapChunkKey(p, gen, i), v); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestReadModelSnapshots(t *testing.T) {
	journaltest.RunReadModelSnapshots(t, snapshotFixture(testservers.NATS(t), Options{}))
}

// TestReadModelSnapshotsCluster runs the snapshot contract on a private
// three-server JetStream cluster with three replicas.
func TestReadModelSnapshotsCluster(t *testing.T) {
	c := cluster(t)
	journaltest.RunReadModelSnapshots(t, snapshotFixture(c.URLs(), Options{Replicas: 3, SetupTimeout: time.Minute}))
}

// TestJournalIdentity: stored with the journal, the same on reopen.
func TestJournalIdentity(t *testing.T) {
	url := testservers.NATS(t)
	first := newBackend(t, url, Options{})
	o := first.opts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	again, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if first.JournalIdentity() == "" || again.JournalIdentity() != first.JournalIdentity() {
		t.Fatalf("identity %q, then %q on reopen", first.JournalIdentity(), again.JournalIdentity())
	}
}
