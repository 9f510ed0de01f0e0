package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/persistence"
)

// Read-model snapshots (persistence.ReadModelSnapshots) live in the
// key-value bucket <stream>_rmsnap (the backend's storage and replicas):
// partition p's manifest under key p<N>.m, its chunks under
// p<N>.<generation>.<i>, each at most the server's max payload less room
// for headers. The manifest is replaced by a revision-checked update, so
// of two writers each deletes exactly the generation it replaced.

var _ persistence.ReadModelSnapshots = (*Backend)(nil)

// metaJournalKey is the meta bucket's key of the journal identity.
const metaJournalKey = "journal"

// rmsnapChunkMax bounds a chunk even where the server allows more.
const rmsnapChunkMax = 1 << 20

func rmsnapManifestKey(p int) string { return "p" + strconv.Itoa(p) + ".m" }

func rmsnapChunkKey(p int, gen uint64, i int) string {
	return "p" + strconv.Itoa(p) + "." + strconv.FormatUint(gen, 10) + "." + strconv.Itoa(i)
}

// JournalIdentity implements persistence.ReadModelSnapshots.
func (b *Backend) JournalIdentity() string { return b.journalID }

// journalIdentity reads the meta bucket's journal identity, storing a
// fresh one when there is none (the first of two starts wins).
func (b *Backend) journalIdentity(ctx context.Context) (string, error) {
	for range casAttempts {
		e, err := b.meta.Get(ctx, metaJournalKey)
		if err == nil {
			return string(e.Value()), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return "", b.wrapSetup(ctx, "read the journal identity from "+b.opts.metaBucket(), err)
		}
		id := persistence.NewJournalIdentity()
		if _, err = b.meta.Create(ctx, metaJournalKey, []byte(id)); err == nil {
			return id, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", b.wrapSetup(ctx, "store the journal identity in "+b.opts.metaBucket(), err)
		}
	}
	return "", persistence.Unavailable("nats store the journal identity", errors.New("too many concurrent writers"))
}

func (b *Backend) rmsnapChunkSize() int {
	if b.rmsnapChunk > 0 {
		return b.rmsnapChunk
	}
	return int(min(b.maxPayload-4096, rmsnapChunkMax))
}

func (b *Backend) checkSnapshotPartition(op string, p int) error {
	if p < 0 || p >= len(b.logs) {
		return fmt.Errorf("%s: partition %d does not exist: %w", op, p, persistence.ErrInvalidArgument)
	}
	return nil
}

// SaveReadModelSnapshot implements persistence.ReadModelSnapshots.
func (b *Backend) SaveReadModelSnapshot(ctx context.Context, s persistence.ReadModelSnapshot) (persistence.ReadModelSnapshot, error) {
	op := "save read-model snapshot of partition " + strconv.Itoa(s.Partition)
	if err := b.begin(ctx, op); err != nil {
		return s, err
	}
	if err := b.checkSnapshotPartition(op, s.Partition); err != nil {
		return s, err
	}
	chunks := persistence.SplitSnapshot(s.Data, b.rmsnapChunkSize())
	persistence.SealSnapshot(&s, len(b.logs), b.journalID, len(chunks), time.Now())
	for i, c := range chunks {
		if err := b.rmsnapPut(ctx, rmsnapChunkKey(s.Partition, s.Generation, i), c); err != nil {
			b.rmsnapDelete(ctx, s.Partition, s.Generation, i)
			return s, b.wrap(ctx, fmt.Sprintf("%s: write chunk %d of %d", op, i+1, len(chunks)), err)
		}
	}
	manifest := persistence.EncodeSnapshotManifest(s)
	key := rmsnapManifestKey(s.Partition)
	for range casAttempts {
		cctx, cancel := b.opCtx(ctx)
		e, err := b.rmsnap.Get(cctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			err = unheard(cctx, func() (err error) { _, err = b.rmsnap.Create(cctx, key, manifest); return err })
		case err == nil:
			err = unheard(cctx, func() (err error) { _, err = b.rmsnap.Update(cctx, key, manifest, e.Revision()); return err })
		}
		cancel()
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return s, b.wrap(ctx, op+": write the manifest", err)
		}
		if e != nil {
			if prev, err := persistence.DecodeSnapshotManifest(e.Value()); err == nil && prev.Generation != s.Generation {
				b.rmsnapDelete(ctx, prev.Partition, prev.Generation, prev.Chunks)
			}
		}
		return s, nil
	}
	b.rmsnapDelete(ctx, s.Partition, s.Generation, len(chunks))
	return s, persistence.Unavailable("nats "+op, errors.New("too many concurrent snapshot writers"))
}

func (b *Backend) rmsnapPut(ctx context.Context, key string, v []byte) error {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	return unheard(ctx, func() (err error) { _, err = b.rmsnap.Put(ctx, key, v); return err })
}

// rmsnapDelete purges the first n chunks of a generation, best effort (a
// chunk left behind costs space, never correctness: no manifest names it).
func (b *Backend) rmsnapDelete(ctx context.Context, p int, gen uint64, n int) {
	for i := range n {
		cctx, cancel := b.opCtx(ctx)
		_ = b.rmsnap.Purge(cctx, rmsnapChunkKey(p, gen, i))
		cancel()
	}
}

// ReadModelSnapshotManifest implements persistence.ReadModelSnapshots.
func (b *Backend) ReadModelSnapshotManifest(ctx context.Context, p int) (persistence.ReadModelSnapshot, bool, error) {
	op := "read the read-model snapshot manifest of partition " + strconv.Itoa(p)
	if err := b.begin(ctx, op); err != nil {
		return persistence.ReadModelSnapshot{}, false, err
	}
	if err := b.checkSnapshotPartition(op, p); err != nil {
		return persistence.ReadModelSnapshot{}, false, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	e, err := b.rmsnap.Get(ctx, rmsnapManifestKey(p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return persistence.ReadModelSnapshot{}, false, nil
	}
	if err != nil {
		return persistence.ReadModelSnapshot{}, false, b.wrap(ctx, op, err)
	}
	s, err := persistence.DecodeSnapshotManifest(e.Value())
	if err != nil {
		return s, false, fmt.Errorf("nats %s: %w", op, err)
	}
	if s.Partition != p {
		return s, false, fmt.Errorf("nats %s: the manifest is partition %d's: %w", op, s.Partition, persistence.ErrCorrupt)
	}
	return s, true, nil
}

// LoadReadModelSnapshot implements persistence.ReadModelSnapshots.
func (b *Backend) LoadReadModelSnapshot(ctx context.Context, p int) (persistence.ReadModelSnapshot, bool, error) {
	s, ok, err := b.ReadModelSnapshotManifest(ctx, p)
	if !ok || err != nil {
		return s, ok, err
	}
	op := "load the read-model snapshot of partition " + strconv.Itoa(p)
	chunks := make([][]byte, s.Chunks)
	for i := range chunks {
		key := rmsnapChunkKey(p, s.Generation, i)
		cctx, cancel := b.opCtx(ctx)
		e, err := b.rmsnap.Get(cctx, key)
		cancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return s, false, fmt.Errorf("nats %s: chunk %s is missing: %w", op, key, persistence.ErrCorrupt)
		}
		if err != nil {
			return s, false, b.wrap(ctx, op, err)
		}
		chunks[i] = e.Value()
	}
	if err := persistence.JoinSnapshot(&s, chunks); err != nil {
		return s, false, fmt.Errorf("nats %s: %w", op, err)
	}
	return s, true, nil
}
