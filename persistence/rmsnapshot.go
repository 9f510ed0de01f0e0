package persistence

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
)

// ReadModelSnapshot is a stored snapshot of the read model of one
// partition: Data (the read model's own encoding, opaque to the backend)
// is a fold of the partition's log up to and including Position. The
// backend stores it in chunks of a new generation and switches to it by
// writing a small manifest last (see ReadModelSnapshots).
type ReadModelSnapshot struct {
	// Partition is the journal partition the snapshot was made from.
	Partition int
	// Position is the last log position the snapshot covers.
	Position uint64
	// Partitions and Journal identify the journal the snapshot was made
	// from (its partition count and JournalIdentity); SaveReadModelSnapshot
	// fills them in.
	Partitions int
	Journal    string
	// Generation, Chunks, Size and Sum describe the stored copy; set by
	// SaveReadModelSnapshot and by the loads. Sum is the xxhash64 of Data.
	Generation uint64
	Chunks     int
	Size       int
	Sum        uint64
	// SavedAt is when the manifest was written (set by SaveReadModelSnapshot).
	SavedAt time.Time
	// Data is the snapshot itself; empty in what ReadModelSnapshotManifest
	// returns.
	Data []byte
}

// ReadModelSnapshots is the optional ability of a backend to keep one
// read-model snapshot per partition (the in-memory backend has none:
// nothing survives its restart). Implementations are safe for concurrent
// use, including two writers of the same partition at once: each writes
// its chunks under a generation of its own and the manifest written last
// wins, complete in itself; the chunks of the generation it replaced are
// deleted.
type ReadModelSnapshots interface {
	// SaveReadModelSnapshot stores s.Data as a new generation of partition
	// s.Partition's snapshot: chunks first, then the manifest, then it
	// deletes the generation the manifest replaced. It returns s as
	// stored (manifest fields set).
	SaveReadModelSnapshot(ctx context.Context, s ReadModelSnapshot) (ReadModelSnapshot, error)
	// ReadModelSnapshotManifest returns partition p's manifest without the
	// data; ok is false when there is none.
	ReadModelSnapshotManifest(ctx context.Context, p int) (s ReadModelSnapshot, ok bool, err error)
	// LoadReadModelSnapshot returns partition p's snapshot with its data,
	// verified against the manifest's size and checksum; ok is false when
	// there is none. A missing chunk, a checksum that does not match or a
	// manifest it cannot read is an error that wraps ErrCorrupt.
	LoadReadModelSnapshot(ctx context.Context, p int) (s ReadModelSnapshot, ok bool, err error)
	// JournalIdentity names the journal the backend holds: made when the
	// journal's layout is first stored and kept with it, so a journal that
	// was wiped and started again (positions from 1 again) has another.
	JournalIdentity() string
}

// NewJournalIdentity returns a fresh random journal identity.
func NewJournalIdentity() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewSnapshotGeneration returns a fresh generation: the time in the high
// bits and random low bits, so that two writers never share one.
func NewSnapshotGeneration(now time.Time) uint64 {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return uint64(now.UnixMilli())<<24 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
}

// SplitSnapshot cuts data into chunks of at most size bytes (at least one
// chunk, empty for empty data).
func SplitSnapshot(data []byte, size int) [][]byte {
	if size <= 0 {
		size = len(data)
	}
	chunks := [][]byte{}
	for len(data) > size {
		chunks = append(chunks, data[:size])
		data = data[size:]
	}
	return append(chunks, data)
}

// JoinSnapshot puts the chunks of a stored snapshot together into s.Data
// and checks them against the manifest s: their count, total size and
// checksum. A mismatch is an error that wraps ErrCorrupt.
func JoinSnapshot(s *ReadModelSnapshot, chunks [][]byte) error {
	if len(chunks) != s.Chunks {
		return fmt.Errorf("read-model snapshot of partition %d (generation %d): %d of %d chunks: %w", s.Partition, s.Generation, len(chunks), s.Chunks, ErrCorrupt)
	}
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	if n != s.Size {
		return fmt.Errorf("read-model snapshot of partition %d (generation %d): chunks hold %d bytes, the manifest says %d: %w", s.Partition, s.Generation, n, s.Size, ErrCorrupt)
	}
	data := make([]byte, 0, n)
	for _, c := range chunks {
		data = append(data, c...)
	}
	if sum := xxhash.Sum64(data); sum != s.Sum {
		return fmt.Errorf("read-model snapshot of partition %d (generation %d): checksum %016x, the manifest says %016x: %w", s.Partition, s.Generation, sum, s.Sum, ErrCorrupt)
	}
	s.Data = data
	return nil
}

// manifestMagic and manifestFormat open every encoded manifest.
const (
	manifestMagic  = "RMSM"
	manifestFormat = 1
)

// EncodeSnapshotManifest encodes the manifest fields of s (not Data): a
// versioned binary layout that ends with its own xxhash64.
func EncodeSnapshotManifest(s ReadModelSnapshot) []byte {
	b := make([]byte, 0, 96+len(s.Journal))
	b = append(b, manifestMagic...)
	b = append(b, manifestFormat)
	b = binary.AppendUvarint(b, uint64(s.Partition))
	b = binary.AppendUvarint(b, uint64(s.Partitions))
	b = binary.AppendUvarint(b, s.Position)
	b = binary.AppendUvarint(b, s.Generation)
	b = binary.AppendUvarint(b, uint64(s.Chunks))
	b = binary.AppendUvarint(b, uint64(s.Size))
	b = binary.LittleEndian.AppendUint64(b, s.Sum)
	b = binary.AppendVarint(b, s.SavedAt.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(s.Journal)))
	b = append(b, s.Journal...)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// Bounds of a manifest's chunk count and size: far above any snapshot a
// node writes (5M orders are about 226 MiB, a few hundred chunks), and low
// enough that a manifest rewritten in the backend cannot make a reader
// allocate without bound before a checksum fails.
const (
	maxSnapshotChunks = 1 << 16
	maxSnapshotSize   = 1 << 36
)

// errManifest is what DecodeSnapshotManifest wraps.
var errManifest = errors.New("read-model snapshot manifest")

// DecodeSnapshotManifest decodes what EncodeSnapshotManifest made. A
// manifest it cannot read (damaged, or of a format it does not know) is an
// error that wraps ErrCorrupt.
func DecodeSnapshotManifest(b []byte) (ReadModelSnapshot, error) {
	bad := func(why string) (ReadModelSnapshot, error) {
		return ReadModelSnapshot{}, fmt.Errorf("%w: %s: %w", errManifest, why, ErrCorrupt)
	}
	if len(b) < len(manifestMagic)+1+8 || string(b[:len(manifestMagic)]) != manifestMagic {
		return bad("not a manifest")
	}
	if f := b[len(manifestMagic)]; f != manifestFormat {
		return bad(fmt.Sprintf("format %d, this version reads format %d", f, manifestFormat))
	}
	body, sum := b[:len(b)-8], binary.LittleEndian.Uint64(b[len(b)-8:])
	if xxhash.Sum64(body) != sum {
		return bad("checksum mismatch")
	}
	r := body[len(manifestMagic)+1:]
	var fail bool
	uv := func() uint64 {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			fail = true
			return 0
		}
		r = r[n:]
		return v
	}
	var s ReadModelSnapshot
	s.Partition = int(uv())
	s.Partitions = int(uv())
	s.Position = uv()
	s.Generation = uv()
	s.Chunks = int(uv())
	s.Size = int(uv())
	if fail || len(r) < 8 {
		return bad("truncated")
	}
	s.Sum = binary.LittleEndian.Uint64(r)
	r = r[8:]
	at, n := binary.Varint(r)
	if n <= 0 {
		return bad("truncated")
	}
	r = r[n:]
	s.SavedAt = time.Unix(0, at).UTC()
	jl := uv()
	if fail || uint64(len(r)) != jl || s.Chunks < 1 || s.Chunks > maxSnapshotChunks || s.Size < 0 || s.Size > maxSnapshotSize ||
		s.Partition >= MaxPartitions || s.Partitions > MaxPartitions {
		return bad("inconsistent fields")
	}
	s.Journal = string(r)
	return s, nil
}

// SealSnapshot fills in the manifest fields of s that a backend's
// SaveReadModelSnapshot sets before it writes the chunks.
func SealSnapshot(s *ReadModelSnapshot, partitions int, journal string, chunks int, now time.Time) {
	s.Partitions, s.Journal = partitions, journal
	s.Generation = NewSnapshotGeneration(now)
	s.Chunks, s.Size, s.Sum = chunks, len(s.Data), xxhash.Sum64(s.Data)
	s.SavedAt = now.UTC()
}
