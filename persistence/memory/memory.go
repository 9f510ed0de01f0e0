// Package memory is the in-process persistence backend: a journal, checkpoints
// and snapshots held in maps. Nothing survives the
// process; it is the default for a standalone node and for tests.
package memory

import (
	"context"
	"slices"
	"sync"

	"github.com/ordersystem/ordersystem/internal/idmap"
	"github.com/ordersystem/ordersystem/persistence"
)

// Backend implements persistence.Backend in memory. The zero value is not
// usable; call New.
type Backend struct {
	mu     sync.RWMutex
	closed bool
	// streams holds each stream's records as their positions in its
	// partition's log: a record is stored once, and a stream's index holds
	// no pointers for the collector to scan. A stream's first record names
	// the stream (see isStream).
	streams     *idmap.Map[[]uint64]
	logs        []chunkedLog // logs[p].at(pos).Position == pos
	checkpoints map[string]uint64
	snapshots   map[string]persistence.Snapshot
}

var _ persistence.Backend = (*Backend)(nil)

// New returns an empty in-memory backend with persistence.DefaultPartitions
// partitions.
func New() *Backend { return NewPartitioned(persistence.DefaultPartitions) }

// NewPartitioned returns an empty in-memory backend with n partitions
// (persistence.DefaultPartitions when n is 0; n must pass
// persistence.CheckPartitions).
func NewPartitioned(n int) *Backend {
	if n == 0 {
		n = persistence.DefaultPartitions
	}
	if err := persistence.CheckPartitions(n); err != nil {
		panic(err)
	}
	b := &Backend{
		logs:        make([]chunkedLog, n),
		checkpoints: make(map[string]uint64),
		snapshots:   make(map[string]persistence.Snapshot),
	}
	b.streams = idmap.New(b.isStream)
	return b
}

// isStream says whether positions are stream id's: whether the first of
// them is a record of id in id's partition. Under mu.
func (b *Backend) isStream(positions []uint64, id string) bool {
	return b.logs[persistence.PartitionOf(id, len(b.logs))].streamAt(positions[0]) == id
}

// Partitions implements persistence.Journal.
func (b *Backend) Partitions() int { return len(b.logs) }

// Log implements persistence.Journal.
func (b *Backend) Log(p int) persistence.Log {
	if p < 0 || p >= len(b.logs) {
		return persistence.BadPartition(p)
	}
	return partitionLog{b: b, p: p}
}

// Append implements persistence.Journal.
func (b *Backend) Append(ctx context.Context, streamID string, expected uint64, records []persistence.Record) (uint64, error) {
	if err := persistence.ValidateAppend(streamID, records); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, persistence.Unavailable("append", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, persistence.ErrClosed
	}
	stream, _ := b.streams.Get(streamID)
	current := uint64(len(stream))
	if current != expected {
		return 0, &persistence.ConflictError{StreamID: streamID, Expected: expected, Actual: current}
	}
	p := persistence.PartitionOf(streamID, len(b.logs))
	for _, r := range records {
		current++
		rec := persistence.Record{
			StreamID:  streamID,
			Version:   current,
			Partition: p,
			Position:  b.logs[p].len() + 1,
			Type:      r.Type,
			Data:      r.Data, // kept as it is: see persistence.Journal.Append
		}
		stream = append(stream, rec.Position)
		b.logs[p].append(rec)
	}
	b.streams.Set(streamID, stream)
	return current, nil
}

// Load implements persistence.Journal.
func (b *Backend) Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, persistence.Unavailable("load", err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, persistence.ErrClosed
	}
	stream, _ := b.streams.Get(streamID)
	if from < 1 {
		from = 1
	}
	if from > uint64(len(stream)) {
		return nil, nil
	}
	log := &b.logs[persistence.PartitionOf(streamID, len(b.logs))]
	out := make([]persistence.Record, 0, uint64(len(stream))-from+1)
	for _, pos := range stream[from-1:] {
		out = append(out, log.at(pos))
	}
	return out, nil
}

// partitionLog is one partition's log of a Backend.
type partitionLog struct {
	b *Backend
	p int
}

// Partition implements persistence.Log.
func (l partitionLog) Partition() int { return l.p }

// ReadAll implements persistence.Log.
func (l partitionLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, persistence.Unavailable("read all", err)
	}
	b := l.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, persistence.ErrClosed
	}
	log := &b.logs[l.p]
	if limit <= 0 || after >= log.len() {
		return nil, nil
	}
	return log.read(after, min(after+uint64(limit), log.len())), nil
}

// Head implements persistence.Log.
func (l partitionLog) Head(ctx context.Context) (uint64, error) {
	b := l.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, persistence.ErrClosed
	}
	return b.logs[l.p].len(), nil
}

// Behind implements persistence.Log: positions are dense (one per record),
// so it is Head minus after.
func (l partitionLog) Behind(ctx context.Context, after uint64) (uint64, error) {
	head, err := l.Head(ctx)
	if err != nil || head <= after {
		return 0, err
	}
	return head - after, nil
}

// LoadCheckpoint implements persistence.Checkpoints.
func (b *Backend) LoadCheckpoint(ctx context.Context, name string) (uint64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, persistence.ErrClosed
	}
	return b.checkpoints[name], nil
}

// SaveCheckpoint implements persistence.Checkpoints.
func (b *Backend) SaveCheckpoint(ctx context.Context, name string, pos uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return persistence.ErrClosed
	}
	b.checkpoints[name] = pos
	return nil
}

// SaveSnapshot implements persistence.Snapshots.
func (b *Backend) SaveSnapshot(ctx context.Context, s persistence.Snapshot) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return persistence.ErrClosed
	}
	if old, ok := b.snapshots[s.StreamID]; ok && old.Version > s.Version {
		return nil
	}
	s.Data = slices.Clone(s.Data)
	b.snapshots[s.StreamID] = s
	return nil
}

// LoadSnapshot implements persistence.Snapshots.
func (b *Backend) LoadSnapshot(ctx context.Context, streamID string) (persistence.Snapshot, bool, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return persistence.Snapshot{}, false, persistence.ErrClosed
	}
	s, ok := b.snapshots[streamID]
	if ok {
		s.Data = slices.Clone(s.Data)
	}
	return s, ok, nil
}

// Ping implements persistence.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return persistence.ErrClosed
	}
	return nil
}

// Describe implements persistence.Backend.
func (b *Backend) Describe() persistence.Description {
	return persistence.Description{Name: "inmemory", Durability: "none: every order is lost when the process stops",
		Profile: persistence.ProfileNone}
}

// Close implements persistence.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// chunkSize is the number of records of one chunk of a chunkedLog.
const chunkSize = 1024

// chunkedLog is a partition's log, kept in chunks of chunkSize records. A
// log in one slice copies all its records each time it doubles: 80 bytes a
// record, three of them pointers (so with write barriers while the
// collector runs), and leaves the old array to the collector. A chunked
// log never moves a record and allocates what it keeps.
type chunkedLog struct {
	chunks [][]persistence.Record
	n      uint64
}

func (l *chunkedLog) len() uint64 { return l.n }

func (l *chunkedLog) append(r persistence.Record) {
	if l.n%chunkSize == 0 {
		l.chunks = append(l.chunks, make([]persistence.Record, 0, chunkSize))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, r)
	l.n++
}

// at returns the record at position pos (1 <= pos <= len()).
func (l *chunkedLog) at(pos uint64) persistence.Record {
	i := pos - 1
	return l.chunks[i/chunkSize][i%chunkSize]
}

// streamAt returns the stream of the record at position pos (1 <= pos <=
// len()).
func (l *chunkedLog) streamAt(pos uint64) string {
	i := pos - 1
	return l.chunks[i/chunkSize][i%chunkSize].StreamID
}

// read returns a copy of the records at positions after+1 to end.
func (l *chunkedLog) read(after, end uint64) []persistence.Record {
	out := make([]persistence.Record, 0, end-after)
	for i := after; i < end; {
		c := l.chunks[i/chunkSize]
		j := min(end-i+i%chunkSize, chunkSize)
		out = append(out, c[i%chunkSize:j]...)
		i += j - i%chunkSize
	}
	return out
}
