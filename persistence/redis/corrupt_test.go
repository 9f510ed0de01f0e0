package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// logLines keeps the messages of the records logged to it.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	l.lines = append(l.lines, line)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// corruptible is a backend on a private server with the raw client that
// writes past it. Its journal has one partition, so that the positions the
// tests expect are those of one log.
type corruptible struct {
	b      *redis.Backend
	log    persistence.Log
	rdb    *goredis.Client
	prefix string // of partition 0's keys: ordersystem:{p0}:
	logs   *logLines
}

func newCorruptible(t *testing.T) *corruptible {
	t.Helper()
	srv := testservers.StartRedis(t)
	c := &corruptible{prefix: "ordersystem:{p0}:", logs: &logLines{}}
	b, err := redis.New(context.Background(), redis.Options{Addr: srv.Addr(), Partitions: 1, Logger: slog.New(c.logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c.b, c.log = b, b.Log(0)
	c.rdb = goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.rdb.Close() })
	return c
}

func (c *corruptible) append(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := c.b.Append(context.Background(), id, 0, []persistence.Record{{Type: "T-" + id}}); err != nil {
			t.Fatal(err)
		}
	}
}

// inject adds a log entry at the next position with the given fields, the
// way a hand-made write would (the counter moves so appends go on).
func (c *corruptible) inject(t *testing.T, fields ...any) uint64 {
	t.Helper()
	ctx := context.Background()
	pos, err := c.rdb.Incr(ctx, c.prefix+"seq").Uint64()
	if err == nil {
		err = c.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: c.prefix + "log", ID: "0-" + strconv.FormatUint(pos, 10), Values: fields}).Err()
	}
	if err != nil {
		t.Fatalf("inject a log entry: %v", err)
	}
	return pos
}

func wantCorrupt(t *testing.T, err error, pos uint64, reason string) *persistence.CorruptRecordError {
	t.Helper()
	var ce *persistence.CorruptRecordError
	if !errors.As(err, &ce) || !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("got %v, want a *CorruptRecordError", err)
	}
	if ce.Position != pos || ce.Next != pos || ce.Partition != 0 || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("corrupt %+v, want position and next %d, reason with %q", ce, pos, reason)
	}
	return ce
}

func types(rs []persistence.Record) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%d:%s", r.Position, r.Type))
	}
	return strings.Join(s, " ")
}

// readThrough reads the whole global log in pages of limit, as the outbox
// does, skipping corrupt entries; it returns the records and the skipped
// positions.
func readThrough(t *testing.T, b persistence.Log, limit int) (recs []persistence.Record, skipped []uint64) {
	t.Helper()
	var after uint64
	for range 10000 {
		page, err := b.ReadAll(context.Background(), after, limit)
		var ce *persistence.CorruptRecordError
		switch {
		case errors.As(err, &ce):
			if ce.Next <= after {
				t.Fatalf("corrupt %+v does not move past %d", ce, after)
			}
			skipped = append(skipped, ce.Position)
			after = ce.Next
			continue
		case err != nil:
			t.Fatal(err)
		case len(page) == 0:
			return recs, skipped
		}
		recs = append(recs, page...)
		after = page[len(page)-1].Position
	}
	t.Fatal("the read never ended")
	return nil, nil
}

// TestReadAllAroundCorruptEntries: log entries at positions of their own
// that lack the fields of a record (none of s, v, t; a version that is not
// a number). ReadAll returns the records before one, reports the one it
// starts at (Next = its position), and reads on after it.
func TestReadAllAroundCorruptEntries(t *testing.T) {
	c := newCorruptible(t)
	ctx := context.Background()
	c.append(t, "a", "b")
	noFields := c.inject(t, "d", "junk")
	badVersion := c.inject(t, "s", "x", "v", "\xff\xfe", "t", "T-x", "d", "")
	c.append(t, "c", "d")

	if page, err := c.log.ReadAll(ctx, 0, 10); err != nil || types(page) != "1:T-a 2:T-b" {
		t.Fatalf("read all from 0: %s %v", types(page), err)
	}
	if page, err := c.log.ReadAll(ctx, 0, 1); err != nil || types(page) != "1:T-a" {
		t.Fatalf("read all of one: %s %v", types(page), err)
	}
	_, err := c.log.ReadAll(ctx, 2, 10)
	ce := wantCorrupt(t, err, noFields, "lacks stream, version or type")
	_, err = c.log.ReadAll(ctx, ce.Next, 1)
	ce = wantCorrupt(t, err, badVersion, "is not a number")
	if page, err := c.log.ReadAll(ctx, ce.Next, 10); err != nil || types(page) != "5:T-c 6:T-d" {
		t.Fatalf("read all after the corrupt entries: %s %v", types(page), err)
	}
	for _, limit := range []int{1, 2, 3, 1000} {
		recs, skipped := readThrough(t, c.log, limit)
		if types(recs) != "1:T-a 2:T-b 5:T-c 6:T-d" || fmt.Sprint(skipped) != "[3 4]" {
			t.Fatalf("limit %d: %s, skipped %v", limit, types(recs), skipped)
		}
	}
	if rs, err := c.b.Load(ctx, "c", 1); err != nil || types(rs) != "5:T-c" {
		t.Fatalf("load of an order after the corrupt entries: %s %v", types(rs), err)
	}
	if head, err := c.log.Head(ctx); err != nil || head != 6 {
		t.Fatalf("head %d %v", head, err)
	}
	if len(c.logs.all()) != 0 {
		t.Fatalf("logged %q", c.logs.all())
	}
}

// TestReadAllSkipsAnEntryWithAnotherID: an entry XADDed with an id of
// Redis's making (not 0-<position>) sorts after every record. ReadAll
// returns the records before it, then nothing (no position is made up for
// it), and logs it once. Appends fail while it is there (Redis refuses
// lower ids) and work again once it is deleted and the log's last id set
// back; no record is lost or skipped by a reader.
func TestReadAllSkipsAnEntryWithAnotherID(t *testing.T) {
	c := newCorruptible(t)
	ctx := context.Background()
	c.append(t, "a", "b")
	foreign, err := c.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: c.prefix + "log", Values: []any{"s", "z", "v", "1", "t", "T-z"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if page, err := c.log.ReadAll(ctx, 0, 10); err != nil || types(page) != "1:T-a 2:T-b" {
			t.Fatalf("read all from 0: %s %v", types(page), err)
		}
		if page, err := c.log.ReadAll(ctx, 2, 10); err != nil || len(page) != 0 {
			t.Fatalf("read all after the last record: %s %v", types(page), err)
		}
	}
	logs := c.logs.all()
	if len(logs) != 1 || !strings.HasPrefix(logs[0], "ERROR ") || !strings.Contains(logs[0], "entry_id="+foreign) {
		t.Fatalf("logged %q, want one error naming %s", logs, foreign)
	}

	_, err = c.b.Append(ctx, "c", 0, []persistence.Record{{Type: "T-c"}})
	if err == nil || errors.Is(err, persistence.ErrVersionConflict) {
		t.Fatalf("append with a foreign entry at the end of the log: %v", err)
	}
	t.Logf("append while the foreign entry is there: %v", err)
	// The repair: delete it, and set the log's last id back (XDEL leaves
	// it where the foreign entry put it).
	if err := c.rdb.XDel(ctx, c.prefix+"log", foreign).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.rdb.Do(ctx, "XSETID", c.prefix+"log", "0-2").Err(); err != nil {
		t.Fatal(err)
	}
	c.append(t, "d")
	recs, skipped := readThrough(t, c.log, 1)
	if len(recs) != 3 || recs[2].Type != "T-d" || len(skipped) != 0 {
		t.Fatalf("after the repair: %s, skipped %v", types(recs), skipped)
	}
	// The failed append took a position that holds nothing: Head is past
	// the last record, and a reader checkpointed there misses nothing.
	head, err := c.log.Head(ctx)
	if err != nil || head < recs[2].Position {
		t.Fatalf("head %d %v", head, err)
	}
}

// TestCorruptEntryNamesItsPartition: in a journal of 4 partitions an entry
// injected into one partition's log is reported with that partition, and
// the other partitions read on untouched.
func TestCorruptEntryNamesItsPartition(t *testing.T) {
	addr := testservers.Redis(t)
	prefix := uniquePrefix(t)
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	b, err := redis.New(context.Background(), redis.Options{Addr: addr, Prefix: prefix, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	ids := map[int]string{}
	for i := 0; len(ids) < 4; i++ {
		id := fmt.Sprintf("o-%d", i)
		if _, ok := ids[persistence.PartitionOf(id, 4)]; !ok {
			ids[persistence.PartitionOf(id, 4)] = id
		}
	}
	for _, id := range ids {
		if _, err := b.Append(ctx, id, 0, []persistence.Record{{Type: "T-" + id}}); err != nil {
			t.Fatal(err)
		}
	}
	raw := goredis.NewClient(&goredis.Options{Addr: addr})
	defer raw.Close()
	logKey := prefix + "{p2}:log"
	if err := raw.XAdd(ctx, &goredis.XAddArgs{Stream: logKey, ID: "0-2", Values: []any{"d", "junk"}}).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = b.Log(2).ReadAll(ctx, 1, 10)
	var ce *persistence.CorruptRecordError
	if !errors.As(err, &ce) || ce.Partition != 2 || ce.Position != 2 || !strings.Contains(err.Error(), "partition 2") {
		t.Fatalf("read of partition 2 past its corrupt entry: %v, want a CorruptRecordError of partition 2 at 2", err)
	}
	for _, p := range []int{0, 1, 3} {
		if rs, err := b.Log(p).ReadAll(ctx, 0, 10); err != nil || len(rs) != 1 || rs[0].StreamID != ids[p] || rs[0].Partition != p {
			t.Fatalf("partition %d: %+v %v, want %s's one record", p, rs, err, ids[p])
		}
	}
}
