package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/persistence"
)

// Read-model snapshots (persistence.ReadModelSnapshots). Partition p's
// manifest is <prefix>{p<N>}:rmsnap and its chunks
// <prefix>{p<N>}:rmsnap:<generation>:<i>: the partition's hash tag, so a
// Redis Cluster keeps them on the partition's shard and one script sees
// them all.

var _ persistence.ReadModelSnapshots = (*Backend)(nil)

// rmsnapChunkSize is the size of one stored chunk (a Redis string holds
// at most 512 MB; small chunks keep each reply short).
const rmsnapChunkSize = 4 << 20

// rmsnapPendingTTL is the expiry of chunks not committed yet.
const rmsnapPendingTTL = time.Hour

// rmsnapChunkSize is the chunk size in force (tests set a smaller one).
func (b *Backend) rmsnapChunkSize() int {
	if n := b.rmsnapChunk.Load(); n > 0 {
		return int(n)
	}
	return rmsnapChunkSize
}

func (l *partitionLog) rmsnapKey() string { return l.tag + "rmsnap" }

func (l *partitionLog) rmsnapChunkKeys(gen uint64, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = l.tag + "rmsnap:" + strconv.FormatUint(gen, 10) + ":" + strconv.Itoa(i)
	}
	return keys
}

// JournalIdentity implements persistence.ReadModelSnapshots: the meta
// key's journal field, stored at the first start of a version that has it.
func (b *Backend) JournalIdentity() string { return b.journalID }

// journalIdentity reads the meta key's journal field, storing a fresh one
// when there is none (HSETNX: the first of two starts wins).
func (b *Backend) journalIdentity(ctx context.Context) (string, error) {
	if err := b.rdb.HSetNX(ctx, b.metaKey, "journal", persistence.NewJournalIdentity()).Err(); err != nil {
		return "", b.wrap("open: store the journal identity", err)
	}
	id, err := b.rdb.HGet(ctx, b.metaKey, "journal").Result()
	if err != nil {
		return "", b.wrap("open: read the journal identity", err)
	}
	return id, nil
}

func (b *Backend) snapshotLog(op string, p int) (*partitionLog, error) {
	if p < 0 || p >= len(b.parts) {
		return nil, fmt.Errorf("%s: partition %d does not exist: %w", op, p, persistence.ErrInvalidArgument)
	}
	return b.parts[p], nil
}

// SaveReadModelSnapshot implements persistence.ReadModelSnapshots.
func (b *Backend) SaveReadModelSnapshot(ctx context.Context, s persistence.ReadModelSnapshot) (persistence.ReadModelSnapshot, error) {
	op := "save read-model snapshot of partition " + strconv.Itoa(s.Partition)
	if err := b.begin(ctx, op); err != nil {
		return s, err
	}
	l, err := b.snapshotLog(op, s.Partition)
	if err != nil {
		return s, err
	}
	chunks := persistence.SplitSnapshot(s.Data, b.rmsnapChunkSize())
	persistence.SealSnapshot(&s, len(b.parts), b.journalID, len(chunks), time.Now())
	keys := l.rmsnapChunkKeys(s.Generation, len(chunks))
	pipe := b.rdb.Pipeline()
	for i, c := range chunks {
		pipe.Set(ctx, keys[i], c, rmsnapPendingTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s, b.wrap(op+": write the chunks", err)
	}
	old, err := rmsnapCommitScript.Run(ctx, b.rdb, append([]string{l.rmsnapKey()}, keys...), persistence.EncodeSnapshotManifest(s)).Text()
	if errors.Is(err, goredis.Nil) {
		return s, nil
	}
	if err != nil {
		return s, b.wrap(op+": write the manifest", err)
	}
	prev, err := persistence.DecodeSnapshotManifest([]byte(old))
	if err != nil || prev.Generation == s.Generation {
		return s, nil // nothing to delete that can be named
	}
	if err := b.rdb.Del(ctx, l.rmsnapChunkKeys(prev.Generation, prev.Chunks)...).Err(); err != nil {
		return s, b.wrap(op+": delete the previous generation", err)
	}
	return s, nil
}

// ReadModelSnapshotManifest implements persistence.ReadModelSnapshots.
func (b *Backend) ReadModelSnapshotManifest(ctx context.Context, p int) (persistence.ReadModelSnapshot, bool, error) {
	op := "read the read-model snapshot manifest of partition " + strconv.Itoa(p)
	if err := b.begin(ctx, op); err != nil {
		return persistence.ReadModelSnapshot{}, false, err
	}
	l, err := b.snapshotLog(op, p)
	if err != nil {
		return persistence.ReadModelSnapshot{}, false, err
	}
	raw, err := b.rdb.Get(ctx, l.rmsnapKey()).Bytes()
	if errors.Is(err, goredis.Nil) {
		return persistence.ReadModelSnapshot{}, false, nil
	}
	if err != nil {
		return persistence.ReadModelSnapshot{}, false, b.wrap(op, err)
	}
	s, err := persistence.DecodeSnapshotManifest(raw)
	if err != nil {
		return s, false, fmt.Errorf("redis %s (key %s): %w", op, l.rmsnapKey(), err)
	}
	if s.Partition != p {
		return s, false, fmt.Errorf("redis %s (key %s): the manifest is partition %d's: %w", op, l.rmsnapKey(), s.Partition, persistence.ErrCorrupt)
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
	keys := b.parts[p].rmsnapChunkKeys(s.Generation, s.Chunks)
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return s, false, b.wrap(op, err)
	}
	chunks := make([][]byte, len(keys))
	for i, c := range cmds {
		v, err := c.Bytes()
		if errors.Is(err, goredis.Nil) {
			return s, false, fmt.Errorf("redis %s: chunk %s is missing: %w", op, keys[i], persistence.ErrCorrupt)
		}
		if err != nil {
			return s, false, b.wrap(op, err)
		}
		chunks[i] = v
	}
	if err := persistence.JoinSnapshot(&s, chunks); err != nil {
		return s, false, fmt.Errorf("redis %s: %w", op, err)
	}
	return s, true, nil
}
