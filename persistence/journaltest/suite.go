// Package journaltest is the contract suite every persistence backend must
// pass (in the spirit of watermill's TestPubSub): call Run from the backend's
// own tests with a factory that returns a fresh, empty-looking backend.
package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/persistence"
)

// Features switches cases that not every backend can run.
type Features struct {
	// LargeStream is the size of the large-stream case (default 10,000).
	LargeStream int
	// Restart, when set, restarts the backend's server (keeping its data);
	// the suite checks that the same backend value works again afterwards.
	Restart func(t *testing.T)
	// Reopen, when set, returns an opener of backends that all share one
	// fresh storage (the same server and key prefix or stream names), each
	// configured with the given partition count (0: the stored one); the
	// suite checks that the count is stored at first start and that another
	// count is refused.
	Reopen func(t *testing.T) func(partitions int) (persistence.Backend, error)
}

// Factory returns a backend whose streams do not collide with other tests'
// (a fresh server, a unique key prefix or stream name). The suite closes it.
type Factory func(t *testing.T) persistence.Backend

// Run runs every contract case against backends made by newBackend.
func Run(t *testing.T, newBackend Factory, f Features) {
	if f.LargeStream == 0 {
		f.LargeStream = 10_000
	}
	cases := []struct {
		name string
		fn   func(t *testing.T, b persistence.Backend)
	}{
		{"AppendLoadRoundTrip", testRoundTrip},
		{"LoadRanges", testLoadRanges},
		{"UnknownStreamIsEmpty", testUnknownStream},
		{"InvalidAppendRefused", testInvalidAppend},
		{"ExpectedVersionConflict", testConflict},
		{"ConcurrentWritersOneWinsEachVersion", testConcurrentWriters},
		{"LargeStream", func(t *testing.T, b persistence.Backend) { testLargeStream(t, b, f.LargeStream) }},
		{"PartitionsFixedAndChecked", testPartitions},
		{"StreamsSpreadOverPartitions", testSpread},
		{"GlobalLogOrderAndResume", testGlobalLog},
		{"BehindCountsWhatIsAfter", testBehind},
		{"Checkpoints", testCheckpoints},
		{"PartitionCheckpoints", testPartitionCheckpoints},
		{"Snapshots", testSnapshots},
		{"CanceledContext", testCanceledContext},
		{"BinaryPayloads", testBinaryPayloads},
		{"ConcurrentStreamsGlobalLog", testConcurrentStreamsGlobalLog},
		{"ClosedBackendRefuses", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() { _ = b.Close() })
			c.fn(t, b)
		})
	}
	if f.Reopen != nil {
		t.Run("PartitionCountStoredAndEnforced", func(t *testing.T) { testReopen(t, f.Reopen(t)) })
	}
	if f.Restart != nil {
		t.Run("ServerRestart", func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() { _ = b.Close() })
			testRestart(t, b, f.Restart)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func recs(n int, tag string) []persistence.Record {
	out := make([]persistence.Record, n)
	for i := range out {
		out[i] = persistence.Record{Type: "Ev" + tag, Data: []byte(fmt.Sprintf("%s-%d", tag, i))}
	}
	return out
}

func mustAppend(t *testing.T, b persistence.Backend, stream string, expected uint64, rs []persistence.Record) uint64 {
	t.Helper()
	v, err := b.Append(ctxT(t), stream, expected, rs)
	if err != nil {
		t.Fatalf("append %d records to %q at %d: %v", len(rs), stream, expected, err)
	}
	return v
}

func mustLoad(t *testing.T, b persistence.Backend, stream string, from uint64) []persistence.Record {
	t.Helper()
	rs, err := b.Load(ctxT(t), stream, from)
	if err != nil {
		t.Fatalf("load %q from %d: %v", stream, from, err)
	}
	return rs
}

func checkStream(t *testing.T, rs []persistence.Record, stream string, firstVersion uint64) {
	t.Helper()
	for i, r := range rs {
		if r.StreamID != stream {
			t.Fatalf("record %d: stream %q, want %q", i, r.StreamID, stream)
		}
		if want := firstVersion + uint64(i); r.Version != want {
			t.Fatalf("record %d: version %d, want %d (gap or duplicate)", i, r.Version, want)
		}
		if r.Position == 0 {
			t.Fatalf("record %d: no global position", i)
		}
		if i > 0 && r.Position <= rs[i-1].Position {
			t.Fatalf("record %d: position %d not after %d", i, r.Position, rs[i-1].Position)
		}
	}
}

func testRoundTrip(t *testing.T, b persistence.Backend) {
	in := recs(3, "a")
	if v := mustAppend(t, b, "order-1", 0, in); v != 3 {
		t.Fatalf("new version %d, want 3", v)
	}
	out := mustLoad(t, b, "order-1", 1)
	if len(out) != 3 {
		t.Fatalf("loaded %d records, want 3", len(out))
	}
	checkStream(t, out, "order-1", 1)
	for i := range in {
		if out[i].Type != in[i].Type || !bytes.Equal(out[i].Data, in[i].Data) {
			t.Fatalf("record %d: got %s/%q, want %s/%q", i, out[i].Type, out[i].Data, in[i].Type, in[i].Data)
		}
	}
	if v := mustAppend(t, b, "order-1", 3, recs(1, "b")); v != 4 {
		t.Fatalf("second append: version %d, want 4", v)
	}
	// Binary payloads survive byte for byte.
	bin := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
	mustAppend(t, b, "order-bin", 0, []persistence.Record{{Type: "Bin", Data: bin}})
	if got := mustLoad(t, b, "order-bin", 0); len(got) != 1 || !bytes.Equal(got[0].Data, bin) {
		t.Fatalf("binary payload changed: %v", got)
	}
}

func testLoadRanges(t *testing.T, b persistence.Backend) {
	mustAppend(t, b, "s", 0, recs(5, "x"))
	for _, c := range []struct {
		from uint64
		want int
	}{{0, 5}, {1, 5}, {2, 4}, {5, 1}, {6, 0}, {100, 0}} {
		rs := mustLoad(t, b, "s", c.from)
		if len(rs) != c.want {
			t.Fatalf("load from %d: %d records, want %d", c.from, len(rs), c.want)
		}
		if len(rs) > 0 {
			checkStream(t, rs, "s", max(c.from, 1))
		}
	}
}

func testUnknownStream(t *testing.T, b persistence.Backend) {
	if rs := mustLoad(t, b, "nobody", 0); len(rs) != 0 {
		t.Fatalf("unknown stream returned %d records", len(rs))
	}
	if _, ok, err := b.LoadSnapshot(ctxT(t), "nobody"); err != nil || ok {
		t.Fatalf("snapshot of unknown stream: ok=%v err=%v", ok, err)
	}
}

func testInvalidAppend(t *testing.T, b persistence.Backend) {
	if _, err := b.Append(ctxT(t), "", 0, recs(1, "a")); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("empty stream id: %v, want ErrInvalidArgument", err)
	}
	if _, err := b.Append(ctxT(t), "s", 0, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("no records: %v, want ErrInvalidArgument", err)
	}
	if rs := mustLoad(t, b, "s", 0); len(rs) != 0 {
		t.Fatalf("refused append wrote %d records", len(rs))
	}
}

func testConflict(t *testing.T, b persistence.Backend) {
	mustAppend(t, b, "c", 0, recs(2, "a"))
	for _, expected := range []uint64{0, 1, 3, 10} {
		_, err := b.Append(ctxT(t), "c", expected, recs(1, "z"))
		if !errors.Is(err, persistence.ErrVersionConflict) {
			t.Fatalf("append at %d to a stream at 2: %v, want ErrVersionConflict", expected, err)
		}
		var ce *persistence.ConflictError
		if !errors.As(err, &ce) || ce.Actual != 2 || ce.Expected != expected {
			t.Fatalf("conflict error %#v, want expected=%d actual=2", ce, expected)
		}
	}
	if rs := mustLoad(t, b, "c", 0); len(rs) != 2 {
		t.Fatalf("conflicting appends changed the stream: %d records", len(rs))
	}
}

func testConcurrentWriters(t *testing.T, b persistence.Backend) {
	const writers, rounds = 16, 20
	var (
		mu   sync.Mutex
		wins = map[uint64]string{}
		wg   sync.WaitGroup
	)
	ctx := ctxT(t)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				tag := fmt.Sprintf("w%d-r%d", w, r)
				for {
					cur, err := b.Load(ctx, "hot", 0)
					if err != nil {
						t.Errorf("load: %v", err)
						return
					}
					expected := uint64(len(cur))
					v, err := b.Append(ctx, "hot", expected, []persistence.Record{{Type: "Ev", Data: []byte(tag)}})
					if errors.Is(err, persistence.ErrVersionConflict) {
						continue
					}
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					mu.Lock()
					if prev, dup := wins[v]; dup {
						t.Errorf("version %d won twice: %s and %s", v, prev, tag)
					}
					wins[v] = tag
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	rs := mustLoad(t, b, "hot", 0)
	if len(rs) != writers*rounds {
		t.Fatalf("stream has %d records, want %d", len(rs), writers*rounds)
	}
	checkStream(t, rs, "hot", 1)
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[string(r.Data)] {
			t.Fatalf("payload %s journaled twice", r.Data)
		}
		seen[string(r.Data)] = true
		if wins[r.Version] != string(r.Data) {
			t.Fatalf("version %d holds %s but %s was told it won", r.Version, r.Data, wins[r.Version])
		}
	}
}

func testLargeStream(t *testing.T, b persistence.Backend, n int) {
	const batch = 500
	var v uint64
	for v < uint64(n) {
		k := min(batch, n-int(v))
		v = mustAppend(t, b, "big", v, recs(k, fmt.Sprint(v)))
	}
	rs := mustLoad(t, b, "big", 0)
	if len(rs) != n {
		t.Fatalf("loaded %d records, want %d", len(rs), n)
	}
	checkStream(t, rs, "big", 1)
	tail := mustLoad(t, b, "big", uint64(n-9))
	if len(tail) != 10 || tail[0].Version != uint64(n-9) {
		t.Fatalf("tail load: %d records from %d", len(tail), tail[0].Version)
	}
}

// Heads returns the head of every partition's log.
func Heads(t testing.TB, b persistence.Journal) []uint64 {
	t.Helper()
	heads := make([]uint64, b.Partitions())
	for p := range heads {
		h, err := b.Log(p).Head(context.Background())
		if err != nil {
			t.Fatalf("head of partition %d: %v", p, err)
		}
		heads[p] = h
	}
	return heads
}

// ReadLogs reads every partition's log after the given positions (nil: from
// the start) in pages of page records, checking that each partition's
// positions increase and that every record sits in its stream's partition.
// It returns the records of each partition, in order.
func ReadLogs(t testing.TB, b persistence.Journal, after []uint64, page int) [][]persistence.Record {
	t.Helper()
	n := b.Partitions()
	out := make([][]persistence.Record, n)
	for p := range n {
		var pos uint64
		if after != nil {
			pos = after[p]
		}
		log := b.Log(p)
		for {
			rs, err := log.ReadAll(context.Background(), pos, page)
			if err != nil {
				t.Fatalf("read partition %d after %d: %v", p, pos, err)
			}
			if len(rs) == 0 {
				break
			}
			if len(rs) > page {
				t.Fatalf("page of %d records, limit %d", len(rs), page)
			}
			for _, r := range rs {
				if r.Position <= pos {
					t.Fatalf("partition %d: position %d after %d", p, r.Position, pos)
				}
				if r.Partition != p || persistence.PartitionOf(r.StreamID, n) != p {
					t.Fatalf("record %s:%d read from partition %d says partition %d; its stream maps to %d",
						r.StreamID, r.Version, p, r.Partition, persistence.PartitionOf(r.StreamID, n))
				}
				pos = r.Position
			}
			out[p] = append(out[p], rs...)
		}
	}
	return out
}

// testPartitions: the count is in range, logs out of range refuse, and a
// stream's records carry its partition.
func testPartitions(t *testing.T, b persistence.Backend) {
	ctx := ctxT(t)
	n := b.Partitions()
	if n < 1 || n > persistence.MaxPartitions {
		t.Fatalf("partitions %d", n)
	}
	for _, p := range []int{-1, n, n + 7} {
		log := b.Log(p)
		if _, err := log.ReadAll(ctx, 0, 10); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Fatalf("read all of partition %d of %d: %v, want ErrInvalidArgument", p, n, err)
		}
		if _, err := log.Head(ctx); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Fatalf("head of partition %d of %d: %v, want ErrInvalidArgument", p, n, err)
		}
		if _, err := log.Behind(ctx, 0); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Fatalf("behind of partition %d of %d: %v, want ErrInvalidArgument", p, n, err)
		}
	}
	for p := range n {
		if got := b.Log(p).Partition(); got != p {
			t.Fatalf("Log(%d).Partition() = %d", p, got)
		}
	}
	mustAppend(t, b, "part-a", 0, recs(2, "a"))
	for _, r := range mustLoad(t, b, "part-a", 0) {
		if want := persistence.PartitionOf("part-a", n); r.Partition != want {
			t.Fatalf("loaded record in partition %d, want %d", r.Partition, want)
		}
	}
}

// testSpread: many streams land in many partitions, each record in its
// stream's partition and nowhere else.
func testSpread(t *testing.T, b persistence.Backend) {
	start := Heads(t, b)
	const streams = 64
	for i := range streams {
		mustAppend(t, b, fmt.Sprintf("spread-%d", i), 0, recs(1, "x"))
	}
	logs := ReadLogs(t, b, start, 100)
	used, total := 0, 0
	for _, rs := range logs {
		if len(rs) > 0 {
			used++
		}
		total += len(rs)
	}
	if total != streams {
		t.Fatalf("the logs hold %d new records, want %d", total, streams)
	}
	if want := min(b.Partitions(), 4); used < want {
		t.Fatalf("%d streams landed in %d of %d partitions, want at least %d", streams, used, b.Partitions(), want)
	}
}

// testReopen: the partition count is stored at first start; a backend
// opened with 0 takes it, one with another count is refused, and the stored
// count keeps reading what was written.
func testReopen(t *testing.T, open func(partitions int) (persistence.Backend, error)) {
	b, err := open(4)
	if err != nil {
		t.Fatalf("open with 4 partitions: %v", err)
	}
	defer b.Close()
	if b.Partitions() != 4 {
		t.Fatalf("opened with 4 partitions, reports %d", b.Partitions())
	}
	mustAppend(t, b, "reopen", 0, recs(2, "a"))
	other, err := open(8)
	var mm *persistence.PartitionMismatchError
	if !errors.As(err, &mm) || mm.Stored != 4 || mm.Configured != 8 || !errors.Is(err, persistence.ErrInvalidArgument) {
		if other != nil {
			_ = other.Close()
		}
		t.Fatalf("open with 8 partitions a journal made with 4: %v, want a PartitionMismatchError{4, 8}", err)
	}
	any, err := open(0)
	if err != nil {
		t.Fatalf("open with the stored count: %v", err)
	}
	defer any.Close()
	if any.Partitions() != 4 {
		t.Fatalf("opened with 0 partitions (the stored count, 4), reports %d", any.Partitions())
	}
	if rs := mustLoad(t, any, "reopen", 0); len(rs) != 2 {
		t.Fatalf("reopened backend loads %d records, want 2", len(rs))
	}
}

func testGlobalLog(t *testing.T, b persistence.Backend) {
	start := Heads(t, b)
	// Interleave appends to several streams; each partition's log keeps
	// commit order.
	want := map[int][]string{}
	for i := range 30 {
		s := fmt.Sprintf("g%d", i%5)
		cur := mustLoad(t, b, s, 0)
		mustAppend(t, b, s, uint64(len(cur)), []persistence.Record{{Type: "Ev", Data: []byte(fmt.Sprint(i))}})
		p := persistence.PartitionOf(s, b.Partitions())
		want[p] = append(want[p], fmt.Sprint(i))
	}
	heads := Heads(t, b)
	// Read in small pages, resuming after the last position seen.
	logs := ReadLogs(t, b, start, 7)
	for p, got := range logs {
		if len(got) != len(want[p]) {
			t.Fatalf("partition %d has %d records after %d, want %d", p, len(got), start[p], len(want[p]))
		}
		for i, r := range got {
			if string(r.Data) != want[p][i] {
				t.Fatalf("partition %d record %d is %q, want %q", p, i, r.Data, want[p][i])
			}
			if r.StreamID == "" || r.Version == 0 {
				t.Fatalf("partition %d record %d lacks stream/version: %+v", p, i, r)
			}
		}
		if len(got) > 0 && got[len(got)-1].Position != heads[p] {
			t.Fatalf("partition %d: last position %d, head %d", p, got[len(got)-1].Position, heads[p])
		}
		if len(got) == 0 && heads[p] != start[p] {
			t.Fatalf("partition %d: head moved from %d to %d without records", p, start[p], heads[p])
		}
		if page, err := b.Log(p).ReadAll(ctxT(t), heads[p], 10); err != nil || len(page) != 0 {
			t.Fatalf("read partition %d after head: %d records, %v", p, len(page), err)
		}
	}
}

// testBehind: Behind is 0 at and past Head, counts between one per append
// and one per record after a position, and never grows along the log.
func testBehind(t *testing.T, b persistence.Backend) {
	ctx := ctxT(t)
	// Two streams of one partition.
	a := "behind-a"
	p := persistence.PartitionOf(a, b.Partitions())
	other := ""
	for i := 0; other == ""; i++ {
		if s := fmt.Sprintf("behind-b%d", i); persistence.PartitionOf(s, b.Partitions()) == p {
			other = s
		}
	}
	log := b.Log(p)
	start, err := log.Head(ctx)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if n, err := log.Behind(ctx, start); err != nil || n != 0 {
		t.Fatalf("behind head %d: %d, %v; want 0", start, n, err)
	}
	// Three appends of one record, one of two (in a stream of its own).
	mustAppend(t, b, a, 0, recs(1, "a"))
	mustAppend(t, b, a, 1, recs(1, "b"))
	mustAppend(t, b, other, 0, recs(2, "c"))
	mustAppend(t, b, a, 2, recs(1, "d"))
	head, err := log.Head(ctx)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	n, err := log.Behind(ctx, start)
	if err != nil || n < 4 || n > 5 {
		t.Fatalf("behind the start after 4 appends of 5 records: %d, %v; want 4 (per append) to 5 (per record)", n, err)
	}
	for _, pos := range []uint64{head, head + 1, head + 1000} {
		if n, err := log.Behind(ctx, pos); err != nil || n != 0 {
			t.Fatalf("behind %d (head %d): %d, %v; want 0", pos, head, n, err)
		}
	}
	rs, err := log.ReadAll(ctx, start, 10)
	if err != nil || len(rs) != 5 {
		t.Fatalf("read all after %d: %d records, %v", start, len(rs), err)
	}
	prev := n
	for i, r := range rs {
		n, err := log.Behind(ctx, r.Position)
		if err != nil {
			t.Fatalf("behind %d: %v", r.Position, err)
		}
		if after := uint64(len(rs) - 1 - i); n > after || n > prev {
			t.Fatalf("behind record %d (position %d): %d, with %d records after it and %d behind the one before", i, r.Position, n, after, prev)
		}
		prev = n
	}
	// Another partition's log does not count them.
	if b.Partitions() > 1 {
		q := (p + 1) % b.Partitions()
		h, err := b.Log(q).Head(ctx)
		if err != nil {
			t.Fatalf("head of partition %d: %v", q, err)
		}
		if n, err := b.Log(q).Behind(ctx, h); err != nil || n != 0 {
			t.Fatalf("behind the head of partition %d: %d, %v", q, n, err)
		}
	}
}

func testCheckpoints(t *testing.T, b persistence.Backend) {
	ctx := ctxT(t)
	if p, err := b.LoadCheckpoint(ctx, "outbox"); err != nil || p != 0 {
		t.Fatalf("fresh checkpoint: %d, %v", p, err)
	}
	for _, p := range []uint64{5, 42, 7} {
		if err := b.SaveCheckpoint(ctx, "outbox", p); err != nil {
			t.Fatalf("save %d: %v", p, err)
		}
		if got, err := b.LoadCheckpoint(ctx, "outbox"); err != nil || got != p {
			t.Fatalf("load after saving %d: %d, %v", p, got, err)
		}
	}
	if p, _ := b.LoadCheckpoint(ctx, "other"); p != 0 {
		t.Fatalf("checkpoints leak between names: %d", p)
	}
}

// testPartitionCheckpoints: each partition's checkpoint, saved and read
// through persistence.SaveLogCheckpoint and friends (the partition's Log
// where it keeps its checkpoints, the backend's Checkpoints otherwise),
// keeps its own value, and LogCheckpointAndHead answers it with the
// partition's Head.
func testPartitionCheckpoints(t *testing.T, b persistence.Backend) {
	ctx := ctxT(t)
	name := func(p int) string { return fmt.Sprintf("outbox-%d", p) }
	n := b.Partitions()
	for p := range n {
		if cp, err := persistence.LoadLogCheckpoint(ctx, b, b.Log(p), name(p)); err != nil || cp != 0 {
			t.Fatalf("fresh checkpoint of partition %d: %d, %v", p, cp, err)
		}
	}
	for p := range n {
		if err := persistence.SaveLogCheckpoint(ctx, b, b.Log(p), name(p), uint64(100+p)); err != nil {
			t.Fatalf("save checkpoint of partition %d: %v", p, err)
		}
	}
	stream := "pc"
	mustAppend(t, b, stream, 0, recs(2, "pc"))
	sp := persistence.PartitionOf(stream, n)
	for p := range n {
		l := b.Log(p)
		cp, err := persistence.LoadLogCheckpoint(ctx, b, l, name(p))
		if err != nil || cp != uint64(100+p) {
			t.Fatalf("checkpoint of partition %d: %d, %v; want %d", p, cp, err, 100+p)
		}
		cp, head, err := persistence.LogCheckpointAndHead(ctx, b, l, name(p))
		if err != nil || cp != uint64(100+p) {
			t.Fatalf("checkpoint and head of partition %d: checkpoint %d, %v; want %d", p, cp, err, 100+p)
		}
		want, err := l.Head(ctx)
		if err != nil || head != want || (p == sp && head == 0) {
			t.Fatalf("checkpoint and head of partition %d: head %d; Head says %d (%v)", p, head, want, err)
		}
	}
	if err := persistence.SaveLogCheckpoint(ctx, b, b.Log(sp), name(sp), 1); err != nil {
		t.Fatal(err)
	}
	if cp, _, err := persistence.LogCheckpointAndHead(ctx, b, b.Log(sp), name(sp)); err != nil || cp != 1 {
		t.Fatalf("checkpoint of partition %d after saving a lower one: %d, %v", sp, cp, err)
	}
}

func testSnapshots(t *testing.T, b persistence.Backend) {
	ctx := ctxT(t)
	for _, s := range []persistence.Snapshot{
		{StreamID: "snap", Version: 10, Data: []byte("v10")},
		{StreamID: "snap", Version: 20, Data: []byte("v20")},
		{StreamID: "snap", Version: 15, Data: []byte("v15")}, // older: ignored
	} {
		if err := b.SaveSnapshot(ctx, s); err != nil {
			t.Fatalf("save snapshot %d: %v", s.Version, err)
		}
	}
	s, ok, err := b.LoadSnapshot(ctx, "snap")
	if err != nil || !ok {
		t.Fatalf("load snapshot: ok=%v err=%v", ok, err)
	}
	if s.Version != 20 || string(s.Data) != "v20" || s.StreamID != "snap" {
		t.Fatalf("snapshot %+v, want version 20 v20", s)
	}
}

func testCanceledContext(t *testing.T, b persistence.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Append(ctx, "cc", 0, recs(1, "a")); err == nil {
		t.Fatal("append with a canceled context succeeded")
	}
	if rs := mustLoad(t, b, "cc", 0); len(rs) != 0 {
		t.Fatalf("canceled append wrote %d records", len(rs))
	}
}

func testRestart(t *testing.T, b persistence.Backend, restart func(t *testing.T)) {
	mustAppend(t, b, "r", 0, recs(3, "before"))
	restart(t)
	// The same backend value must work again once the server is back
	// (reconnecting by itself); poll for a bounded time.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rs, err := b.Load(ctxT(t), "r", 0)
		if err == nil {
			if len(rs) != 3 {
				t.Fatalf("after restart the stream has %d records, want 3", len(rs))
			}
			break
		}
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("load during restart: %v, want nil or ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend did not come back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := mustAppend(t, b, "r", 3, recs(1, "after")); v != 4 {
		t.Fatalf("append after restart: version %d", v)
	}
}

func testBinaryPayloads(t *testing.T, b persistence.Backend) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte{0xff, 0, '\r', '\n', 'x'}, 64<<10/5)
	in := []persistence.Record{
		{Type: "All", Data: all},
		{Type: "Empty", Data: nil},
		{Type: "Big", Data: big},
		{Type: "Text", Data: []byte("s:1,v:2|t=\"d\"")},
	}
	mustAppend(t, b, "bin", 0, in)
	out := mustLoad(t, b, "bin", 0)
	if len(out) != len(in) {
		t.Fatalf("loaded %d records, want %d", len(out), len(in))
	}
	checkStream(t, out, "bin", 1)
	for i := range in {
		if out[i].Type != in[i].Type || !bytes.Equal(out[i].Data, in[i].Data) {
			t.Fatalf("record %d (%s) changed: %d bytes, want %d", i, in[i].Type, len(out[i].Data), len(in[i].Data))
		}
	}
	page, err := b.Log(out[0].Partition).ReadAll(ctxT(t), out[0].Position-1, len(in))
	if err != nil || len(page) != len(in) {
		t.Fatalf("read all: %d records, %v", len(page), err)
	}
	for i := range in {
		if !bytes.Equal(page[i].Data, in[i].Data) || page[i].Position != out[i].Position {
			t.Fatalf("global record %d differs from the loaded one", i)
		}
	}
}

// testConcurrentStreamsGlobalLog appends from many goroutines to distinct
// streams at once (the shape of a busy node) and checks that the global log
// holds every record exactly once, in an order consistent with each stream.
func testConcurrentStreamsGlobalLog(t *testing.T, b persistence.Backend) {
	const writers, appends = 16, 25
	ctx := ctxT(t)
	start := Heads(t, b)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("cw%d", w)
			var v uint64
			for a := range appends {
				n := 1 + a%3
				rs := make([]persistence.Record, n)
				for i := range rs {
					rs[i] = persistence.Record{Type: "Ev", Data: []byte(fmt.Sprintf("%s:%d", stream, v+uint64(i)+1))}
				}
				nv, err := b.Append(ctx, stream, v, rs)
				if err != nil {
					t.Errorf("append to %s at %d: %v", stream, v, err)
					return
				}
				if nv != v+uint64(n) {
					t.Errorf("append to %s at %d: new version %d, want %d", stream, v, nv, v+uint64(n))
					return
				}
				v = nv
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	logs := ReadLogs(t, b, start, 50)
	var got []persistence.Record
	for _, rs := range logs {
		got = append(got, rs...)
	}
	const perStream = appends/3*6 + appends%3*(appends%3+1)/2 // 1+2+3 per three appends
	if len(got) != writers*perStream {
		t.Fatalf("global log has %d new records, want %d", len(got), writers*perStream)
	}
	last := map[string]uint64{}
	for _, r := range got {
		if r.Version != last[r.StreamID]+1 {
			t.Fatalf("global log: %s version %d after version %d", r.StreamID, r.Version, last[r.StreamID])
		}
		last[r.StreamID] = r.Version
		if want := fmt.Sprintf("%s:%d", r.StreamID, r.Version); string(r.Data) != want {
			t.Fatalf("global log: record %s:%d holds %q", r.StreamID, r.Version, r.Data)
		}
	}
	for w := range writers {
		stream := fmt.Sprintf("cw%d", w)
		rs := mustLoad(t, b, stream, 0)
		if len(rs) != perStream {
			t.Fatalf("%s has %d records, want %d", stream, len(rs), perStream)
		}
		checkStream(t, rs, stream, 1)
	}
	for p, h := range Heads(t, b) {
		if rs := logs[p]; len(rs) > 0 && rs[len(rs)-1].Position != h {
			t.Fatalf("partition %d: head %d, last position read %d", p, h, rs[len(rs)-1].Position)
		}
	}
}

func testClosed(t *testing.T, b persistence.Backend) {
	mustAppend(t, b, "closed", 0, recs(1, "a"))
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ctx := ctxT(t)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, persistence.ErrClosed) {
			t.Fatalf("%s after close: %v, want ErrClosed", op, err)
		}
	}
	_, err := b.Append(ctx, "closed", 1, recs(1, "b"))
	check("append", err)
	_, err = b.Load(ctx, "closed", 0)
	check("load", err)
	_, err = b.Log(0).ReadAll(ctx, 0, 10)
	check("read all", err)
	_, err = b.Log(0).Head(ctx)
	check("head", err)
	_, err = b.Log(0).Behind(ctx, 0)
	check("behind", err)
	check("save checkpoint", b.SaveCheckpoint(ctx, "c", 1))
	_, err = b.LoadCheckpoint(ctx, "c")
	check("load checkpoint", err)
	check("save snapshot", b.SaveSnapshot(ctx, persistence.Snapshot{StreamID: "closed", Version: 1}))
	_, _, err = b.LoadSnapshot(ctx, "closed")
	check("load snapshot", err)
	check("ping", b.Ping(ctx))
}
