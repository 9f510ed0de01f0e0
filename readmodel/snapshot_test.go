package readmodel_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/readmodel"
)

// memStore is a persistence.ReadModelSnapshots in memory for these tests:
// it keeps the last snapshot saved per partition, data and all.
type memStore struct {
	journal    string
	partitions int
	mu         sync.Mutex
	snaps      map[int]persistence.ReadModelSnapshot
	saves      int
}

func newMemStore(partitions int) *memStore {
	return &memStore{journal: "j1", partitions: partitions, snaps: map[int]persistence.ReadModelSnapshot{}}
}

func (s *memStore) JournalIdentity() string { return s.journal }

func (s *memStore) SaveReadModelSnapshot(_ context.Context, snap persistence.ReadModelSnapshot) (persistence.ReadModelSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	persistence.SealSnapshot(&snap, s.partitions, s.journal, 1, time.Now())
	s.snaps[snap.Partition] = snap
	s.saves++
	return snap, nil
}

func (s *memStore) ReadModelSnapshotManifest(_ context.Context, p int) (persistence.ReadModelSnapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.snaps[p]
	snap.Data = nil
	return snap, ok, nil
}

func (s *memStore) LoadReadModelSnapshot(_ context.Context, p int) (persistence.ReadModelSnapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.snaps[p]
	return snap, ok, nil
}

// put stores ps as partition ps.Partition's snapshot.
func (s *memStore) put(ps *readmodel.PartitionSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps[ps.Partition] = persistence.ReadModelSnapshot{Partition: ps.Partition, Position: ps.Position, Partitions: s.partitions, Journal: s.journal,
		Data: readmodel.EncodePartitionSnapshot(ps)}
}

// holeyJournal is a memory journal whose logs hold entries that are not
// records at the positions in bad[p] (ReadAll reports them as
// *persistence.CorruptRecordError, as the contract says).
type holeyJournal struct {
	j   *memory.Backend
	bad map[int]map[uint64]bool
}

func (h holeyJournal) Partitions() int { return h.j.Partitions() }
func (h holeyJournal) Log(p int) persistence.Log {
	return holeyLog{Log: h.j.Log(p), bad: h.bad[p]}
}

type holeyLog struct {
	persistence.Log
	bad map[uint64]bool
}

func (l holeyLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	recs, err := l.Log.ReadAll(ctx, after, limit)
	for i, r := range recs {
		if l.bad[r.Position] {
			if i == 0 {
				return nil, &persistence.CorruptRecordError{Partition: l.Partition(), Position: r.Position, Next: r.Position, Reason: "log entry lacks stream, version or type"}
			}
			return recs[:i], nil
		}
	}
	return recs, err
}

// view is everything a client can see of a read model, and its
// quarantines (without their dates).
type view struct {
	List        []readmodel.Summary
	Stats       readmodel.Stats
	Quarantined int
	Quarantines []readmodel.Quarantine
}

func viewOf(t interface{ Fatal(...any) }, m *readmodel.ReadModel) view {
	var v view
	cursor := ""
	for {
		page, next, err := m.List(order.StatusNone, 1000, cursor)
		if err != nil {
			t.Fatal(err)
		}
		v.List = append(v.List, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	v.Stats = m.Stats()
	v.Quarantined, v.Quarantines = m.Quarantined(1 << 20)
	for i := range v.Quarantines {
		v.Quarantines[i].At = time.Time{}
	}
	return v
}

func diffViews(a, b view) string {
	if len(a.List) != len(b.List) {
		return fmt.Sprintf("%d orders listed, want %d", len(a.List), len(b.List))
	}
	for i := range a.List {
		if a.List[i] != b.List[i] {
			return fmt.Sprintf("order %d of the list: %+v, want %+v", i, a.List[i], b.List[i])
		}
	}
	if fmt.Sprint(a.Stats) != fmt.Sprint(b.Stats) {
		return fmt.Sprintf("stats %+v, want %+v", a.Stats, b.Stats)
	}
	if a.Quarantined != b.Quarantined || !slices.Equal(a.Quarantines, b.Quarantines) {
		return fmt.Sprintf("quarantines %d %+v, want %d %+v", a.Quarantined, a.Quarantines, b.Quarantined, b.Quarantines)
	}
	return ""
}

// fill journals a random history: orders created (some at the same
// instant), moved on through their lifecycle, some given an unreadable
// record; and marks random log positions as entries that are not records.
func fill(t *rapid.T, j *memory.Backend) holeyJournal {
	ctx := context.Background()
	h := holeyJournal{j: j, bad: map[int]map[uint64]bool{}}
	type ord struct {
		id      string
		version uint64
		status  order.Status
	}
	var orders []*ord
	ops := rapid.IntRange(1, 120).Draw(t, "ops")
	for i := range ops {
		at := t0.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "at")) * time.Second)
		kind := rapid.IntRange(0, 9).Draw(t, "kind")
		if len(orders) == 0 || kind < 4 {
			o := &ord{id: fmt.Sprintf("o%03d", i)}
			c := created(order.Cents(rapid.IntRange(1, 5000).Draw(t, "total")), at)
			appendEvent(t, j, o.id, o.version, c)
			o.version, o.status = 1, order.StatusPending
			orders = append(orders, o)
			continue
		}
		o := orders[rapid.IntRange(0, len(orders)-1).Draw(t, "order")]
		var e order.Event
		switch {
		case kind == 9:
			// An unreadable record: its order is quarantined.
			if _, err := j.Append(ctx, o.id, o.version, []persistence.Record{{Type: "OrderPaid", Data: []byte{0xff, 0xfe}}}); err != nil {
				t.Fatal(err)
			}
			o.version++
			continue
		case kind == 8:
			// A log entry that is not a record (a hand-made write to the
			// backend): a record of a stream no order has, that the log
			// reports as unreadable.
			hole := fmt.Sprintf("hole%03d", i)
			if _, err := j.Append(ctx, hole, 0, []persistence.Record{{Type: "junk", Data: []byte("junk")}}); err != nil {
				t.Fatal(err)
			}
			p := persistence.PartitionOf(hole, j.Partitions())
			head, _ := j.Log(p).Head(ctx)
			if h.bad[p] == nil {
				h.bad[p] = map[uint64]bool{}
			}
			h.bad[p][head] = true
			continue
		case o.status == order.StatusPending && kind == 7, o.status == order.StatusPaid && kind == 7:
			e = order.Cancelled{Reason: "r", At: at}
		case o.status == order.StatusPending:
			e = order.Paid{PaymentMethod: "card", At: at}
		case o.status == order.StatusPaid:
			e = order.Shipped{TrackingNumber: "t", At: at}
		case o.status == order.StatusShipped:
			e = order.Delivered{At: at}
		default:
			continue
		}
		appendEvent(t, j, o.id, o.version, e)
		o.version++
		o.status = order.Evolve(order.State{Status: o.status}, e).Status
	}
	return h
}

func appendEvent(t *rapid.T, j *memory.Backend, id string, version uint64, e order.Event) {
	data, _ := proto.Marshal(codec.EventToProto(id, version+1, "c", "f", e))
	if _, err := j.Append(context.Background(), id, version, []persistence.Record{{Type: e.EventType(), Data: data}}); err != nil {
		t.Fatal(err)
	}
}

// deliver applies a random selection of the journal's events to m, as a
// transport would before the rebuild (in per-order order; the read model
// repairs the gaps from the journal).
func deliver(t *rapid.T, j *memory.Backend, ms ...*readmodel.ReadModel) {
	ctx := context.Background()
	for p := range j.Partitions() {
		recs, _ := j.Log(p).ReadAll(ctx, 0, 1<<20)
		for _, r := range recs {
			if strings.HasPrefix(r.StreamID, "hole") || !rapid.Bool().Draw(t, "deliver") {
				continue
			}
			pe, err := codec.DecodeRecord(r)
			if err != nil {
				continue
			}
			for _, m := range ms {
				_ = m.Apply(ctx, pe)
			}
		}
	}
}

// TestSnapshotPlusTailEqualsFullRebuild: for a random history (with
// unreadable records and log entries that are not records), a snapshot at a
// random prefix of each partition's log, made in one or two steps (the
// second from the first, through the encoding), plus the replay of the tail
// gives exactly what a full Rebuild gives: the same list in the same
// order, the same figures, the same quarantines in the same order, also
// when a transport delivered events before.
func TestSnapshotPlusTailEqualsFullRebuild(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		n := rapid.IntRange(1, 3).Draw(t, "partitions")
		mem := memory.NewPartitioned(n)
		j := fill(t, mem)
		full, restored := readmodel.New(mem), readmodel.New(mem)
		if rapid.Bool().Draw(t, "transport first") {
			deliver(t, mem, full, restored)
		}
		if _, err := full.Rebuild(ctx, j); err != nil {
			t.Fatal(err)
		}
		store := newMemStore(n)
		for p := range n {
			head, _ := j.Log(p).Head(ctx)
			if head == 0 || !rapid.Bool().Draw(t, "snapshot") {
				continue
			}
			at := rapid.Uint64Range(1, head).Draw(t, "position")
			var prev *readmodel.PartitionSnapshot
			if at > 1 && rapid.Bool().Draw(t, "two steps") {
				first, err := readmodel.BuildSnapshot(ctx, j.Log(p), nil, rapid.Uint64Range(1, at-1).Draw(t, "first position"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if prev, err = readmodel.DecodePartitionSnapshot(readmodel.EncodePartitionSnapshot(first)); err != nil {
					t.Fatal(err)
				}
			}
			ps, err := readmodel.BuildSnapshot(ctx, j.Log(p), prev, at, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ps.Position > at {
				t.Fatalf("partition %d: snapshot at %d, asked for %d", p, ps.Position, at)
			}
			store.put(ps)
		}
		rep, err := restored.Restore(ctx, j, store, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.FromSnapshot != len(store.snaps) || len(rep.Fallbacks) != 0 {
			t.Fatalf("restore %+v: want %d partitions from a snapshot", rep, len(store.snaps))
		}
		if d := diffViews(viewOf(t, restored), viewOf(t, full)); d != "" {
			t.Fatalf("snapshot + tail differs from a full rebuild: %s", d)
		}
	})
}

func TestSnapshotEncodingRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		mem := memory.NewPartitioned(1)
		j := fill(t, mem)
		ps, err := readmodel.BuildSnapshot(ctx, j.Log(0), nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		data := readmodel.EncodePartitionSnapshot(ps)
		got, err := readmodel.DecodePartitionSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readmodel.EncodePartitionSnapshot(got), data) || fmt.Sprint(got) != fmt.Sprint(ps) {
			t.Fatalf("round trip:\n%+v\nwant\n%+v", got, ps)
		}
		// Any flipped byte is caught.
		i := rapid.IntRange(0, len(data)-1).Draw(t, "byte")
		bad := slices.Clone(data)
		bad[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "flip"))
		if _, err := readmodel.DecodePartitionSnapshot(bad); err == nil {
			t.Fatalf("byte %d flipped: decoded", i)
		}
	})
}

func TestSnapshotKeepsZeroTimes(t *testing.T) {
	ps := &readmodel.PartitionSnapshot{Summaries: []readmodel.Summary{{OrderID: "a", Status: order.StatusPending, Version: 1}},
		Quarantines: []readmodel.Quarantine{{OrderID: "b", Reason: "r"}}}
	got, err := readmodel.DecodePartitionSnapshot(readmodel.EncodePartitionSnapshot(ps))
	if err != nil || got.Summaries[0] != ps.Summaries[0] || got.Quarantines[0] != ps.Quarantines[0] || !got.Summaries[0].CreatedAt.IsZero() {
		t.Fatalf("%+v, %v", got, err)
	}
}

// logBuffer collects what a logger writes, for the warnings.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRestoreFallsBackOnABadSnapshot: a snapshot that cannot be used is
// logged as a warning and its partition replayed in full; the read model
// is the full rebuild's.
func TestRestoreFallsBackOnABadSnapshot(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewPartitioned(1)
	for i := range 30 {
		journal(t, mem, fmt.Sprint("o", i), t0, created(100, t0.Add(time.Duration(i)*time.Second)), order.Paid{At: t0})
	}
	full := readmodel.New(mem)
	if _, err := full.Rebuild(ctx, mem); err != nil {
		t.Fatal(err)
	}
	good, err := readmodel.BuildSnapshot(ctx, mem.Log(0), nil, 40, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		spoil      func(*persistence.ReadModelSnapshot)
	}{
		{"flipped byte", "checksum", func(s *persistence.ReadModelSnapshot) { s.Data[len(s.Data)/2] ^= 1 }},
		{"unknown format", "format 9", func(s *persistence.ReadModelSnapshot) { s.Data[4] = 9 }},
		{"truncated", "no \"ORMS\" header", func(s *persistence.ReadModelSnapshot) { s.Data = s.Data[:6] }},
		{"another journal", "made from journal \"old\"", func(s *persistence.ReadModelSnapshot) { s.Journal = "old" }},
		{"another partition count", "journal of 16 partitions", func(s *persistence.ReadModelSnapshot) { s.Partitions = 16 }},
		{"past the head", "past the log's head 60", func(s *persistence.ReadModelSnapshot) { s.Position = 61 }},
		{"position disagrees", "manifest says partition 0 at position 39", func(s *persistence.ReadModelSnapshot) { s.Position = 39 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore(1)
			store.put(good)
			s := store.snaps[0]
			s.Data = slices.Clone(s.Data)
			tc.spoil(&s)
			store.snaps[0] = s
			var logs logBuffer
			m := readmodel.New(mem)
			rep, err := m.Restore(ctx, mem, store, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if rep.FromSnapshot != 0 || rep.Tail != 60 || !strings.Contains(rep.Fallbacks[0], tc.want) {
				t.Fatalf("report %+v, want a full replay because %q", rep, tc.want)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "read-model snapshot not used") {
				t.Fatalf("no warning: %s", logs.String())
			}
			if d := diffViews(viewOf(t, m), viewOf(t, full)); d != "" {
				t.Fatal(d)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		store := newMemStore(1)
		store.put(good)
		m := readmodel.New(mem)
		rep, err := m.Restore(ctx, mem, store, nil)
		if err != nil || rep.FromSnapshot != 1 || rep.Loaded[0] != 40 || rep.Tail != 20 || rep.SnapshotOrders != 20 {
			t.Fatalf("report %+v, %v", rep, err)
		}
		if d := diffViews(viewOf(t, m), viewOf(t, full)); d != "" {
			t.Fatal(d)
		}
	})
}

// failingStore fails every load.
type failingStore struct{ *memStore }

func (failingStore) LoadReadModelSnapshot(context.Context, int) (persistence.ReadModelSnapshot, bool, error) {
	return persistence.ReadModelSnapshot{}, false, fmt.Errorf("chunk 2 is missing: %w", persistence.ErrCorrupt)
}

func TestRestoreFallsBackWhenAChunkIsMissing(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewPartitioned(2)
	for i := range 10 {
		journal(t, mem, fmt.Sprint("o", i), t0, created(100, t0.Add(time.Duration(i)*time.Second)))
	}
	m := readmodel.New(mem)
	rep, err := m.Restore(ctx, mem, failingStore{newMemStore(2)}, nil)
	if err != nil || rep.FromSnapshot != 0 || len(rep.Fallbacks) != 2 || rep.Tail != 10 || m.Stats().TotalOrders != 10 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

// TestSnapshotterWritesWhenTheLogIsFarEnoughAhead: Check writes a snapshot
// once a partition's log holds Every records past the last one, builds the
// next from it, and only for the partitions it owns.
func TestSnapshotterWritesWhenTheLogIsFarEnoughAhead(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewPartitioned(2)
	store := newMemStore(2)
	journalN := func(from, to int) {
		for i := from; i < to; i++ {
			journal(t, mem, fmt.Sprint("o", i), t0, created(100, t0.Add(time.Duration(i)*time.Second)))
		}
	}
	journalN(0, 10)
	head1, _ := mem.Log(1).Head(ctx)
	if head1 < 2 {
		t.Fatalf("partition 1 holds %d records", head1)
	}
	sn := readmodel.NewSnapshotter(readmodel.SnapshotterConfig{Journal: mem, Store: store, Every: head1, Owns: func(p int) bool { return p == 1 }})
	if n, err := sn.Check(ctx); err != nil || n != 1 {
		t.Fatalf("check: %d written, %v", n, err)
	}
	if _, ok := store.snaps[0]; ok {
		t.Fatal("a snapshot of a partition this node does not own")
	}
	first := store.snaps[1]
	if n, err := sn.Check(ctx); err != nil || n != 0 {
		t.Fatalf("check right after: %d written, %v", n, err)
	}
	journalN(10, 60)
	if n, err := sn.Check(ctx); err != nil || n != 1 || store.snaps[1].Position <= first.Position {
		t.Fatalf("check after more records: %d written, %v, position %d then %d", n, err, first.Position, store.snaps[1].Position)
	}
	head, _ := mem.Log(1).Head(ctx)
	if store.snaps[1].Position != head {
		t.Fatalf("snapshot at %d, head %d", store.snaps[1].Position, head)
	}
	m := readmodel.New(mem)
	rep, err := m.Restore(ctx, mem, store, nil)
	if err != nil || rep.FromSnapshot != 1 || m.Stats().TotalOrders != 60 {
		t.Fatalf("restore %+v, %v, %d orders", rep, err, m.Stats().TotalOrders)
	}
}

// TestSnapshotCountsSkippedEntriesPastTheListed: a log with more entries
// that are not records than the quarantine list holds restores to the same
// count and list as a full rebuild.
func TestSnapshotCountsSkippedEntriesPastTheListed(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewPartitioned(1)
	h := holeyJournal{j: mem, bad: map[int]map[uint64]bool{0: {}}}
	for i := range 1100 {
		journal(t, mem, fmt.Sprint("o", i), t0, created(100, t0.Add(time.Duration(i)*time.Second)))
		if i%100 != 0 {
			h.bad[0][uint64(i+1)] = true
		}
	}
	full := readmodel.New(mem)
	if _, err := full.Rebuild(ctx, h); err != nil {
		t.Fatal(err)
	}
	ps, err := readmodel.BuildSnapshot(ctx, h.Log(0), nil, 1050, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore(1)
	store.put(ps)
	m := readmodel.New(mem)
	if _, err := m.Restore(ctx, h, store, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := full.Quarantined(0); n != 1089 {
		t.Fatalf("full rebuild: %d skipped", n)
	}
	if d := diffViews(viewOf(t, m), viewOf(t, full)); d != "" {
		t.Fatal(d)
	}
}

// TestRebuildListsInOrderAcrossPartitions: a rebuild of partitions whose
// orders interleave in time (merged into the list in runs, not inserted
// one by one) lists every order newest first, while events delivered by
// the transport during the rebuild land too.
func TestRebuildListsInOrderAcrossPartitions(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewPartitioned(3)
	const n = 15000
	for i := range n {
		at := t0.Add(time.Duration((i*7919)%n) * time.Millisecond)
		journal(t, mem, fmt.Sprintf("o%05d", i), t0, created(100, at))
	}
	m := readmodel.New(mem)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			pe := codec.EventToProto(fmt.Sprintf("live%02d", i), 1, "c", "f", created(1, t0.Add(time.Duration(i)*time.Second)))
			_ = m.Apply(ctx, pe)
		}
	}()
	if _, err := m.Rebuild(ctx, mem); err != nil {
		t.Fatal(err)
	}
	<-done
	v := viewOf(t, m)
	if len(v.List) != n+50 || v.Stats.TotalOrders != n+50 {
		t.Fatalf("%d listed, %d counted, want %d", len(v.List), v.Stats.TotalOrders, n+50)
	}
	for i := 1; i < len(v.List); i++ {
		a, b := v.List[i-1], v.List[i]
		if a.CreatedAt.Before(b.CreatedAt) || (a.CreatedAt.Equal(b.CreatedAt) && a.OrderID <= b.OrderID) {
			t.Fatalf("list out of order at %d: %s %v then %s %v", i, a.OrderID, a.CreatedAt, b.OrderID, b.CreatedAt)
		}
	}
}

// TestSnapshotterRunWritesAndStops: Run checks on its interval, writes a
// due snapshot, and returns once its context ends.
func TestSnapshotterRunWritesAndStops(t *testing.T) {
	mem := memory.NewPartitioned(1)
	for i := range 5 {
		journal(t, mem, fmt.Sprint("o", i), t0, created(100, t0))
	}
	store := newMemStore(1)
	sn := readmodel.NewSnapshotter(readmodel.SnapshotterConfig{Journal: mem, Store: store, Every: 5, Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- sn.Run(ctx) }()
	poll.Eventually(t, 5*time.Second, poll.True("a snapshot written by Run", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.saves == 1
	}))
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}
