package readmodel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/readmodel"
	"github.com/ordersystem/ordersystem/transport"
)

// flakyLoader is a journal whose stream reads fail with ErrUnavailable
// while down is set.
type flakyLoader struct {
	j     *memory.Backend
	down  atomic.Bool
	loads atomic.Int64
}

func (f *flakyLoader) Load(ctx context.Context, id string, from uint64) ([]persistence.Record, error) {
	f.loads.Add(1)
	if f.down.Load() {
		return nil, persistence.Unavailable("load", errors.New("connection refused"))
	}
	return f.j.Load(ctx, id, from)
}

// message is the transport message of an envelope.
func message(t testing.TB, pe *orderpb.Event) transport.Message {
	t.Helper()
	data, err := proto.Marshal(pe)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := codec.EventFromProto(pe)
	typ := "Unknown"
	if e != nil {
		typ = e.EventType()
	}
	return transport.Message{OrderID: pe.GetOrderId(), Version: pe.GetVersion(), Type: typ, Payload: data}
}

// ghostPaid is a well-formed OrderPaid at version v of an order that was
// never created.
func ghostPaid(t testing.TB, id string, v uint64) transport.Message {
	return message(t, codec.EventToProto(id, v, "forged", "f", order.Paid{PaymentMethod: "card", At: t0}))
}

func fastConsumer(rm *readmodel.ReadModel, m *metrics.Metrics) *readmodel.Consumer {
	return readmodel.NewConsumer(rm, readmodel.ConsumerConfig{Attempts: 3, Backoff: 5 * time.Millisecond, DeadLetters: 4, Metrics: m})
}

func TestPoisonIsDeadLetteredAndTheConsumerMovesOn(t *testing.T) {
	j := memory.NewPartitioned(1)
	real := journal(t, j, "real", t0, created(1000, t0), order.Paid{At: t0})
	rm := readmodel.New(j)
	c := fastConsumer(rm, nil)
	ctx := context.Background()

	start := time.Now()
	batch := []transport.Message{ghostPaid(t, "ghost", 1), ghostPaid(t, "ghost2", 2), message(t, real[0]), message(t, real[1])}
	if err := c.Handle(ctx, batch); err != nil {
		t.Fatalf("a batch with poison must be accepted, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dead-lettering took %s", d)
	}
	if s, ok := rm.Get("real"); !ok || s.Status != order.StatusPaid {
		t.Fatalf("the real order behind the poison: %+v %v", s, ok)
	}
	if _, ok := rm.Get("ghost"); ok {
		t.Fatal("the never-created order appeared")
	}
	if c.DeadLettered() != 2 {
		t.Fatalf("dead-lettered %d, want 2", c.DeadLettered())
	}
	dl := c.DeadLetters()
	if len(dl) != 2 || dl[0].EventID != "ghost2:2" || dl[1].EventID != "ghost:1" {
		t.Fatalf("dead letters, newest first: %+v", dl)
	}
	for _, d := range dl {
		if d.Reason != metrics.DeadLetterNotInJournal || d.Attempts != 3 || d.Type != "OrderPaid" || d.At.IsZero() || d.Error == "" {
			t.Fatalf("dead letter %+v", d)
		}
	}
	// The same poison redelivered is dead-lettered again, never applied.
	if err := c.Handle(ctx, batch[:1]); err != nil || c.DeadLettered() != 3 || rm.Stats().TotalOrders != 1 {
		t.Fatalf("redelivered poison: %v, %d dead letters, %d orders", err, c.DeadLettered(), rm.Stats().TotalOrders)
	}
}

func TestOutageRedeliversAndDeadLettersNothing(t *testing.T) {
	j := memory.NewPartitioned(1)
	evs := journal(t, j, "a", t0, created(1000, t0), order.Paid{At: t0}, order.Shipped{At: t0})
	loader := &flakyLoader{j: j}
	rm := readmodel.New(loader)
	c := fastConsumer(rm, nil)
	ctx := context.Background()
	if err := c.Handle(ctx, []transport.Message{message(t, evs[0])}); err != nil {
		t.Fatal(err)
	}

	// The journal is down: a gap (a real event) and a poison event both
	// need it. Neither is dead-lettered; the batch is refused, again and again.
	loader.down.Store(true)
	batch := []transport.Message{ghostPaid(t, "ghost", 1), message(t, evs[2])}
	for range 5 {
		err := c.Handle(ctx, batch)
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("during the outage: %v, want ErrUnavailable (redeliver)", err)
		}
	}
	if c.DeadLettered() != 0 {
		t.Fatalf("%d dead letters during an outage", c.DeadLettered())
	}
	// It returns: the real event is repaired, the poison dead-lettered.
	loader.down.Store(false)
	if err := c.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if s, _ := rm.Get("a"); s.Version != 3 || s.Status != order.StatusShipped {
		t.Fatalf("after the outage: %+v", s)
	}
	if c.DeadLettered() != 1 || c.DeadLetters()[0].EventID != "ghost:1" || rm.Repaired() != 1 {
		t.Fatalf("after the outage: %d dead letters %+v, %d repaired", c.DeadLettered(), c.DeadLetters(), rm.Repaired())
	}
}

func TestOutageBetweenAttemptsIsNotPoison(t *testing.T) {
	j := memory.NewPartitioned(1)
	loader := &flakyLoader{j: j}
	rm := readmodel.New(loader)
	c := readmodel.NewConsumer(rm, readmodel.ConsumerConfig{Attempts: 3, Backoff: 20 * time.Millisecond})
	go func() {
		// Down after the first check: the later checks are not answers.
		for loader.loads.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		loader.down.Store(true)
	}()
	err := c.Handle(context.Background(), []transport.Message{ghostPaid(t, "ghost", 1)})
	if !errors.Is(err, persistence.ErrUnavailable) || c.DeadLettered() != 0 {
		t.Fatalf("outage after the first check: %v, %d dead letters", err, c.DeadLettered())
	}
}

func TestUnusableMessagesAreDeadLetteredAtOnce(t *testing.T) {
	j := &flakyLoader{j: memory.NewPartitioned(1)}
	rm := readmodel.New(j)
	m := metrics.New()
	c := fastConsumer(rm, m)
	good := codec.EventToProto("a", 1, "c", "f", created(100, t0))
	data, _ := proto.Marshal(good)
	empty, _ := proto.Marshal(&orderpb.Event{OrderId: "a", Version: 1})
	for _, tc := range []struct {
		name   string
		msg    transport.Message
		reason string
	}{
		{"garbage", transport.Message{OrderID: "a", Version: 1, Type: "OrderCreated", Payload: []byte("garbage")}, metrics.DeadLetterUndecodable},
		{"no event", transport.Message{OrderID: "a", Version: 1, Type: "OrderCreated", Payload: empty}, metrics.DeadLetterUndecodable},
		{"another event", transport.Message{OrderID: "b", Version: 1, Type: "OrderCreated", Payload: data}, metrics.DeadLetterInvalid},
		{"another version", transport.Message{OrderID: "a", Version: 2, Type: "OrderCreated", Payload: data}, metrics.DeadLetterInvalid},
		{"not an order id", transport.Message{OrderID: "a.b", Version: 1, Type: "OrderCreated",
			Payload: func() []byte { b, _ := proto.Marshal(codec.EventToProto("a.b", 1, "", "", created(1, t0))); return b }()}, metrics.DeadLetterInvalid},
	} {
		before := c.DeadLettered()
		if err := c.Handle(context.Background(), []transport.Message{tc.msg}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.DeadLettered() != before+1 || c.DeadLetters()[0].Reason != tc.reason || c.DeadLetters()[0].Attempts != 0 {
			t.Fatalf("%s: %+v", tc.name, c.DeadLetters())
		}
	}
	if j.loads.Load() != 0 || rm.Stats().TotalOrders != 0 {
		t.Fatalf("unusable messages reached the journal (%d loads) or the read model", j.loads.Load())
	}
	// The list keeps the newest ConsumerConfig.DeadLetters.
	if got := len(c.DeadLetters()); got != 4 || c.DeadLetters()[0].EventID != "a.b:1" {
		t.Fatalf("%d dead letters listed: %+v", got, c.DeadLetters())
	}
	fams := scrapeText(t, m)
	for _, want := range []string{`readmodel_dead_lettered_total{reason="undecodable"} 2`, `readmodel_dead_lettered_total{reason="invalid"} 3`} {
		if !strings.Contains(fams, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestContradictionIsRepairedFromTheJournal(t *testing.T) {
	j := memory.NewPartitioned(1)
	evs := journal(t, j, "a", t0, created(1000, t0), order.Paid{At: t0})
	rm := readmodel.New(j)
	c := fastConsumer(rm, nil)
	ctx := context.Background()
	forged := message(t, codec.EventToProto("a", 2, "x", "x", order.Delivered{At: t0})) // Pending cannot be delivered
	if err := c.Handle(ctx, []transport.Message{message(t, evs[0]), forged}); err != nil {
		t.Fatal(err)
	}
	if s, _ := rm.Get("a"); s.Status != order.StatusPaid || s.Version != 2 {
		t.Fatalf("the journal's version 2 should win: %+v", s)
	}
	if c.DeadLettered() != 0 || rm.Repaired() != 1 {
		t.Fatalf("%d dead letters, %d repaired", c.DeadLettered(), rm.Repaired())
	}
}

// corruptJournal holds a good order, one whose second record is garbage,
// and one more good order journaled after it.
func corruptJournal(t *testing.T) *memory.Backend {
	t.Helper()
	j := memory.NewPartitioned(1)
	journal(t, j, "before", t0, created(100, t0), order.Paid{At: t0})
	journal(t, j, "bad", t0, created(200, t0.Add(time.Second)))
	if _, err := j.Append(context.Background(), "bad", 1, []persistence.Record{{Type: "OrderPaid", Data: []byte("garbage")}}); err != nil {
		t.Fatal(err)
	}
	journal(t, j, "after", t0, created(400, t0.Add(2*time.Second)))
	return j
}

func TestRebuildQuarantinesAnUndecodableRecord(t *testing.T) {
	j := corruptJournal(t)
	rm := readmodel.New(j)
	pos, err := rm.Rebuild(context.Background(), j)
	if err != nil || pos[0] != 5 {
		t.Fatalf("rebuild: position %v, %v", pos, err)
	}
	page, _, _ := rm.List(order.StatusNone, 10, "")
	if len(page) != 2 || page[0].OrderID != "after" || page[1].OrderID != "before" {
		t.Fatalf("list %+v", page)
	}
	st := rm.Stats()
	if st.TotalOrders != 2 || st.TotalRevenue != 500 || st.ByStatus[order.StatusPending] != 1 || st.ByStatus[order.StatusPaid] != 1 {
		t.Fatalf("stats %+v: the quarantined order must not count", st)
	}
	n, qs := rm.Quarantined(10)
	if n != 1 || len(qs) != 1 {
		t.Fatalf("quarantined %d %+v", n, qs)
	}
	q := qs[0]
	if q.OrderID != "bad" || q.Version != 2 || q.Position != 4 || !strings.Contains(q.Reason, "not an event") || q.At.IsZero() {
		t.Fatalf("quarantine %+v", q)
	}
	// Its events are refused from now on, and dead-lettered by the consumer.
	c := fastConsumer(rm, nil)
	msg := message(t, codec.EventToProto("bad", 3, "c", "f", order.Shipped{At: t0}))
	if err := c.Handle(context.Background(), []transport.Message{msg}); err != nil {
		t.Fatal(err)
	}
	if d := c.DeadLetters(); len(d) != 1 || d[0].Reason != metrics.DeadLetterQuarantined || !strings.Contains(d[0].Error, "bad is quarantined") {
		t.Fatalf("dead letters %+v", d)
	}
}

func TestRebuildQuarantinesEveryKindOfCorruption(t *testing.T) {
	bad := func(pe *orderpb.Event) []byte { b, _ := proto.Marshal(pe); return b }
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"not protobuf", "not an event", []byte{0xff, 0xff, 0xff}},
		{"no event", "has no payload", bad(&orderpb.Event{OrderId: "x", Version: 2})},
		{"another version", "envelope says x:5", bad(codec.EventToProto("x", 5, "", "", order.Paid{At: t0}))},
		{"another order", "envelope says y:2", bad(codec.EventToProto("y", 2, "", "", order.Paid{At: t0}))},
		{"created twice", "OrderCreated at version 2", bad(codec.EventToProto("x", 2, "", "", created(1, t0)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := memory.NewPartitioned(1)
			journal(t, j, "x", t0, created(100, t0))
			if _, err := j.Append(context.Background(), "x", 1, []persistence.Record{{Type: "OrderPaid", Data: tc.data}}); err != nil {
				t.Fatal(err)
			}
			journal(t, j, "z", t0, created(100, t0))
			rm := readmodel.New(j)
			if _, err := rm.Rebuild(context.Background(), j); err != nil {
				t.Fatal(err)
			}
			_, qs := rm.Quarantined(1)
			if len(qs) != 1 || qs[0].OrderID != "x" || qs[0].Version != 2 || !strings.Contains(qs[0].Reason, tc.want) {
				t.Fatalf("quarantine %+v, want x:2 %q", qs, tc.want)
			}
			if _, ok := rm.Get("z"); !ok || rm.Stats().TotalOrders != 1 {
				t.Fatal("the other order is missing")
			}
		})
	}
}

func TestLiveRepairQuarantinesAnUndecodableRecord(t *testing.T) {
	j := corruptJournal(t)
	rm := readmodel.New(j)
	c := fastConsumer(rm, nil)
	ctx := context.Background()
	first, _ := j.Load(ctx, "bad", 1)
	pe, _ := codec.DecodeRecord(first[0])
	// Version 3 arrives: the gap is read from the journal, whose version 2
	// cannot be read.
	msgs := []transport.Message{message(t, pe), message(t, codec.EventToProto("bad", 3, "c", "f", order.Shipped{At: t0}))}
	if err := c.Handle(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if _, ok := rm.Get("bad"); ok || !rm.IsQuarantined("bad") || rm.Stats().TotalOrders != 0 {
		t.Fatalf("the order is still shown: %+v", rm.Stats())
	}
	if d := c.DeadLetters(); len(d) != 1 || d[0].EventID != "bad:3" || d[0].Reason != metrics.DeadLetterQuarantined {
		t.Fatalf("dead letters %+v", d)
	}
}

func TestQuarantineFromTheWriteSide(t *testing.T) {
	j := memory.NewPartitioned(1)
	evs := journal(t, j, "a", t0, created(100, t0), order.Cancelled{At: t0})
	journal(t, j, "b", t0, created(300, t0))
	rm := readmodel.New(j)
	if _, err := rm.Rebuild(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	q := rm.Quarantine("a", &codec.CorruptError{OrderID: "a", Version: 3, Err: errors.New("not an event")})
	again := rm.Quarantine("a", errors.New("another"))
	if q.Version != 3 || again != q {
		t.Fatalf("first quarantine %+v, second %+v", q, again)
	}
	st := rm.Stats()
	if st.TotalOrders != 1 || st.ByStatus[order.StatusCancelled] != 0 || st.TotalRevenue != 300 {
		t.Fatalf("stats %+v", st)
	}
	if err := rm.Apply(context.Background(), evs[0]); !errors.Is(err, readmodel.ErrQuarantined) {
		t.Fatalf("apply to a quarantined order: %v", err)
	}
}

// FuzzConsumerHandle: whatever a transport delivers (any payload, order
// id, version and type), the consumer never panics, and it accepts the
// batch (the journal answers here).
func FuzzConsumerHandle(f *testing.F) {
	good, _ := proto.Marshal(codec.EventToProto("a", 1, "c", "f", created(100, t0)))
	paid, _ := proto.Marshal(codec.EventToProto("a", 2, "c", "f", order.Paid{At: t0}))
	f.Add(good, "a", uint64(1), "OrderCreated")
	f.Add(paid, "a", uint64(2), "OrderPaid")
	f.Add([]byte("garbage"), "a", uint64(1), "OrderCreated")
	f.Add([]byte{}, "", uint64(0), "")
	f.Add(paid, "a", uint64(1<<63), "OrderPaid")
	f.Fuzz(func(t *testing.T, payload []byte, id string, version uint64, typ string) {
		j := memory.NewPartitioned(1)
		journal(t, j, "a", t0, created(100, t0))
		rm := readmodel.New(j)
		c := readmodel.NewConsumer(rm, readmodel.ConsumerConfig{Attempts: 1})
		msg := transport.Message{OrderID: id, Version: version, Type: typ, Payload: payload}
		if err := c.Handle(context.Background(), []transport.Message{msg, msg}); err != nil {
			t.Fatalf("handle: %v", err)
		}
		if uint64(len(c.DeadLetters())) != c.DeadLettered() && c.DeadLettered() <= readmodel.DefaultDeadLetters {
			t.Fatalf("%d dead letters listed, %d counted", len(c.DeadLetters()), c.DeadLettered())
		}
	})
}

func scrapeText(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// brokenLog is a global log whose reads fail whenever they would include
// position bad, with an error that is not a *persistence.CorruptRecordError
// (a backend that cannot say where to read on): Rebuild cannot skip it.
type brokenLog struct {
	j   *memory.Backend
	bad uint64
	err error
}

func (b brokenLog) Partitions() int                          { return 1 }
func (b brokenLog) Log(int) persistence.Log                  { return b }
func (b brokenLog) Partition() int                           { return 0 }
func (b brokenLog) Head(ctx context.Context) (uint64, error) { return b.j.Log(0).Head(ctx) }
func (b brokenLog) Behind(ctx context.Context, after uint64) (uint64, error) {
	return b.j.Log(0).Behind(ctx, after)
}

func (b brokenLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	recs, err := b.j.Log(0).ReadAll(ctx, after, limit)
	for _, r := range recs {
		if r.Position == b.bad {
			return nil, b.err
		}
	}
	return recs, err
}

func TestRebuildStopsAtARecordTheJournalCannotLayOut(t *testing.T) {
	j := memory.NewPartitioned(1)
	for i := range 5 {
		journal(t, j, string(rune('a'+i)), t0, created(100, t0.Add(time.Duration(i)*time.Second)))
	}
	rm := readmodel.New(j)
	pos, err := rm.Rebuild(context.Background(), brokenLog{j: j, bad: 4, err: errors.New("log entry 0-4 lacks stream, version or type")})
	var inc *readmodel.IncompleteError
	if !errors.As(err, &inc) || pos[0] != 3 || inc.After != 3 || rm.Incomplete() != inc {
		t.Fatalf("rebuild: position %v, %v", pos, err)
	}
	if rm.Stats().TotalOrders != 3 {
		t.Fatalf("the records before the bad one: %d orders", rm.Stats().TotalOrders)
	}
	// An outage is not that: the caller gets the persistence error.
	down := brokenLog{j: j, bad: 1, err: persistence.Unavailable("read all", errors.New("refused"))}
	if _, err := readmodel.New(j).Rebuild(context.Background(), down); !errors.Is(err, persistence.ErrUnavailable) || errors.As(err, &inc) {
		t.Fatalf("rebuild during an outage: %v", err)
	}
}

// unreadableLog is a global log with entries that are not records at the
// positions of bad (memory holds records there, which ReadAll does not
// return), each skipped by resuming after the value bad maps it to; it
// answers as the persistence contract says.
type unreadableLog struct {
	j   *memory.Backend
	bad map[uint64]uint64
}

func (u unreadableLog) Partitions() int                          { return 1 }
func (u unreadableLog) Log(int) persistence.Log                  { return u }
func (u unreadableLog) Partition() int                           { return 0 }
func (u unreadableLog) Head(ctx context.Context) (uint64, error) { return u.j.Log(0).Head(ctx) }
func (u unreadableLog) Behind(ctx context.Context, after uint64) (uint64, error) {
	return u.j.Log(0).Behind(ctx, after)
}

func (u unreadableLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	recs, err := u.j.Log(0).ReadAll(ctx, after, limit)
	for i, r := range recs {
		if next, ok := u.bad[r.Position]; ok {
			if i == 0 {
				return nil, fmt.Errorf("read all: %w", &persistence.CorruptRecordError{Position: r.Position, Next: next, Reason: "log entry lacks stream, version or type"})
			}
			return recs[:i], nil
		}
	}
	return recs, err
}

// TestRebuildSkipsEntriesThatAreNotRecords: entries of the global log that
// the journal reports as *CorruptRecordError (one on its own, two in a row,
// one at the end) are skipped and listed by position; every order around
// them is in the read model and Rebuild reports no error.
func TestRebuildSkipsEntriesThatAreNotRecords(t *testing.T) {
	j := memory.NewPartitioned(1)
	for i := range 10 {
		journal(t, j, fmt.Sprint("o", i), t0, created(100, t0.Add(time.Duration(i)*time.Second)))
	}
	// Positions 3, 6 and 7, 10 hold no record; 1 2 4 5 8 9 do.
	log := unreadableLog{j: j, bad: map[uint64]uint64{3: 3, 6: 6, 7: 7, 10: 10}}
	rm := readmodel.New(j)
	pos, err := rm.Rebuild(context.Background(), log)
	if err != nil || pos[0] != 10 || rm.Incomplete() != nil {
		t.Fatalf("rebuild: position %v, %v", pos, err)
	}
	if st := rm.Stats(); st.TotalOrders != 6 {
		t.Fatalf("%d orders, want the 6 records around the bad entries", st.TotalOrders)
	}
	for _, id := range []string{"o0", "o1", "o3", "o4", "o7", "o8"} {
		if _, ok := rm.Get(id); !ok {
			t.Fatalf("order %s is missing", id)
		}
	}
	n, qs := rm.Quarantined(10)
	if n != 4 || len(qs) != 4 {
		t.Fatalf("quarantined %d %+v", n, qs)
	}
	for i, want := range []uint64{10, 7, 6, 3} {
		q := qs[i]
		if q.Position != want || q.OrderID != "" || q.Version != 0 || !strings.Contains(q.Reason, "not a record") ||
			!strings.Contains(q.Reason, "lacks stream") || q.At.IsZero() {
			t.Fatalf("quarantine %d: %+v, want position %d", i, q, want)
		}
	}
	// No order is quarantined by it: the live path still applies events.
	if rm.IsQuarantined("") || rm.IsQuarantined("o2") {
		t.Fatal("a skipped entry quarantined an order")
	}

	// An entry that spans positions (a NATS message): resume after Next.
	rm = readmodel.New(j)
	pos, err = rm.Rebuild(context.Background(), unreadableLog{j: j, bad: map[uint64]uint64{4: 6}})
	if err != nil || pos[0] != 10 || rm.Stats().TotalOrders != 7 {
		t.Fatalf("rebuild: position %v, %d orders, %v", pos, rm.Stats().TotalOrders, err)
	}
	if _, qs := rm.Quarantined(10); len(qs) != 1 || qs[0].Position != 4 {
		t.Fatalf("quarantined %+v", qs)
	}

	// A journal whose error does not move on is not skipped forever: the
	// rebuild stops, incomplete.
	rm = readmodel.New(j)
	pos, err = rm.Rebuild(context.Background(), unreadableLog{j: j, bad: map[uint64]uint64{4: 2}})
	var inc *readmodel.IncompleteError
	if !errors.As(err, &inc) || pos[0] != 3 || inc.After != 3 {
		t.Fatalf("rebuild with a corrupt error that does not move on: position %v, %v", pos, err)
	}
}

// TestRebuildBoundsTheSkippedEntriesListed: a log made only of entries that
// are not records is read to its end; all are counted, a bounded number
// listed.
func TestRebuildBoundsTheSkippedEntriesListed(t *testing.T) {
	j := memory.NewPartitioned(1)
	const n = 1500
	bad := make(map[uint64]uint64, n)
	for i := range n {
		journal(t, j, fmt.Sprint("o", i), t0, created(100, t0))
		bad[uint64(i+1)] = uint64(i + 1)
	}
	rm := readmodel.New(j)
	pos, err := rm.Rebuild(context.Background(), unreadableLog{j: j, bad: bad})
	if err != nil || pos[0] != n {
		t.Fatalf("rebuild: position %v, %v", pos, err)
	}
	total, recent := rm.Quarantined(n)
	if total != n || len(recent) != 1000 || recent[0].Position != 1000 {
		t.Fatalf("quarantined %d, listed %d (newest %+v)", total, len(recent), recent[0])
	}
}

// TestRebuildReadsEveryPartition: orders spread over the partitions of a
// journal are all rebuilt, each at its last version, and Rebuild returns
// every partition's head.
func TestRebuildReadsEveryPartition(t *testing.T) {
	j := memory.NewPartitioned(8)
	const n = 200
	for i := range n {
		journal(t, j, fmt.Sprint("p", i), t0, created(100, t0.Add(time.Duration(i)*time.Millisecond)), order.Paid{At: t0.Add(time.Hour)})
	}
	rm := readmodel.New(j)
	pos, err := rm.Rebuild(context.Background(), j)
	if err != nil || len(pos) != 8 {
		t.Fatalf("rebuild: positions %v, %v", pos, err)
	}
	used := 0
	for p, at := range pos {
		head, err := j.Log(p).Head(context.Background())
		if err != nil || at != head {
			t.Fatalf("partition %d: rebuilt to %d, head %d (%v)", p, at, head, err)
		}
		if at > 0 {
			used++
		}
	}
	if used < 6 {
		t.Fatalf("%d orders landed in %d of 8 partitions", n, used)
	}
	st := rm.Stats()
	if st.TotalOrders != n || st.ByStatus[order.StatusPaid] != n {
		t.Fatalf("stats %+v, want %d paid orders", st, n)
	}
}

// TestConsumerSummariesMatchARebuild: what the consumer makes of delivered
// events (read as orderpb.EventHead, items counted) is what a rebuild from
// the journal makes of the same events (decoded whole).
func TestConsumerSummariesMatchARebuild(t *testing.T) {
	j := memory.NewPartitioned(2)
	three := order.Created{CustomerID: "c3", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 5}, {ProductID: "q", Name: "Q", Quantity: 2, UnitPrice: 10}, {ProductID: "r", Quantity: 1, UnitPrice: 1}}, Total: 26, At: t0}
	var batch []transport.Message
	for id, evs := range map[string][]order.Event{
		"three": {three, order.Paid{PaymentMethod: "card", At: t0.Add(time.Second)}, order.Shipped{TrackingNumber: "T", At: t0.Add(2 * time.Second)}},
		"one":   {created(100, t0.Add(time.Millisecond)), order.Cancelled{Reason: "r", At: t0.Add(3 * time.Second)}},
		"done":  {created(7, t0), order.Paid{At: t0}, order.Shipped{At: t0}, order.Delivered{At: t0.Add(4 * time.Second)}},
	} {
		for _, pe := range journal(t, j, id, t0, evs...) {
			data, _ := proto.Marshal(pe)
			batch = append(batch, transport.Message{OrderID: id, Version: pe.GetVersion(), Type: "e", Payload: data})
		}
	}
	live := readmodel.New(j)
	c := fastConsumer(live, nil)
	if err := c.Handle(context.Background(), batch); err != nil || c.DeadLettered() != 0 {
		t.Fatalf("handle: %v, %d dead-lettered: %+v", err, c.DeadLettered(), c.DeadLetters())
	}
	rebuilt := readmodel.New(j)
	if _, err := rebuilt.Rebuild(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"three", "one", "done"} {
		a, okA := live.Get(id)
		b, okB := rebuilt.Get(id)
		if !okA || !okB || a != b {
			t.Fatalf("%s: consumer %+v (%v), rebuild %+v (%v)", id, a, okA, b, okB)
		}
	}
	if s, _ := live.Get("three"); s.Items != 3 || s.Status != order.StatusShipped || s.Total != 26 {
		t.Fatalf("three: %+v", s)
	}
	if !reflect.DeepEqual(live.Stats(), rebuilt.Stats()) {
		t.Fatalf("stats: consumer %+v, rebuild %+v", live.Stats(), rebuilt.Stats())
	}
}
