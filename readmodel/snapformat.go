package readmodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ordersystem/ordersystem/order"
)

// PartitionSnapshot is the read model of one journal partition as Rebuild
// makes it from the partition's log records up to and including Position,
// from an empty read model: a pure function of that prefix of the log,
// whatever the transport delivered.
type PartitionSnapshot struct {
	Partition int
	Position  uint64
	// Summaries are the partition's orders, by (CreatedAt, OrderID)
	// ascending (the read model's list order).
	Summaries []Summary
	// Quarantines are the partition's quarantined orders and the log
	// entries Rebuild skipped, in the order they were found (at most
	// maxSkippedListed skipped entries among them).
	Quarantines []Quarantine
	// Skipped are the positions of every skipped log entry, ascending.
	Skipped []uint64
}

// Errors of DecodePartitionSnapshot.
var (
	// ErrSnapshotFormat means the data is not a read-model snapshot of a
	// format this version reads.
	ErrSnapshotFormat = errors.New("not a read-model snapshot of a known format")
	// ErrSnapshotDamaged means the data is of a known format but its
	// checksum or layout does not hold.
	ErrSnapshotDamaged = errors.New("read-model snapshot damaged")
)

const (
	snapshotMagic = "ORMS"
	// SnapshotFormat is the version of the encoding EncodePartitionSnapshot
	// writes; DecodePartitionSnapshot refuses any other.
	SnapshotFormat = 1
)

// EncodePartitionSnapshot encodes ps: "ORMS", the format byte, the
// partition and position, the summaries (varints; times as seconds deltas
// and nanoseconds), the quarantines, the skipped positions (deltas), and
// an xxhash64 of everything before it.
func EncodePartitionSnapshot(ps *PartitionSnapshot) []byte {
	b := make([]byte, 0, 64+len(ps.Summaries)*72+len(ps.Quarantines)*128+len(ps.Skipped)*3)
	b = append(b, snapshotMagic...)
	b = append(b, SnapshotFormat)
	b = binary.AppendUvarint(b, uint64(ps.Partition))
	b = binary.AppendUvarint(b, ps.Position)
	b = binary.AppendUvarint(b, uint64(len(ps.Summaries)))
	var prev int64
	for i := range ps.Summaries {
		s := &ps.Summaries[i]
		b = appendString(b, s.OrderID)
		b = appendString(b, s.CustomerID)
		b = append(b, byte(s.Status))
		b = binary.AppendVarint(b, int64(s.Total))
		b = binary.AppendUvarint(b, uint64(s.Items))
		b = binary.AppendUvarint(b, s.Version)
		cs := s.CreatedAt.Unix()
		b = binary.AppendVarint(b, cs-prev)
		b = binary.AppendUvarint(b, uint64(s.CreatedAt.Nanosecond()))
		b = binary.AppendVarint(b, s.UpdatedAt.Unix()-cs)
		b = binary.AppendUvarint(b, uint64(s.UpdatedAt.Nanosecond()))
		prev = cs
	}
	b = binary.AppendUvarint(b, uint64(len(ps.Quarantines)))
	for _, q := range ps.Quarantines {
		b = appendString(b, q.OrderID)
		b = binary.AppendUvarint(b, q.Version)
		b = binary.AppendUvarint(b, uint64(q.Partition))
		b = binary.AppendUvarint(b, q.Position)
		b = appendString(b, q.Reason)
		b = binary.AppendVarint(b, q.At.Unix())
		b = binary.AppendUvarint(b, uint64(q.At.Nanosecond()))
	}
	b = binary.AppendUvarint(b, uint64(len(ps.Skipped)))
	var last uint64
	for _, p := range ps.Skipped {
		b = binary.AppendUvarint(b, p-last)
		last = p
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// snapReader reads what EncodePartitionSnapshot wrote; the first failure
// sticks.
type snapReader struct {
	b   []byte
	bad bool
}

func (r *snapReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *snapReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a length and bounds it by what the remaining bytes can hold
// (each element takes at least min bytes).
func (r *snapReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.bad = true
		return 0
	}
	return int(n)
}

func (r *snapReader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if nsec >= 1e9 {
		r.bad = true
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// DecodePartitionSnapshot decodes what EncodePartitionSnapshot made. Data
// of another format fails with ErrSnapshotFormat, data whose checksum or
// layout does not hold with ErrSnapshotDamaged.
func DecodePartitionSnapshot(data []byte) (*PartitionSnapshot, error) {
	if len(data) < len(snapshotMagic)+1+8 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: no %q header", ErrSnapshotFormat, snapshotMagic)
	}
	if f := data[len(snapshotMagic)]; f != SnapshotFormat {
		return nil, fmt.Errorf("%w: format %d, this version reads format %d", ErrSnapshotFormat, f, SnapshotFormat)
	}
	body := data[:len(data)-8]
	if sum := binary.LittleEndian.Uint64(data[len(data)-8:]); xxhash.Sum64(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrSnapshotDamaged)
	}
	r := &snapReader{b: body[len(snapshotMagic)+1:]}
	ps := &PartitionSnapshot{Partition: int(r.uvarint()), Position: r.uvarint()}
	ps.Summaries = make([]Summary, r.count(12))
	var prev int64
	for i := range ps.Summaries {
		s := &ps.Summaries[i]
		s.OrderID = r.string()
		s.CustomerID = r.string()
		s.Status = order.Status(r.byte())
		s.Total = order.Cents(r.varint())
		s.Items = int(r.uvarint())
		s.Version = r.uvarint()
		cs := prev + r.varint()
		s.CreatedAt = time.Unix(cs, int64(r.uvarint())).UTC()
		s.UpdatedAt = time.Unix(cs+r.varint(), int64(r.uvarint())).UTC()
		prev = cs
		if r.bad || s.Status <= order.StatusNone || s.Status > order.StatusCancelled || s.OrderID == "" || s.Version == 0 ||
			(i > 0 && compare(&ps.Summaries[i-1], s) >= 0) {
			return nil, fmt.Errorf("%w: summary %d of %d", ErrSnapshotDamaged, i+1, len(ps.Summaries))
		}
	}
	ps.Quarantines = make([]Quarantine, r.count(6))
	for i := range ps.Quarantines {
		q := &ps.Quarantines[i]
		q.OrderID = r.string()
		q.Version = r.uvarint()
		q.Partition = int(r.uvarint())
		q.Position = r.uvarint()
		q.Reason = r.string()
		q.At = r.time()
	}
	ps.Skipped = make([]uint64, r.count(1))
	var last uint64
	for i := range ps.Skipped {
		last += r.uvarint()
		ps.Skipped[i] = last
	}
	if r.bad || len(r.b) != 0 || !slices.IsSorted(ps.Skipped) {
		return nil, fmt.Errorf("%w: layout", ErrSnapshotDamaged)
	}
	return ps, nil
}
