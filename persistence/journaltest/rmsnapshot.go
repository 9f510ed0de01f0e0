package journaltest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ordersystem/ordersystem/persistence"
)

// SnapshotBackend is a backend with read-model snapshots.
type SnapshotBackend interface {
	persistence.Backend
	persistence.ReadModelSnapshots
}

// SnapshotFixture is what RunReadModelSnapshots needs of a backend beyond
// its interface: how to make one, its chunk size, and how to reach one
// stored chunk behind its back.
type SnapshotFixture struct {
	// New returns a fresh backend (the suite closes it).
	New func(t *testing.T) SnapshotBackend
	// ChunkSize is the backend's chunk size for these backends.
	ChunkSize func(b SnapshotBackend) int
	// Chunk reports whether chunk i of generation gen of partition p's
	// snapshot is stored.
	Chunk func(t *testing.T, b SnapshotBackend, p int, gen uint64, i int) bool
	// DropChunk deletes that chunk; SpoilChunk overwrites it with data of
	// the same length and other bytes.
	DropChunk, SpoilChunk func(t *testing.T, b SnapshotBackend, p int, gen uint64, i int)
}

// RunReadModelSnapshots is the contract of persistence.ReadModelSnapshots:
// round trips at and around chunk boundaries, the replaced generation
// deleted, a missing or damaged chunk reported as ErrCorrupt, concurrent
// writers of one partition leaving one complete snapshot and no chunks of
// another generation, and bad partitions refused.
func RunReadModelSnapshots(t *testing.T, fx SnapshotFixture) {
	t.Run("ChunkBoundaries", func(t *testing.T) {
		b := fx.New(t)
		t.Cleanup(func() { _ = b.Close() })
		ctx := ctxT(t)
		cs := fx.ChunkSize(b)
		for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 2*cs + 7} {
			data := randomBytes(size)
			s, err := b.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: 1, Position: uint64(size + 1), Data: data})
			if err != nil {
				t.Fatalf("save %d bytes: %v", size, err)
			}
			if want := max(1, (size+cs-1)/cs); s.Chunks != want || s.Size != size || s.Journal != b.JournalIdentity() || s.Journal == "" || s.Partitions != b.Partitions() {
				t.Fatalf("save %d bytes (chunk size %d): stored %+v, want %d chunks", size, cs, manifestOf(s), want)
			}
			m, ok, err := b.ReadModelSnapshotManifest(ctx, 1)
			if err != nil || !ok || m.Generation != s.Generation || m.Position != uint64(size+1) || m.Data != nil || m.SavedAt.IsZero() {
				t.Fatalf("manifest after saving %d bytes: %+v, %v, %v", size, manifestOf(m), ok, err)
			}
			got, ok, err := b.LoadReadModelSnapshot(ctx, 1)
			if err != nil || !ok || !bytes.Equal(got.Data, data) || got.Generation != s.Generation || got.Sum != s.Sum {
				t.Fatalf("load after saving %d bytes: %d bytes, %v, %v", size, len(got.Data), ok, err)
			}
		}
		if _, ok, err := b.LoadReadModelSnapshot(ctx, 0); ok || err != nil {
			t.Fatalf("partition 0 has none: %v, %v", ok, err)
		}
	})
	t.Run("ReplacedGenerationDeleted", func(t *testing.T) {
		b := fx.New(t)
		t.Cleanup(func() { _ = b.Close() })
		ctx := ctxT(t)
		cs := fx.ChunkSize(b)
		first, err := b.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: 0, Position: 10, Data: randomBytes(2*cs + 1)})
		if err != nil {
			t.Fatal(err)
		}
		second, err := b.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: 0, Position: 20, Data: randomBytes(cs / 2)})
		if err != nil {
			t.Fatal(err)
		}
		for i := range first.Chunks {
			if fx.Chunk(t, b, 0, first.Generation, i) {
				t.Fatalf("chunk %d of the replaced generation is still stored", i)
			}
		}
		if !fx.Chunk(t, b, 0, second.Generation, 0) {
			t.Fatal("the current generation's chunk is missing")
		}
	})
	t.Run("MissingOrDamagedChunkIsCorrupt", func(t *testing.T) {
		b := fx.New(t)
		t.Cleanup(func() { _ = b.Close() })
		ctx := ctxT(t)
		cs := fx.ChunkSize(b)
		for name, spoil := range map[string]func(*testing.T, SnapshotBackend, int, uint64, int){"missing": fx.DropChunk, "damaged": fx.SpoilChunk} {
			s, err := b.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: 2, Position: 5, Data: randomBytes(3 * cs)})
			if err != nil {
				t.Fatal(err)
			}
			spoil(t, b, 2, s.Generation, 1)
			if _, ok, err := b.LoadReadModelSnapshot(ctx, 2); ok || !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("%s chunk: ok %v, %v; want ErrCorrupt", name, ok, err)
			}
		}
	})
	t.Run("ConcurrentWritersLeaveOneCompleteSnapshot", func(t *testing.T) {
		b := fx.New(t)
		t.Cleanup(func() { _ = b.Close() })
		ctx := ctxT(t)
		cs := fx.ChunkSize(b)
		const writers, rounds = 4, 3
		var (
			mu    sync.Mutex
			saved = map[uint64][]byte{} // generation -> data
			gens  = map[uint64]int{}    // generation -> chunks
		)
		var wg sync.WaitGroup
		errs := make(chan error, writers*rounds)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					data := randomBytes(cs + w*100 + r)
					s, err := b.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: 3, Position: uint64(w*rounds + r + 1), Data: data})
					if err != nil {
						errs <- fmt.Errorf("writer %d round %d: %w", w, r, err)
						return
					}
					mu.Lock()
					saved[s.Generation], gens[s.Generation] = data, s.Chunks
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, ok, err := b.LoadReadModelSnapshot(ctx, 3)
		if err != nil || !ok || !bytes.Equal(got.Data, saved[got.Generation]) {
			t.Fatalf("after concurrent writers: %v, %v; generation %d saved: %v", ok, err, got.Generation, saved[got.Generation] != nil)
		}
		for gen, n := range gens {
			for i := range n {
				if gen != got.Generation && fx.Chunk(t, b, 3, gen, i) {
					t.Fatalf("chunk %d of replaced generation %d is still stored", i, gen)
				}
			}
		}
	})
	t.Run("BadPartitionRefused", func(t *testing.T) {
		b := fx.New(t)
		t.Cleanup(func() { _ = b.Close() })
		ctx := ctxT(t)
		for _, p := range []int{-1, b.Partitions()} {
			if _, err := b.SaveReadModelSnapshot(ctx, persistence.ReadModelSnapshot{Partition: p}); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Fatalf("save partition %d: %v", p, err)
			}
			if _, _, err := b.LoadReadModelSnapshot(ctx, p); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Fatalf("load partition %d: %v", p, err)
			}
		}
	})
}

func manifestOf(s persistence.ReadModelSnapshot) persistence.ReadModelSnapshot {
	s.Data = nil
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return b
}
