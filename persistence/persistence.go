package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/ordersystem/ordersystem/order"
)

// Sentinel errors shared by every backend.
var (
	// ErrVersionConflict means the stream was not at the expected version when
	// an append was attempted: another writer won. The caller reloads the
	// stream and decides again. Errors returned by Append that match it are
	// *ConflictError values carrying the versions.
	ErrVersionConflict = errors.New("stream version conflict")

	// ErrUnavailable means the backend could not be reached or did not answer
	// in time. Nothing is known about whether a write took effect; the caller
	// may retry (a retried append with the same expected version is safe: it
	// either succeeds or conflicts).
	ErrUnavailable = errors.New("persistence backend unavailable")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("persistence backend closed")

	// ErrInvalidArgument means the call itself was malformed (empty stream id,
	// no events, a record without a type).
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrCorrupt means the journal's global log holds an entry that cannot be
	// read as a record at all: it breaks the backend's own layout (a Redis log
	// entry without its fields, a NATS journal message without its headers),
	// which only a hand-made write to the backend produces. Errors that match
	// it are *CorruptRecordError values, which say how to read on past it.
	ErrCorrupt = errors.New("journal entry is not a record")
)

// ConflictError is the error Append returns when the stream moved.
type ConflictError struct {
	StreamID string
	Expected uint64
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("stream %q: expected version %d, found %d: %v", e.StreamID, e.Expected, e.Actual, ErrVersionConflict)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrVersionConflict }

// CorruptRecordError is the error ReadAll returns when the first entry after
// its position cannot be read as a record. The entry stays where it is (the
// journal is append-only); a reader skips it with ReadAll(ctx, Next, n).
type CorruptRecordError struct {
	// Partition is the partition whose log holds the entry.
	Partition int
	// Position is where the entry is in the global log: the position its
	// first record would have had. It may be at or below the position the
	// read started after (a NATS message that holds several positions).
	Position uint64
	// Next is the position to read after to resume right past the entry,
	// and the value to checkpoint once it is dealt with. It is greater than
	// the position the read started after, and no readable record lies
	// between that position and Next.
	Next uint64
	// Reason says what is wrong with the entry.
	Reason string
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("journal entry at position %d of partition %d is not a record (%s); read on after position %d: %v", e.Position, e.Partition, e.Reason, e.Next, ErrCorrupt)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptRecordError) Is(target error) bool { return target == ErrCorrupt }

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds while the
// cause stays visible in the message and to errors.As.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Record is one event as the journal stores it.
type Record struct {
	// StreamID is the order id the event belongs to.
	StreamID string
	// Version is the 1-based position of the event in its stream.
	Version uint64
	// Partition is the partition of the stream (PartitionOf(StreamID, n)).
	Partition int
	// Position is the event's place in its partition's log (strictly
	// increasing in commit order, not necessarily dense). Assigned by the
	// journal.
	Position uint64
	// Type is the event type name (OrderCreated, OrderPaid, ...).
	Type string
	// Data is the encoded event (an orderpb.Event); the journal never looks inside.
	Data []byte
}

// EventID is the id every consumer deduplicates by: "<streamID>:<version>".
func (r Record) EventID() string { return order.EventID(r.StreamID, r.Version) }

// Journal is an append-only store of event streams, split into a fixed
// number of partitions: every stream lives in partition PartitionOf(id, n),
// and each partition has a log of its own (its records in commit order, with
// positions of its own). Implementations must be safe for concurrent use.
type Journal interface {
	// Append writes records to the end of the stream if and only if the
	// stream's current version is expected (0 for a new stream), atomically:
	// all records or none. Only Type and Data of the records are read; the
	// journal assigns StreamID, Version, Partition and Position. It returns
	// the stream's new version, or a *ConflictError when the stream moved.
	// The journal may keep the records' Data as they are (the in-memory
	// one does): the caller does not change them after the call.
	Append(ctx context.Context, streamID string, expected uint64, records []Record) (uint64, error)

	// Load returns the records of a stream with Version >= from, in version
	// order. An unknown stream yields no records and no error.
	Load(ctx context.Context, streamID string, from uint64) ([]Record, error)

	// Partitions is the number of partitions (at least 1). It is fixed when
	// the journal is first written and stored with it: a backend opened with
	// another count refuses to start (see PartitionMismatchError).
	Partitions() int

	// Log returns partition p's log, for 0 <= p < Partitions(). Any other p
	// yields a Log whose every call fails with ErrInvalidArgument.
	Log(p int) Log
}

// Log is one partition's log: every record of the partition's streams, in
// commit order. Positions are the partition's own (records of different
// partitions may share a position).
type Log interface {
	// Partition is the partition this log belongs to.
	Partition() int

	// ReadAll returns at most limit records with Position > after, in
	// Position order. A record appended after a call that returned position p
	// always gets a position greater than p, so a reader that resumes after
	// the last position it saw misses nothing.
	//
	// When the next entry after `after` cannot be read as a record (see
	// ErrCorrupt), ReadAll returns the records before it, or, if it is the
	// first, a *CorruptRecordError e (possibly wrapped); ReadAll(ctx, e.Next,
	// n) continues after it. So one bad entry never hides the records
	// around it, and a reader decides what to do with it (the outbox
	// dead-letters it, the read model reports it) without guessing
	// positions.
	ReadAll(ctx context.Context, after uint64, limit int) ([]Record, error)

	// Head returns the position of the last record in the log (0 when
	// empty). Positions need not be dense: NATS makes them from stream
	// sequences (sequence*1000 + the record's index in its append), and
	// those may skip. So Head minus a position is not a number of records;
	// Behind is.
	Head(ctx context.Context) (uint64, error)

	// Behind returns how many records of the log lie after position after
	// (0 when none does), for the outbox's lag. Where positions are dense
	// (memory, Redis: one per record) it is exact, Head minus after. A
	// backend with sparse positions counts what it can count cheaply and
	// documents it (NATS counts the stream messages after after's, one per
	// append, so an append of several records counts once). It is 0 for any
	// position at or past Head.
	Behind(ctx context.Context, after uint64) (uint64, error)
}

// DefaultPartitions is the partition count of a journal created without one:
// enough for a few Redis shards or JetStream servers to share the logs.
const DefaultPartitions = 16

// MaxPartitions bounds the partition count a backend accepts.
const MaxPartitions = 1024

// PartitionOf maps a stream id to its partition among n: xxhash64 of the
// id, modulo n. It must never change: a journal stores its streams by it.
func PartitionOf(streamID string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(xxhash.Sum64String(streamID) % uint64(n))
}

// CheckPartitions validates a configured partition count: 0 (use the stored
// count, or DefaultPartitions for a new journal) or 1..MaxPartitions.
func CheckPartitions(n int) error {
	if n < 0 || n > MaxPartitions {
		return fmt.Errorf("partitions %d: want 1 to %d (or 0 for the stored count): %w", n, MaxPartitions, ErrInvalidArgument)
	}
	return nil
}

// ResolvePartitions decides the partition count of a journal from the
// configured count (0: any) and the stored one (0: none stored yet): the
// stored count when there is one and it matches, the configured one (or
// DefaultPartitions) for a new journal, and a *PartitionMismatchError when
// both are set and differ.
func ResolvePartitions(configured, stored int) (int, error) {
	switch {
	case stored > 0 && configured > 0 && stored != configured:
		return 0, &PartitionMismatchError{Stored: stored, Configured: configured}
	case stored > 0:
		return stored, nil
	case configured > 0:
		return configured, nil
	default:
		return DefaultPartitions, nil
	}
}

// PartitionMismatchError is the error opening a backend whose journal was
// created with another partition count: every order id would map to another
// partition, so the backend refuses instead of losing track of orders.
type PartitionMismatchError struct {
	Stored, Configured int
}

func (e *PartitionMismatchError) Error() string {
	return fmt.Sprintf("the journal was created with %d partitions and this node is configured with %d: start it with --partitions %d (or 0 to use the stored count); changing the count of an existing journal is not supported: %v",
		e.Stored, e.Configured, e.Stored, ErrInvalidArgument)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *PartitionMismatchError) Is(target error) bool { return target == ErrInvalidArgument }

// BadPartition is the Log of a partition that does not exist: every call
// fails with ErrInvalidArgument. Backends return it from Log for p out of
// range.
type BadPartition int

func (p BadPartition) err() error {
	return fmt.Errorf("partition %d does not exist: %w", int(p), ErrInvalidArgument)
}

// Partition implements Log.
func (p BadPartition) Partition() int { return int(p) }

// ReadAll implements Log.
func (p BadPartition) ReadAll(context.Context, uint64, int) ([]Record, error) { return nil, p.err() }

// Head implements Log.
func (p BadPartition) Head(context.Context) (uint64, error) { return 0, p.err() }

// Behind implements Log.
func (p BadPartition) Behind(context.Context, uint64) (uint64, error) { return 0, p.err() }

// Checkpoints stores named positions, such as how far the outbox published.
type Checkpoints interface {
	// LoadCheckpoint returns the saved position of name, 0 if none.
	LoadCheckpoint(ctx context.Context, name string) (uint64, error)
	// SaveCheckpoint stores pos for name. Saving a lower position than the
	// stored one is allowed (it is the caller's business).
	SaveCheckpoint(ctx context.Context, name string, pos uint64) error
}

// Syncer is an optional ability of a Journal whose failed append may still
// be in the journal without being as durable as an acknowledged one (Redis
// with WaitReplicas: written on the primary, not acknowledged by enough
// replicas in time, answered with ErrUnavailable). A reader that finds such
// a record (a command retried by its id after that failure) must not
// acknowledge it before Sync returned nil.
type Syncer interface {
	// Sync returns nil once every record journaled for streamID so far is
	// as durable as an acknowledged append, and an error wrapping
	// ErrUnavailable when that cannot be confirmed now.
	Sync(ctx context.Context, streamID string) error
}

// LogCheckpoints is an optional ability of a Log: it keeps named
// checkpoints of its own partition next to the partition's records (Redis:
// under the partition's hash tag, so a cluster keeps a partition's
// checkpoints on the shard that holds its log, and one command reads a
// checkpoint together with the log's head). A backend whose Logs do not
// have it keeps every checkpoint in its Checkpoints; the functions
// LoadLogCheckpoint, SaveLogCheckpoint and LogCheckpointAndHead pick the
// place, and every reader and writer of a partition's checkpoint must go
// through them.
type LogCheckpoints interface {
	// LoadCheckpoint returns the saved position of name in this
	// partition, 0 if none.
	LoadCheckpoint(ctx context.Context, name string) (uint64, error)
	// SaveCheckpoint stores pos for name in this partition.
	SaveCheckpoint(ctx context.Context, name string, pos uint64) error
	// CheckpointAndHead returns the saved position of name (0 if none) and
	// the log's Head, read at one moment.
	CheckpointAndHead(ctx context.Context, name string) (checkpoint, head uint64, err error)
}

// LoadLogCheckpoint returns the checkpoint name of partition l: from l when
// it keeps its checkpoints (LogCheckpoints), from c otherwise.
func LoadLogCheckpoint(ctx context.Context, c Checkpoints, l Log, name string) (uint64, error) {
	if lc, ok := l.(LogCheckpoints); ok {
		return lc.LoadCheckpoint(ctx, name)
	}
	return c.LoadCheckpoint(ctx, name)
}

// SaveLogCheckpoint stores pos as the checkpoint name of partition l,
// where LoadLogCheckpoint reads it.
func SaveLogCheckpoint(ctx context.Context, c Checkpoints, l Log, name string, pos uint64) error {
	if lc, ok := l.(LogCheckpoints); ok {
		return lc.SaveCheckpoint(ctx, name, pos)
	}
	return c.SaveCheckpoint(ctx, name, pos)
}

// LogCheckpointAndHead returns the checkpoint name of partition l and l's
// head: in one read when l keeps its checkpoints, in two (checkpoint, then
// head) otherwise.
func LogCheckpointAndHead(ctx context.Context, c Checkpoints, l Log, name string) (checkpoint, head uint64, err error) {
	if lc, ok := l.(LogCheckpoints); ok {
		return lc.CheckpointAndHead(ctx, name)
	}
	if checkpoint, err = c.LoadCheckpoint(ctx, name); err != nil {
		return 0, 0, err
	}
	if head, err = l.Head(ctx); err != nil {
		return 0, 0, fmt.Errorf("read the log head: %w", err)
	}
	return checkpoint, head, nil
}

// Snapshot is a stored fold of a stream up to Version.
type Snapshot struct {
	StreamID string
	Version  uint64
	Data     []byte
}

// Snapshots stores at most one snapshot per stream (the newest saved).
type Snapshots interface {
	// SaveSnapshot stores s unless a snapshot with a higher version is stored.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stored snapshot; ok is false when there is none.
	LoadSnapshot(ctx context.Context, streamID string) (s Snapshot, ok bool, err error)
}

// ActivationLoader is implemented by a backend that reads a stream's
// snapshot and its first records in one round trip, which is what an
// order actor's activation needs (a new order has neither).
type ActivationLoader interface {
	// LoadForActivation returns the stream's snapshot (ok false when there
	// is none) and at most max of its records from version 1, as Load and
	// LoadSnapshot would.
	LoadForActivation(ctx context.Context, streamID string, max int) (s Snapshot, ok bool, records []Record, err error)
}

// Backend is everything a node needs from one persistence backend.
type Backend interface {
	Journal
	Checkpoints
	Snapshots
	// Ping checks that the backend answers; used by health checks.
	Ping(ctx context.Context) error
	// Describe reports what the backend is and the durability it gets, for
	// the start-up log and GET /.
	Describe() Description
	// Close releases connections. It is idempotent.
	Close() error
}

// Description tells an operator what a backend is and how durable it is.
type Description struct {
	Name       string `json:"name"`
	Address    string `json:"address,omitempty"`
	Durability string `json:"durability"`
	// Profile names the durability profile in force (see the README's
	// durable profiles): ProfileDurable, ProfileDefault or ProfileNone.
	Profile string `json:"profile"`
}

// Durability profiles of Description.Profile.
const (
	// ProfileDurable: an acknowledged write survives the crash of any one
	// backend server (Redis: appendfsync always and WAIT for a replica;
	// NATS: three replicas with file storage).
	ProfileDurable = "durable"
	// ProfileDefault: the backend keeps data across restarts as configured,
	// but a crash or failover can lose acknowledged writes.
	ProfileDefault = "default"
	// ProfileNone: nothing survives the process (in memory).
	ProfileNone = "none"
)

// ValidateAppend checks the arguments every backend's Append must refuse.
func ValidateAppend(streamID string, records []Record) error {
	if streamID == "" {
		return fmt.Errorf("append: empty stream id: %w", ErrInvalidArgument)
	}
	if len(records) == 0 {
		return fmt.Errorf("append to %q: no records: %w", streamID, ErrInvalidArgument)
	}
	for i, r := range records {
		if r.Type == "" {
			return fmt.Errorf("append to %q: record %d has no type: %w", streamID, i, ErrInvalidArgument)
		}
	}
	return nil
}
