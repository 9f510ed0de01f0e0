package actors_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	pnats "github.com/ordersystem/ordersystem/persistence/nats"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/transport"
)

// recorder publishes into a count per event id.
type recorder struct {
	mu    sync.Mutex
	count map[string]int
}

func (r *recorder) Publish(_ context.Context, batch []transport.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count == nil {
		r.count = map[string]int{}
	}
	for _, m := range batch {
		r.count[m.ID()]++
	}
	return nil
}

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.count))
	for k, v := range r.count {
		out[k] = v
	}
	return out
}

// corruptibleBackend is a backend on a private server and a way to put an
// entry that is not a record into its global log, as a hand-made write
// would.
type corruptibleBackend struct {
	persistence.Backend
	inject func(t *testing.T)
}

func privateRedis(t *testing.T) corruptibleBackend {
	t.Helper()
	s := testservers.StartRedis(t)
	b, err := predis.New(context.Background(), predis.Options{Addr: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	// The layout (persistence/redis): log entries 0-<position> with fields
	// s, v, t, d in partition 0's log ordersystem:{p0}:log; its counter
	// ordersystem:{p0}:seq hands out positions.
	return corruptibleBackend{Backend: b, inject: func(t *testing.T) {
		t.Helper()
		rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
		defer rdb.Close()
		ctx := context.Background()
		pos, err := rdb.Incr(ctx, "ordersystem:{p0}:seq").Result()
		if err == nil {
			err = rdb.XAdd(ctx, &goredis.XAddArgs{Stream: "ordersystem:{p0}:log", ID: "0-" + strconv.FormatInt(pos, 10), Values: []any{"d", "junk"}}).Err()
		}
		if err != nil {
			t.Fatalf("inject a log entry: %v", err)
		}
	}}
}

func privateNATS(t *testing.T) corruptibleBackend {
	t.Helper()
	s := testservers.StartNATS(t)
	b, err := pnats.New(context.Background(), pnats.Options{URL: s.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	// The layout (persistence/nats): one stream per partition, one message
	// per append on orders.journal.p<N>.<id> with the version and type in
	// headers; the junk goes into partition 0's stream.
	return corruptibleBackend{Backend: b, inject: func(t *testing.T) {
		t.Helper()
		nc, err := natsgo.Connect(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := js.PublishMsg(context.Background(), &natsgo.Msg{Subject: "orders.journal.p0.junk", Data: []byte("junk")}); err != nil {
			t.Fatalf("inject a journal message: %v", err)
		}
	}}
}

// outboxMember is a member with the order kind and an outbox that publishes
// to pub; drains are asked for explicitly.
type outboxMember struct {
	member  *cluster.Node
	driver  *actors.OutboxDriver
	client  *actors.OrderClient
	stats   *actors.OutboxStats
	metrics *metrics.Metrics
}

func startOutboxMember(t *testing.T, b persistence.Backend, pub actors.Publisher, batch int) *outboxMember {
	t.Helper()
	om := &outboxMember{stats: actors.NewOutboxStats(b.Partitions()), metrics: metrics.New()}
	var member *cluster.Node
	req := reqFunc(func(ctx context.Context, id, kind string, msg any) (any, error) {
		return member.Request(ctx, id, kind, msg)
	})
	om.driver = actors.NewOutboxDriver(req, b.Partitions(), time.Hour, nil)
	member, err := cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
		actors.NewOrderKind(actors.OrderConfig{Journal: b, NodeID: "n"}),
		actors.NewOutboxKind(actors.OutboxConfig{Journal: b, Publisher: pub, BatchSize: batch, IOTimeout: 2 * time.Second,
			Stats: om.stats, Metrics: om.metrics}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	om.member, om.client = member, actors.NewOrderClient(member)
	t.Cleanup(func() { member.Stop(false) })
	return om
}

func (om *outboxMember) create(t *testing.T, ids ...string) []string {
	t.Helper()
	var events []string
	for _, id := range ids {
		if r, err := om.client.Command(context.Background(), id, createCmd(id)); err != nil || r.GetError() != nil {
			t.Fatalf("create %s: %v %v", id, err, r.GetError())
		}
		if r, err := om.client.Command(context.Background(), id, payCmd(id+"-pay")); err != nil || r.GetError() != nil {
			t.Fatalf("pay %s: %v %v", id, err, r.GetError())
		}
		events = append(events, id+":1", id+":2")
	}
	return events
}

// drain drains every partition and returns the published count.
func (om *outboxMember) drain(t *testing.T) uint64 {
	t.Helper()
	n, err := om.driver.DrainAll(context.Background())
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	return n
}

// lag is the sum of the partitions' lags as the outboxes last saw them.
func (om *outboxMember) lag() uint64 {
	var lag uint64
	for p := range om.stats.Partitions() {
		lag += om.stats.Partition(p).Lag()
	}
	return lag
}

func (om *outboxMember) unreadableMetric(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	om.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, `outbox_dead_lettered_total{reason="unreadable"}`) {
			return line
		}
	}
	return ""
}

// wantPublished checks that every event in want was published exactly
// once and nothing else was.
func wantPublished(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("published %v, want exactly %v", got, want)
	}
	for _, id := range want {
		if got[id] != 1 {
			t.Fatalf("event %s published %d times (all: %v)", id, got[id], got)
		}
	}
}

// TestOutboxDeadLettersAnUnreadableJournalEntry: orders journaled through
// their actors, an entry that breaks the backend's layout put into the
// global log (a Redis log entry without its fields, a NATS journal message
// without headers), more orders, another bad entry at the end. One drain
// publishes every readable event exactly once, counts the two bad entries
// (stats and metrics) and leaves the checkpoint past them, at the head. A
// new outbox (a restart) publishes only what was journaled since, and does
// not count the bad entries again.
func TestOutboxDeadLettersAnUnreadableJournalEntry(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		for _, batch := range []int{3, 100} {
			t.Run(fmt.Sprintf("%s/batch=%d", kind, batch), func(t *testing.T) {
				b := privateRedis
				if kind == "nats" {
					b = privateNATS
				}
				backend := b(t)
				pub := &recorder{}
				om := startOutboxMember(t, backend, pub, batch)

				want := om.create(t, "o-0", "o-1", "o-2")
				backend.inject(t)
				want = append(want, om.create(t, "o-3", "o-4", "o-5")...)
				backend.inject(t)

				published := om.drain(t)
				wantPublished(t, pub.snapshot(), want)
				if n := om.stats.DeadLettered.Load(); n != 2 {
					t.Fatalf("dead-lettered %d, want the 2 bad entries", n)
				}
				if line := om.unreadableMetric(t); !strings.HasSuffix(line, " 2") {
					t.Fatalf("metrics: %q", line)
				}
				if published != uint64(len(want)) || om.lag() != 0 {
					t.Fatalf("published %d of %d, lag %d: the checkpoints must be past the last bad entry", published, len(want), om.lag())
				}
				for p := range backend.Partitions() {
					cp, err := persistence.LoadLogCheckpoint(context.Background(), backend, backend.Log(p), actors.CheckpointName(p))
					if want := om.stats.Partition(p).Checkpoint.Load(); err != nil || cp != want {
						t.Fatalf("partition %d: saved checkpoint %d %v, the outbox says %d", p, cp, err, want)
					}
					if behind, err := backend.Log(p).Behind(context.Background(), cp); err != nil || behind != 0 {
						t.Fatalf("partition %d: behind the checkpoint: %d %v", p, behind, err)
					}
				}
				// A second drain has nothing to do.
				if n := om.drain(t); n != 0 || om.stats.DeadLettered.Load() != 2 {
					t.Fatalf("second drain published %d, dead-lettered %d", n, om.stats.DeadLettered.Load())
				}

				// Restart: a new member, a new outbox activation.
				om.member.Stop(false)
				om = startOutboxMember(t, backend, pub, batch)
				want = append(want, om.create(t, "o-6")...)
				published = om.drain(t)
				wantPublished(t, pub.snapshot(), want)
				if published != 2 || om.stats.DeadLettered.Load() != 0 || om.lag() != 0 {
					t.Fatalf("after the restart: published %d, dead-lettered %d, lag %d", published, om.stats.DeadLettered.Load(), om.lag())
				}
			})
		}
	}
}

// corruptLog is a one-partition memory journal whose log has an entry that
// is not a record at position bad (memory holds a record there, which
// ReadAll does not return), and whose checkpoint save at position failAt
// fails once.
type corruptLog struct {
	*memory.Backend
	bad    uint64
	next   uint64 // what the *CorruptRecordError says to resume after
	mu     sync.Mutex
	failAt uint64
}

func newCorruptLog(bad, next, failAt uint64) *corruptLog {
	return &corruptLog{Backend: memory.NewPartitioned(1), bad: bad, next: next, failAt: failAt}
}

func (c *corruptLog) Log(p int) persistence.Log { return corruptPartition{Log: c.Backend.Log(p), c: c} }

type corruptPartition struct {
	persistence.Log
	c *corruptLog
}

func (l corruptPartition) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	recs, err := l.Log.ReadAll(ctx, after, limit)
	for i, r := range recs {
		if r.Position == l.c.bad {
			if i == 0 {
				return nil, fmt.Errorf("read all: %w", &persistence.CorruptRecordError{Position: l.c.bad, Next: l.c.next, Reason: "no fields"})
			}
			return recs[:i], nil
		}
	}
	return recs, err
}

func (c *corruptLog) SaveCheckpoint(ctx context.Context, name string, pos uint64) error {
	c.mu.Lock()
	fail := c.failAt != 0 && c.failAt == pos
	if fail {
		c.failAt = 0
	}
	c.mu.Unlock()
	if fail {
		return persistence.Unavailable("save checkpoint", errors.New("refused"))
	}
	return c.Backend.SaveCheckpoint(ctx, name, pos)
}

func startOutboxOn(t *testing.T, log actors.OutboxJournal, pub actors.Publisher) (*actors.OutboxDriver, *actors.OutboxStats) {
	t.Helper()
	stats := actors.NewOutboxStats(log.Partitions())
	var member *cluster.Node
	req := reqFunc(func(ctx context.Context, id, kind string, msg any) (any, error) {
		return member.Request(ctx, id, kind, msg)
	})
	driver := actors.NewOutboxDriver(req, log.Partitions(), time.Hour, nil)
	member, err := cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
		actors.NewOutboxKind(actors.OutboxConfig{Journal: log, Publisher: pub, Stats: stats}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Stop(false) })
	return driver, stats
}

// journalN journals one record for each of orders m-0 .. m-<n-1>.
func journalN(t *testing.T, j persistence.Journal, n int) {
	t.Helper()
	for i := range n {
		if _, err := j.Append(context.Background(), fmt.Sprint("m-", i), 0, []persistence.Record{{Type: "OrderCreated"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutboxSkipRetriedAfterACheckpointFailure: when the checkpoint cannot
// be saved past a bad entry the drain fails and the entry stays ahead of
// the checkpoint; the next drain skips it again, saves, and goes on. The
// entry is counted once.
func TestOutboxSkipRetriedAfterACheckpointFailure(t *testing.T) {
	log := newCorruptLog(3, 3, 3)
	journalN(t, log, 5)
	pub := &recorder{}
	driver, stats := startOutboxOn(t, log, pub)
	ctx := context.Background()

	st, err := driver.Drain(ctx, 0)
	if err != nil || !strings.Contains(st.GetError(), "save checkpoint 3") || st.GetCheckpoint() != 2 {
		t.Fatalf("drain with the save past the bad entry failing: %v %+v", err, st)
	}
	wantPublished(t, pub.snapshot(), []string{"m-0:1", "m-1:1"})
	st, err = driver.Drain(ctx, 0)
	if err != nil || st.GetError() != "" || st.GetCheckpoint() != 5 || st.GetHead() != 5 {
		t.Fatalf("drain: %v %+v", err, st)
	}
	wantPublished(t, pub.snapshot(), []string{"m-0:1", "m-1:1", "m-3:1", "m-4:1"})
	if n := stats.DeadLettered.Load(); n != 1 {
		t.Fatalf("dead-lettered %d, want 1", n)
	}
	if cp, _ := log.LoadCheckpoint(ctx, actors.CheckpointName(0)); cp != 5 {
		t.Fatalf("saved checkpoint %d", cp)
	}
}

// TestOutboxRefusesACorruptErrorThatDoesNotMoveOn: a journal whose
// *CorruptRecordError resumes at or before the checkpoint would make the
// outbox read the same entry forever; the drain fails instead.
func TestOutboxRefusesACorruptErrorThatDoesNotMoveOn(t *testing.T) {
	log := newCorruptLog(2, 1, 0)
	journalN(t, log, 3)
	driver, stats := startOutboxOn(t, log, &recorder{})
	st, err := driver.Drain(context.Background(), 0)
	if err != nil || !strings.Contains(st.GetError(), "not past the checkpoint 1") || st.GetCheckpoint() != 1 {
		t.Fatalf("drain: %v %+v", err, st)
	}
	if stats.DeadLettered.Load() != 0 {
		t.Fatalf("dead-lettered %d", stats.DeadLettered.Load())
	}
}
