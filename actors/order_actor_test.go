package actors_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// journalProbe wraps a journal to count loads and inject failures.
type journalProbe struct {
	actors.Journal
	loads     atomic.Int64
	failNext  atomic.Int32 // fail the next N calls with ErrUnavailable
	ambiguous atomic.Bool  // append succeeds but reports a timeout
	panicNext atomic.Bool  // the next append panics
}

func (j *journalProbe) Load(ctx context.Context, id string, from uint64) ([]persistence.Record, error) {
	j.loads.Add(1)
	if j.failNext.Load() > 0 {
		j.failNext.Add(-1)
		return nil, persistence.Unavailable("load", errors.New("injected"))
	}
	return j.Journal.Load(ctx, id, from)
}

func (j *journalProbe) Append(ctx context.Context, id string, exp uint64, rs []persistence.Record) (uint64, error) {
	if j.failNext.Load() > 0 {
		j.failNext.Add(-1)
		return 0, persistence.Unavailable("append", errors.New("injected"))
	}
	if j.panicNext.CompareAndSwap(true, false) {
		panic("injected panic")
	}
	v, err := j.Journal.Append(ctx, id, exp, rs)
	if err == nil && j.ambiguous.CompareAndSwap(true, false) {
		return 0, persistence.Unavailable("append", context.DeadlineExceeded)
	}
	return v, err
}

type fixture struct {
	t       *testing.T
	journal *memory.Backend
	probe   *journalProbe
	client  *actors.OrderClient
	appends atomic.Int64
}

func newFixture(t *testing.T, idle time.Duration) *fixture {
	return newFixtureWith(t, idle, nil)
}

// newFixtureWith lets tune change the configuration before the kind is made.
func newFixtureWith(t *testing.T, idle time.Duration, tune func(*actors.OrderConfig)) *fixture {
	t.Helper()
	f := &fixture{t: t, journal: memory.New()}
	f.probe = &journalProbe{Journal: f.journal}
	cfg := actors.OrderConfig{
		Journal: f.probe, NodeID: "test-node", IdleTimeout: idle,
		Appended: func(string) { f.appends.Add(1) },
	}
	if tune != nil {
		tune(&cfg)
	}
	kind := actors.NewOrderKind(cfg)
	n, err := cluster.Start(cluster.Config{NodeID: "test-node", Kinds: []*pcluster.Kind{kind}})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.Stop(false) })
	f.client = actors.NewOrderClient(n)
	return f
}

func (f *fixture) send(id string, msg proto.Message) *orderpb.Reply {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := ask(ctx, f.client, id, msg)
	if err != nil {
		f.t.Fatalf("send to %s: %v", id, err)
	}
	if r.GetOwner() != "test-node" {
		f.t.Fatalf("owner %q, want test-node", r.GetOwner())
	}
	return r
}

// ask sends a command, GetOrder or GetHistory through the client's
// matching method.
func ask(ctx context.Context, c *actors.OrderClient, id string, msg proto.Message) (*orderpb.Reply, error) {
	switch m := msg.(type) {
	case *orderpb.Command:
		return c.Command(ctx, id, m)
	case *orderpb.GetOrder:
		return c.Get(ctx, id)
	case *orderpb.GetHistory:
		return c.History(ctx, id)
	}
	return nil, fmt.Errorf("ask: no client method for %T", msg)
}

func createCmd(id string) *orderpb.Command {
	return &orderpb.Command{CommandId: id, Fingerprint: "fp-" + id, Command: &orderpb.Command_Create{Create: &orderpb.CreateOrder{
		CustomerId: "customer-123",
		Items: []*orderpb.Item{
			{ProductId: "prod-1", Name: "Laptop", Quantity: 1, UnitPriceCents: 99999},
			{ProductId: "prod-2", Name: "Mouse", Quantity: 2, UnitPriceCents: 2999},
		}}}}
}

func payCmd(id string) *orderpb.Command {
	return &orderpb.Command{CommandId: id, Fingerprint: "fp-" + id, Command: &orderpb.Command_Pay{Pay: &orderpb.PayOrder{PaymentMethod: "card"}}}
}

func shipCmd(id string) *orderpb.Command {
	return &orderpb.Command{CommandId: id, Fingerprint: "fp-" + id, Command: &orderpb.Command_Ship{Ship: &orderpb.ShipOrder{TrackingNumber: "T-1"}}}
}

func wantCode(t *testing.T, r *orderpb.Reply, code orderpb.ErrorCode) {
	t.Helper()
	if r.GetError().GetCode() != code {
		t.Fatalf("reply error %v, want %v", r.GetError(), code)
	}
}

func (f *fixture) stream(id string) []persistence.Record {
	f.t.Helper()
	rs, err := f.journal.Load(context.Background(), id, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return rs
}

func TestOrderActorLifecycle(t *testing.T) {
	f := newFixture(t, time.Minute)
	r := f.send("o1", createCmd("c1"))
	if r.GetError() != nil {
		t.Fatalf("create: %v", r.GetError())
	}
	o := r.GetOrder()
	if o.GetTotalCents() != 105997 || o.GetVersion() != 1 || o.GetStatus() != orderpb.OrderStatus_ORDER_STATUS_PENDING || o.GetOrderId() != "o1" ||
		o.GetCustomerId() != "customer-123" || !o.GetCreatedAt().IsValid() || o.GetCreatedAt().AsTime().IsZero() {
		t.Fatalf("created order %v", o)
	}
	// A create answers what POST /orders shows, not the items it was sent;
	// a read has them.
	if len(o.GetItems()) != 0 {
		t.Fatalf("the create's reply carries %d items, want none", len(o.GetItems()))
	}
	if got := f.send("o1", &orderpb.GetOrder{}).GetOrder(); len(got.GetItems()) != 2 || got.GetItems()[1].GetName() != "Mouse" || !got.GetCreatedAt().AsTime().Equal(o.GetCreatedAt().AsTime()) {
		t.Fatalf("read after the create: %v", got)
	}
	for i, cmd := range []*orderpb.Command{payCmd("c2"), shipCmd("c3"),
		{CommandId: "c4", Command: &orderpb.Command_Deliver{Deliver: &orderpb.DeliverOrder{}}}} {
		r := f.send("o1", cmd)
		if r.GetError() != nil || r.GetOrder().GetVersion() != uint64(i+2) {
			t.Fatalf("command %d: %v", i, r)
		}
	}
	wantCode(t, f.send("o1", &orderpb.Command{CommandId: "c5", Command: &orderpb.Command_Cancel{Cancel: &orderpb.CancelOrder{}}}), orderpb.ErrorCode_ERROR_CODE_CONFLICT)
	wantCode(t, f.send("o1", createCmd("c6")), orderpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS)

	h := f.send("o1", &orderpb.GetHistory{})
	if len(h.GetHistory()) != 4 {
		t.Fatalf("history has %d events, want 4", len(h.GetHistory()))
	}
	for i, e := range h.GetHistory() {
		if e.GetVersion() != uint64(i+1) || e.GetOrderId() != "o1" {
			t.Fatalf("history event %d: %v", i, e)
		}
	}
	if got := f.send("o1", &orderpb.GetOrder{}).GetOrder().GetStatus(); got != orderpb.OrderStatus_ORDER_STATUS_DELIVERED {
		t.Fatalf("status %v", got)
	}
	if n := f.appends.Load(); n != 4 {
		t.Fatalf("appended callback ran %d times, want 4", n)
	}
}

func TestOrderActorUnknownOrder(t *testing.T) {
	f := newFixture(t, time.Minute)
	wantCode(t, f.send("ghost", &orderpb.GetOrder{}), orderpb.ErrorCode_ERROR_CODE_NOT_FOUND)
	wantCode(t, f.send("ghost", &orderpb.GetHistory{}), orderpb.ErrorCode_ERROR_CODE_NOT_FOUND)
	wantCode(t, f.send("ghost", payCmd("p")), orderpb.ErrorCode_ERROR_CODE_NOT_FOUND)
	wantCode(t, f.send("ghost", &orderpb.Command{CommandId: "x"}), orderpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	bad := createCmd("bad")
	bad.GetCreate().Items[0].Quantity = 0
	r := f.send("ghost", bad)
	wantCode(t, r, orderpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	if r.GetError().GetField() != "items[0].quantity" {
		t.Fatalf("field %q", r.GetError().GetField())
	}
	if len(f.stream("ghost")) != 0 {
		t.Fatal("refused commands wrote events")
	}
}

func TestOrderActorIdempotentCommands(t *testing.T) {
	f := newFixture(t, time.Minute)
	first := f.send("o2", createCmd("create-1"))
	again := f.send("o2", createCmd("create-1"))
	if !again.GetReplayed() || !proto.Equal(first.GetOrder(), again.GetOrder()) {
		t.Fatalf("retried create: replayed=%v order=%v, want the first answer", again.GetReplayed(), again.GetOrder())
	}
	paid := f.send("o2", payCmd("pay-1"))
	f.send("o2", shipCmd("ship-1"))
	// A retry of the pay after the ship answers what the pay answered.
	retry := f.send("o2", payCmd("pay-1"))
	if !retry.GetReplayed() || !proto.Equal(retry.GetOrder(), paid.GetOrder()) {
		t.Fatalf("retried pay: %v, want %v", retry.GetOrder(), paid.GetOrder())
	}
	// The same key for a different request is refused.
	other := payCmd("pay-1")
	other.Fingerprint = "something else"
	wantCode(t, f.send("o2", other), orderpb.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH)
	if n := len(f.stream("o2")); n != 3 {
		t.Fatalf("journal has %d events, want 3", n)
	}
}

func TestOrderActorPassivatesAndReactivatesFromJournal(t *testing.T) {
	f := newFixture(t, 100*time.Millisecond)
	f.send("o3", createCmd("c1"))
	f.send("o3", payCmd("c2"))
	loads := f.probe.loads.Load()
	// Wait for passivation: a later request must load the stream again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(150 * time.Millisecond)
		r := f.send("o3", &orderpb.GetOrder{})
		if r.GetOrder().GetStatus() != orderpb.OrderStatus_ORDER_STATUS_PAID || r.GetOrder().GetVersion() != 2 {
			t.Fatalf("after re-activation: %v", r)
		}
		if f.probe.loads.Load() > loads {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("actor never passivated")
		}
	}
	// Command ids survive re-activation: they are in the journal.
	if r := f.send("o3", payCmd("c2")); !r.GetReplayed() {
		t.Fatalf("retried pay after re-activation was not recognised: %v", r)
	}
	if n := len(f.stream("o3")); n != 2 {
		t.Fatalf("journal has %d events, want 2", n)
	}
}

func TestOrderActorRedecidesOnVersionConflict(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.send("o4", createCmd("c1"))
	// Another activation (elsewhere) pays the order behind this actor's back.
	ev := codec.EventToProto("o4", 2, "elsewhere", "fp", order.Paid{PaymentMethod: "cash", At: time.Now()})
	data, _ := proto.Marshal(ev)
	if _, err := f.journal.Append(context.Background(), "o4", 1, []persistence.Record{{Type: "OrderPaid", Data: data}}); err != nil {
		t.Fatal(err)
	}
	// This actor still thinks the order is Pending: its pay conflicts, it
	// reads the stream and decides again, and now the pay is refused.
	wantCode(t, f.send("o4", payCmd("c2")), orderpb.ErrorCode_ERROR_CODE_CONFLICT)
	// A ship is decided on the caught-up state and succeeds at version 3.
	r := f.send("o4", shipCmd("c3"))
	if r.GetError() != nil || r.GetOrder().GetVersion() != 3 || r.GetOrder().GetPaymentMethod() != "cash" {
		t.Fatalf("ship after conflict: %v", r)
	}
	// A retry of the other writer's command is recognised here too.
	if r := f.send("o4", &orderpb.Command{CommandId: "elsewhere", Fingerprint: "fp", Command: &orderpb.Command_Pay{Pay: &orderpb.PayOrder{}}}); !r.GetReplayed() {
		t.Fatalf("command journaled by another activation not recognised: %v", r)
	}
	rs := f.stream("o4")
	if len(rs) != 3 {
		t.Fatalf("journal has %d events, want 3", len(rs))
	}
}

func TestOrderActorStorageFailures(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.send("o5", createCmd("c1"))
	f.probe.failNext.Store(1)
	wantCode(t, f.send("o5", payCmd("c2")), orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE)
	// The journal is back: the same command now succeeds, once.
	if r := f.send("o5", payCmd("c2")); r.GetError() != nil || r.GetOrder().GetVersion() != 2 {
		t.Fatalf("pay after recovery: %v", r)
	}
	// A write whose answer is lost: the client sees 503, the retry with the
	// same id finds the event and does not apply it twice.
	f.probe.ambiguous.Store(true)
	wantCode(t, f.send("o5", shipCmd("c3")), orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE)
	r := f.send("o5", shipCmd("c3"))
	if !r.GetReplayed() || r.GetOrder().GetVersion() != 3 {
		t.Fatalf("retry of an ambiguous ship: %v", r)
	}
	if n := len(f.stream("o5")); n != 3 {
		t.Fatalf("journal has %d events, want 3", n)
	}
}

func TestOrderActorConcurrentPaysApplyOnce(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.send("o6", createCmd("c1"))
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.send("o6", payCmd("pay-"+string(rune('A'+i))))
			switch r.GetError().GetCode() {
			case orderpb.ErrorCode_ERROR_CODE_UNSPECIFIED:
				ok.Add(1)
			case orderpb.ErrorCode_ERROR_CODE_CONFLICT:
				conflict.Add(1)
			default:
				t.Errorf("unexpected reply %v", r)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != 49 {
		t.Fatalf("%d pays succeeded and %d conflicted, want 1 and 49", ok.Load(), conflict.Load())
	}
	if n := len(f.stream("o6")); n != 2 {
		t.Fatalf("journal has %d events, want 2", n)
	}
}

func TestOrderActorPanicStopsAndReactivates(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.send("o7", createCmd("c1"))
	f.probe.panicNext.Store(true)
	wantCode(t, f.send("o7", payCmd("c2")), orderpb.ErrorCode_ERROR_CODE_INTERNAL)
	// The actor stopped; the next request re-activates it from the journal
	// and the command goes through once.
	r := f.send("o7", payCmd("c2"))
	if r.GetError() != nil || r.GetOrder().GetVersion() != 2 {
		t.Fatalf("pay after a panic: %v", r)
	}
	if n := len(f.stream("o7")); n != 2 {
		t.Fatalf("journal has %d events, want 2", n)
	}
}

// A read reads the stream's tail first (another activation may have
// written), unless the node is the journal's only writer.
func TestOrderActorReadsTailUnlessSoleWriter(t *testing.T) {
	for _, sole := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared", true: "sole"}[sole], func(t *testing.T) { testReadsTail(t, sole) })
	}
}

func testReadsTail(t *testing.T, sole bool) {
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) { c.SoleWriter = sole })
	if r := f.send("o1", createCmd("c1")); r.GetError() != nil {
		t.Fatalf("create: %v", r.GetError())
	}
	before := f.probe.loads.Load()
	for range 5 {
		if r := f.send("o1", &orderpb.GetOrder{}); r.GetOrder().GetVersion() != 1 {
			t.Fatalf("sole=%v: get %v", sole, r)
		}
	}
	deliver := &orderpb.Command{CommandId: "c2", Command: &orderpb.Command_Deliver{Deliver: &orderpb.DeliverOrder{}}}
	wantCode(t, f.send("o1", deliver), orderpb.ErrorCode_ERROR_CODE_CONFLICT)
	loads := f.probe.loads.Load() - before
	switch {
	case sole && loads != 0:
		t.Fatalf("sole writer: %d journal loads for reads and a refusal, want 0", loads)
	case !sole && loads < 6:
		t.Fatalf("shared journal: %d journal loads for 5 reads and a refusal, want 6", loads)
	}
}

// An actor remembers the last RememberCommands command ids, oldest out first.
func TestOrderActorForgetsOldestCommandIDs(t *testing.T) {
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) { c.RememberCommands = 2 })
	for _, cmd := range []*orderpb.Command{createCmd("c1"), payCmd("c2"), shipCmd("c3")} {
		if r := f.send("o1", cmd); r.GetError() != nil {
			t.Fatalf("%s: %v", cmd.GetCommandId(), r.GetError())
		}
	}
	for _, cmd := range []*orderpb.Command{shipCmd("c3"), payCmd("c2")} {
		if r := f.send("o1", cmd); r.GetError() != nil || !r.GetReplayed() {
			t.Fatalf("retry of %s: %v, replayed=%v; want a replay", cmd.GetCommandId(), r.GetError(), r.GetReplayed())
		}
	}
	// c1 was forgotten: its retry is decided again, and an order exists.
	wantCode(t, f.send("o1", createCmd("c1")), orderpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS)
	if n := len(f.stream("o1")); n != 3 {
		t.Fatalf("%d events journaled, want 3", n)
	}
}

// TestOrderActorQuarantinesAnUnreadableStream: an order whose journal
// stream holds a record that cannot be read answers every command and read
// with QUARANTINED, naming the order and the version, and reports it; it
// is not a storage failure, and other orders are served.
func TestOrderActorQuarantinesAnUnreadableStream(t *testing.T) {
	var mu sync.Mutex
	var reported []*codec.CorruptError
	storageFailed := atomic.Int64{}
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) {
		c.Quarantined = func(id string, err *codec.CorruptError) {
			mu.Lock()
			defer mu.Unlock()
			if id != err.OrderID {
				t.Errorf("reported %s for %s", err.OrderID, id)
			}
			reported = append(reported, err)
		}
		c.StorageFailed = func(error) { storageFailed.Add(1) }
	})
	ctx := context.Background()
	// "live" is loaded when its tail goes bad; "cold" is activated after.
	for _, id := range []string{"live", "healthy"} {
		if r := f.send(id, createCmd("c-"+id)); r.GetError() != nil {
			t.Fatalf("create %s: %v", id, r.GetError())
		}
	}
	if _, err := f.journal.Append(ctx, "live", 1, []persistence.Record{{Type: "OrderPaid", Data: []byte("garbage")}}); err != nil {
		t.Fatal(err)
	}
	good, _ := proto.Marshal(codec.EventToProto("cold", 1, "c", "f", order.Created{CustomerID: "c", Total: 1, At: time.Now()}))
	skipped, _ := proto.Marshal(codec.EventToProto("cold", 3, "c", "f", order.Paid{At: time.Now()}))
	if _, err := f.journal.Append(ctx, "cold", 0, []persistence.Record{{Type: "OrderCreated", Data: good}, {Type: "OrderPaid", Data: skipped}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id      string
		version string
	}{{"live", "version 2"}, {"cold", "version 2"}} {
		for _, msg := range []proto.Message{&orderpb.GetOrder{}, &orderpb.GetHistory{}, payCmd("p-" + c.id), createCmd("c-" + c.id)} {
			r := f.send(c.id, msg)
			wantCode(t, r, orderpb.ErrorCode_ERROR_CODE_QUARANTINED)
			if m := r.GetError().GetMessage(); !strings.Contains(m, "order "+c.id+" ") || !strings.Contains(m, c.version) || r.GetStale() {
				t.Fatalf("%s %T: %q (stale %v)", c.id, msg, m, r.GetStale())
			}
		}
	}
	if r := f.send("healthy", payCmd("p-healthy")); r.GetError() != nil {
		t.Fatalf("another order: %v", r.GetError())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) < 2 || reported[0].OrderID != "live" || reported[0].Version != 2 {
		t.Fatalf("reported %v", reported)
	}
	if n := storageFailed.Load(); n != 0 {
		t.Fatalf("a quarantine was reported as %d storage failures", n)
	}
	if got := f.stream("live"); len(got) != 2 {
		t.Fatalf("the quarantined order was written to: %d records", len(got))
	}
}

// TestOrderActorNeverDatesAnEventBeforeTheOneItFollows runs the actor on a
// member whose clock is an hour behind the one that journaled the order:
// its events take the previous event's time until its clock passes it.
func TestOrderActorNeverDatesAnEventBeforeTheOneItFollows(t *testing.T) {
	ahead := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(ahead.Add(-time.Hour).UnixNano())
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	// The member ahead creates the order.
	ev := codec.EventToProto("skew", 1, "elsewhere", "fp", order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 100}}, Total: 100, At: ahead})
	data, _ := proto.Marshal(ev)
	if _, err := f.journal.Append(context.Background(), "skew", 0, []persistence.Record{{Type: "OrderCreated", Data: data}}); err != nil {
		t.Fatal(err)
	}
	r := f.send("skew", payCmd("c1"))
	if r.GetError() != nil || !r.GetOrder().GetPaidAt().AsTime().Equal(ahead) {
		t.Fatalf("pay an hour behind the create: paid at %v, want %v (%v)", r.GetOrder().GetPaidAt().AsTime(), ahead, r.GetError())
	}
	// Once this member's clock passes the last event, it dates by its clock.
	later := ahead.Add(time.Minute)
	clock.Store(later.UnixNano())
	if r := f.send("skew", shipCmd("c2")); r.GetError() != nil || !r.GetOrder().GetShippedAt().AsTime().Equal(later) {
		t.Fatalf("ship after the clock caught up: shipped at %v, want %v (%v)", r.GetOrder().GetShippedAt().AsTime(), later, r.GetError())
	}
	// The history, as journaled, never goes back in time.
	h := f.send("skew", &orderpb.GetHistory{}).GetHistory()
	if len(h) != 3 {
		t.Fatalf("history has %d events, want 3", len(h))
	}
	var last time.Time
	for _, e := range h {
		ev, err := codec.EventFromProto(e)
		if err != nil {
			t.Fatal(err)
		}
		at := order.EventTime(ev)
		if at.Before(last) {
			t.Fatalf("event %d (%s) dated %v, before the previous event's %v", e.GetVersion(), ev.EventType(), at, last)
		}
		last = at
	}
}

// On the journal's only writer each actor publishes its committed state
// before it answers: a read through Published right after an acknowledged
// write sees it; a write whose outcome is unknown withdraws the state (the
// write may have landed) until the actor read its stream again; a
// passivated actor withdraws it.
func TestOrderActorPublishesCommittedState(t *testing.T) {
	pub := actors.NewPublished()
	f := newFixtureWith(t, 300*time.Millisecond, func(c *actors.OrderConfig) {
		c.SoleWriter, c.Published = true, pub
	})
	version := func(id string) uint64 {
		t.Helper()
		s, ok := pub.Get(id)
		if !ok {
			return 0
		}
		if s.ID != id {
			t.Fatalf("published state of %s names %s", id, s.ID)
		}
		return s.Version
	}
	f.send("p1", createCmd("c1"))
	if v := version("p1"); v != 1 {
		t.Fatalf("after the create: published version %d, want 1", v)
	}
	f.send("p1", payCmd("c2"))
	if s, _ := pub.Get("p1"); s.Version != 2 || s.Status != order.StatusPaid {
		t.Fatalf("after the pay: published %+v, want version 2, paid", s)
	}
	f.probe.ambiguous.Store(true)
	wantCode(t, f.send("p1", shipCmd("c3")), orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE)
	if v := version("p1"); v != 0 {
		t.Fatalf("after a write with an unknown outcome: published version %d, want none", v)
	}
	if r := f.send("p1", &orderpb.GetOrder{}); r.GetOrder().GetVersion() != 3 {
		t.Fatalf("read after the unknown write: %v, want version 3 (it landed)", r)
	}
	if v := version("p1"); v != 3 {
		t.Fatalf("after the actor read its stream again: published version %d, want 3", v)
	}
	f.send("nope", &orderpb.GetOrder{})
	if _, ok := pub.Get("nope"); ok {
		t.Fatal("an order that does not exist was published")
	}
	poll.Eventually(t, 5*time.Second, func() error {
		if n := pub.Len(); n != 0 {
			return fmt.Errorf("%d states still published after the idle timeout", n)
		}
		return nil
	})
}

// A state the actor published is never changed afterwards (the actor
// changes a copy): readers copy it without the actor, so a change in place
// would be a data race (the race detector reports it) and could show a torn
// state. Readers poll each order while it is paid and shipped; every state
// they see must be one the order had.
func TestOrderActorPublishedStateNeverChanges(t *testing.T) {
	pub := actors.NewPublished()
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) {
		c.SoleWriter, c.Published = true, pub
	})
	want := map[uint64]order.Status{1: order.StatusPending, 2: order.StatusPaid, 3: order.StatusShipped}
	var (
		current atomic.Value
		done    = make(chan struct{})
		wg      sync.WaitGroup
		bad     atomic.Value
		reads   atomic.Int64
	)
	current.Store("")
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				id := current.Load().(string)
				if id == "" {
					continue
				}
				s, ok := pub.Get(id)
				if !ok {
					continue
				}
				reads.Add(1)
				if s.ID != id || want[s.Version] != s.Status || (s.Version >= 2) != (s.PaymentMethod == "card") || (s.Version >= 3) != (s.TrackingNumber == "T-1") {
					bad.Store(fmt.Sprintf("%s: read %+v", id, s))
				}
			}
		}()
	}
	// The writer goes on only once the readers read again, so that they
	// read every order while it changes (without this, the commands could
	// all be done before a reader first ran).
	readAgain := func() {
		t.Helper()
		n, deadline := reads.Load(), time.Now().Add(5*time.Second)
		for reads.Load() == n {
			if time.Now().After(deadline) {
				t.Fatal("the readers stopped reading")
			}
			time.Sleep(10 * time.Microsecond)
		}
	}
	for i := range 50 {
		id := fmt.Sprintf("ro-%d", i)
		f.send(id, createCmd(id+"-c"))
		current.Store(id)
		readAgain()
		f.send(id, payCmd(id+"-p"))
		readAgain()
		f.send(id, shipCmd(id+"-s"))
		readAgain()
	}
	close(done)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatalf("a published state changed under a reader: %v", b)
	}
	if reads.Load() == 0 {
		t.Fatal("the readers read nothing")
	}
}

// While memory is crowded an actor passivates CrowdedLinger after its last
// message instead of the idle timeout; an actor whose last message came
// before stays for the idle timeout, until its next message.
func TestOrderActorPassivatesSoonWhenCrowded(t *testing.T) {
	pub := actors.NewPublished()
	var crowded atomic.Bool
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) {
		c.SoleWriter, c.Published = true, pub
		c.Crowded, c.CrowdedLinger = crowded.Load, 200*time.Millisecond
	})
	active := func(id string) bool { _, ok := pub.Get(id); return ok }
	f.send("calm", createCmd("c1"))
	crowded.Store(true)
	f.send("busy", createCmd("c2"))
	poll.Eventually(t, 5*time.Second, func() error {
		if active("busy") {
			return errors.New("the order created while crowded is still active")
		}
		return nil
	})
	if !active("calm") {
		t.Fatal("the order created before memory was crowded passivated early")
	}
	f.send("calm", payCmd("c3"))
	poll.Eventually(t, 5*time.Second, func() error {
		if active("calm") {
			return errors.New("the order paid while crowded is still active")
		}
		return nil
	})
	crowded.Store(false)
	f.send("calm", shipCmd("c4"))
	time.Sleep(600 * time.Millisecond)
	if !active("calm") {
		t.Fatal("once memory was no longer crowded, the order passivated before the idle timeout")
	}
	if r := f.send("busy", &orderpb.GetOrder{}); r.GetOrder().GetVersion() != 1 {
		t.Fatalf("the passivated order read back as %v, want version 1", r)
	}
}

// Without SoleWriter (Redis, NATS: another activation may have written)
// nothing is published: every read goes to the actor.
func TestOrderActorPublishesNothingWithoutSoleWriter(t *testing.T) {
	other := actors.NewPublished()
	g := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) { c.Published = other })
	g.send("q1", createCmd("c1"))
	if n := other.Len(); n != 0 {
		t.Fatalf("%d states published without SoleWriter, want none", n)
	}
}
