package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/transport"
)

// Features describes what a backend may do differently; the zero value is the
// strictest contract.
type Features struct {
	// DuplicatePublishDelivered is set when publishing the same event id
	// twice makes consumers receive it twice (memory, Redis). When false
	// (NATS, whose stream drops a repeated Nats-Msg-Id inside its duplicate
	// window) the suite requires exactly one delivery. Either way a consumer
	// never sees one id more than twice for two publishes.
	DuplicatePublishDelivered bool
	// RedeliversAfterResume is set when a durable group may receive again
	// messages it had acknowledged before its subscription was closed
	// cleanly and reopened. When false the suite requires none.
	RedeliversAfterResume bool
	// LargeBatch is the size of the one-publish large-batch case (default 5,000).
	LargeBatch int
	// Wait bounds every wait for deliveries (default 15 s). A working
	// backend finishes each case far sooner; the bound only turns a hang
	// into a failure.
	Wait time.Duration
}

// Factory returns a transport on a stream no other test uses (a unique Redis
// key, a unique JetStream stream and subject prefix, a new bus). The suite
// closes it; the factory registers any cleanup of server state with t.Cleanup.
type Factory func(t *testing.T) transport.Transport

// Run runs every contract case against transports made by newTransport.
func Run(t *testing.T, newTransport Factory, f Features) {
	if f.LargeBatch == 0 {
		f.LargeBatch = 5_000
	}
	if f.Wait == 0 {
		f.Wait = 15 * time.Second
	}
	cases := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"PingAndName", testPingAndName},
		{"PublishSubscribeRoundTrip", testRoundTrip},
		{"EphemeralGetsOnlyLaterMessages", testEphemeralStartsAtEnd},
		{"PerOrderOrder", testPerOrderOrder},
		{"DurableGroupResumes", testDurableResume},
		{"GroupMembersShareWork", testGroupMembersShare},
		{"HandlerErrorRedelivers", testHandlerErrorRedelivers},
		{"GroupsAreIndependent", testGroupsIndependent},
		{"DuplicatePublish", testDuplicatePublish},
		{"SubscriptionCloseStopsDelivery", testSubscriptionClose},
		{"TransportCloseStopsEverything", testTransportClose},
		{"LargeBatch", testLargeBatch},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"InvalidArguments", testInvalidArguments},
		{"CanceledContext", testCanceledContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTransport(t)
			t.Cleanup(func() {
				if err := tr.Close(); err != nil {
					t.Errorf("close transport: %v", err)
				}
			})
			c.fn(t, &suite{Features: f, tr: tr})
		})
	}
}

// suite carries what every case needs.
type suite struct {
	Features
	tr transport.Transport
}

// EventTypes are the order event types the suite publishes.
var EventTypes = []string{"OrderCreated", "OrderPaid", "OrderShipped", "OrderDelivered", "OrderCancelled"}

// Msg returns a deterministic message for order at version v: a type that
// cycles through EventTypes and a payload with bytes that text encodings
// mangle (NUL, 0xff, newline, invalid UTF-8).
func Msg(order string, v uint64) transport.Message {
	p := fmt.Appendf(nil, "%s|%d|", order, v)
	p = append(p, 0, 0xff, '\n', 0x80, '\r', 0)
	return transport.Message{OrderID: order, Version: v, Type: EventTypes[(v-1)%uint64(len(EventTypes))], Payload: p}
}

// Interleaved returns versions 1..versions of orders "<prefix>-<i>",
// interleaved: version 1 of every order, then version 2, and so on.
func Interleaved(prefix string, orders, versions int) []transport.Message {
	out := make([]transport.Message, 0, orders*versions)
	for v := 1; v <= versions; v++ {
		for o := range orders {
			out = append(out, Msg(fmt.Sprintf("%s-%d", prefix, o), uint64(v)))
		}
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// publish publishes msgs in sequential Publish calls of at most chunk messages.
func publish(t *testing.T, tr transport.Transport, msgs []transport.Message, chunk int) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := tr.Publish(ctxT(t), msgs[:n]); err != nil {
			t.Fatalf("publish %d messages (first %s): %v", n, msgs[0].ID(), err)
		}
		msgs = msgs[n:]
	}
}

func ids(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID()
	}
	return out
}

// Recorder is a handler that records what it receives. Its zero value is not
// usable; call NewRecorder.
type Recorder struct {
	// Fail, when set, decides the handler's result for the n-th call (1-based).
	Fail func(call int, batch []transport.Message) error
	// Delay is spent in every call (to make a handler slow).
	Delay time.Duration

	t        testing.TB
	inFlight atomic.Int32

	mu        sync.Mutex
	calls     int
	accepted  []transport.Message // messages of accepted batches, in order
	acks      map[string]int      // id -> times accepted
	offers    map[string]int      // id -> times delivered (accepted or not)
	lastBatch time.Time
}

// NewRecorder returns an empty recorder that reports misuse to t.
func NewRecorder(t testing.TB) *Recorder {
	return &Recorder{t: t, acks: map[string]int{}, offers: map[string]int{}}
}

// Handle is the transport.Handler.
func (r *Recorder) Handle(ctx context.Context, batch []transport.Message) error {
	if r.inFlight.Add(1) > 1 {
		r.t.Errorf("handler called concurrently with itself")
	}
	defer r.inFlight.Add(-1)
	if len(batch) == 0 {
		r.t.Errorf("handler called with an empty batch")
	}
	if r.Delay > 0 {
		time.Sleep(r.Delay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.lastBatch = time.Now()
	for _, m := range batch {
		r.offers[m.ID()]++
	}
	if r.Fail != nil {
		if err := r.Fail(r.calls, batch); err != nil {
			return err
		}
	}
	for _, m := range batch {
		m.Payload = bytes.Clone(m.Payload)
		r.accepted = append(r.accepted, m)
		r.acks[m.ID()]++
	}
	return nil
}

// Accepted returns the messages of every accepted batch, in delivery order.
func (r *Recorder) Accepted() []transport.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted)
}

// Acks returns how many times id was in an accepted batch.
func (r *Recorder) Acks(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[id]
}

// Offers returns how many times id was delivered, accepted or not.
func (r *Recorder) Offers(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.offers[id]
}

// Calls returns how many times the handler was called.
func (r *Recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// Total returns how many messages were accepted, duplicates included.
func (r *Recorder) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// missing returns the ids among want that were never accepted.
func (r *Recorder) missing(want []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range want {
		if r.acks[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// WaitFor polls until every id in want was accepted at least once, failing
// the test after d.
func (r *Recorder) WaitFor(t testing.TB, what string, want []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		miss := r.missing(want)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages not received after %v (first missing %s; received %d in %d calls)",
				what, len(miss), len(want), d, miss[0], r.Total(), r.Calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForAny polls until every id in want was accepted by at least one of rs.
func waitForAny(t *testing.T, what string, want []string, d time.Duration, rs ...*Recorder) {
	t.Helper()
	poll.Eventually(t, d, func() error {
		miss := want
		for _, r := range rs {
			miss = r.missing(miss)
		}
		if len(miss) > 0 {
			return fmt.Errorf("%s: %d of %d messages not received by any member (first missing %s)", what, len(miss), len(want), miss[0])
		}
		return nil
	})
}

func subscribe(t *testing.T, tr transport.Transport, group string, h transport.Handler) transport.Subscription {
	t.Helper()
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: group}, h)
	if err != nil {
		t.Fatalf("subscribe (group %q): %v", group, err)
	}
	t.Cleanup(func() {
		if err := sub.Close(); err != nil {
			t.Errorf("close subscription (group %q): %v", group, err)
		}
	})
	return sub
}

// checkExactlyOnce fails unless every id in want was accepted exactly once.
func checkExactlyOnce(t *testing.T, what string, r *Recorder, want []string) {
	t.Helper()
	for _, id := range want {
		if n := r.Acks(id); n != 1 {
			t.Fatalf("%s: %s accepted %d times, want exactly once", what, id, n)
		}
	}
}

// checkPerOrder fails unless, for every order, the versions accepted arrive
// in ascending order (after dropping repeats of versions already seen).
func checkPerOrder(t *testing.T, what string, got []transport.Message) {
	t.Helper()
	last := map[string]uint64{}
	seen := map[string]bool{}
	for i, m := range got {
		if seen[m.ID()] {
			continue
		}
		seen[m.ID()] = true
		if m.Version <= last[m.OrderID] {
			t.Fatalf("%s: delivery %d is %s after version %d of the same order: per-order order broken",
				what, i, m.ID(), last[m.OrderID])
		}
		last[m.OrderID] = m.Version
	}
}

// checkContent fails unless every accepted message equals the published one
// with the same id, field by field and payload byte for byte.
func checkContent(t *testing.T, what string, got, published []transport.Message) {
	t.Helper()
	want := make(map[string]transport.Message, len(published))
	for _, m := range published {
		want[m.ID()] = m
	}
	for _, m := range got {
		w, ok := want[m.ID()]
		if !ok {
			t.Fatalf("%s: received %s, which was not published here", what, m.ID())
		}
		if m.OrderID != w.OrderID || m.Version != w.Version || m.Type != w.Type {
			t.Fatalf("%s: received %s/%d/%s, published %s/%d/%s", what, m.OrderID, m.Version, m.Type, w.OrderID, w.Version, w.Type)
		}
		if !bytes.Equal(m.Payload, w.Payload) {
			t.Fatalf("%s: %s payload %q, published %q", what, m.ID(), m.Payload, w.Payload)
		}
	}
}

func testPingAndName(t *testing.T, s *suite) {
	if err := s.tr.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if n := s.tr.Name(); !slices.Contains([]string{"inmemory", "redis", "nats"}, n) {
		t.Fatalf("name %q, want inmemory, redis or nats", n)
	}
}

func testRoundTrip(t *testing.T, s *suite) {
	r := NewRecorder(t)
	subscribe(t, s.tr, "", r.Handle)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	msgs := []transport.Message{
		Msg("rt-a", 1), Msg("rt-b", 1), Msg("rt-a", 2),
		{OrderID: "rt-bin", Version: 1, Type: "OrderCreated", Payload: all},
		{OrderID: "rt-empty", Version: 7, Type: "OrderCancelled", Payload: nil},
		{OrderID: "rt-uuid-0b6e4c1e-8f7a-4c43-9d0e-5b1f2c3d4e5f", Version: 1 << 40, Type: "OrderShipped", Payload: []byte("{}")},
	}
	for v := uint64(3); v <= 6; v++ {
		msgs = append(msgs, Msg("rt-a", v))
	}
	publish(t, s.tr, msgs, len(msgs))
	r.WaitFor(t, "ephemeral subscriber", ids(msgs), s.Wait)
	checkExactlyOnce(t, "ephemeral subscriber", r, ids(msgs))
	checkContent(t, "ephemeral subscriber", r.Accepted(), msgs)
	checkPerOrder(t, "ephemeral subscriber", r.Accepted())
}

func testEphemeralStartsAtEnd(t *testing.T, s *suite) {
	before := Interleaved("early", 3, 2)
	publish(t, s.tr, before, 10)
	r := NewRecorder(t)
	subscribe(t, s.tr, "", r.Handle)
	after := Interleaved("late", 3, 2)
	publish(t, s.tr, after, 10)
	r.WaitFor(t, "ephemeral subscriber", ids(after), s.Wait)
	// Messages are delivered in publish order, so had the earlier ones
	// been delivered they would have arrived by now.
	for _, id := range ids(before) {
		if n := r.Offers(id); n != 0 {
			t.Fatalf("%s was published before Subscribe but delivered %d times", id, n)
		}
	}
}

func testPerOrderOrder(t *testing.T, s *suite) {
	eph, grp := NewRecorder(t), NewRecorder(t)
	subscribe(t, s.tr, "", eph.Handle)
	subscribe(t, s.tr, "order", grp.Handle)
	msgs := Interleaved("po", 8, 40)
	publish(t, s.tr, msgs, 13)
	for _, c := range []struct {
		what string
		r    *Recorder
	}{{"ephemeral", eph}, {"group", grp}} {
		c.r.WaitFor(t, c.what, ids(msgs), s.Wait)
		checkExactlyOnce(t, c.what, c.r, ids(msgs))
		checkPerOrder(t, c.what, c.r.Accepted())
		checkContent(t, c.what, c.r.Accepted(), msgs)
	}
}

func testDurableResume(t *testing.T, s *suite) {
	first := NewRecorder(t)
	sub := subscribe(t, s.tr, "resume", first.Handle)
	b1 := Interleaved("res1", 5, 10)
	publish(t, s.tr, b1, 20)
	first.WaitFor(t, "group before close", ids(b1), s.Wait)
	if err := sub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Published while the group has no member: kept for it.
	b2 := Interleaved("res2", 5, 10)
	publish(t, s.tr, b2, 20)

	// A group that did not exist yet starts after its first Subscribe.
	late := NewRecorder(t)
	subscribe(t, s.tr, "late", late.Handle)

	second := NewRecorder(t)
	sub2 := subscribe(t, s.tr, "resume", second.Handle)
	second.WaitFor(t, "group after reopening", ids(b2), s.Wait)
	b3 := Interleaved("res3", 5, 10)
	publish(t, s.tr, b3, 20)
	second.WaitFor(t, "group after reopening", ids(b3), s.Wait)
	late.WaitFor(t, "new group", ids(b3), s.Wait)

	dups := 0
	for _, id := range ids(b1) {
		dups += second.Offers(id)
	}
	if dups > 0 {
		if !s.RedeliversAfterResume {
			t.Fatalf("%d acknowledged messages were delivered again after the group resumed", dups)
		}
		t.Logf("%d acknowledged messages were delivered again after the group resumed (allowed)", dups)
	}
	checkExactlyOnce(t, "resumed group", second, ids(b2))
	checkExactlyOnce(t, "resumed group", second, ids(b3))
	checkPerOrder(t, "resumed group", second.Accepted())
	checkContent(t, "resumed group", second.Accepted(), slices.Concat(b1, b2, b3))
	for _, id := range ids(slices.Concat(b1, b2)) {
		if n := late.Offers(id); n != 0 {
			t.Fatalf("new group got %s, published before it was created", id)
		}
	}
	checkExactlyOnce(t, "new group", late, ids(b3))

	// And once more: close, publish, reopen.
	if err := sub2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	b4 := Interleaved("res4", 2, 5)
	publish(t, s.tr, b4, 20)
	third := NewRecorder(t)
	subscribe(t, s.tr, "resume", third.Handle)
	third.WaitFor(t, "group reopened twice", ids(b4), s.Wait)
	checkExactlyOnce(t, "group reopened twice", third, ids(b4))
}

func testGroupMembersShare(t *testing.T, s *suite) {
	a, b := NewRecorder(t), NewRecorder(t)
	a.Delay, b.Delay = time.Millisecond, time.Millisecond
	subscribe(t, s.tr, "shared", a.Handle)
	subscribe(t, s.tr, "shared", b.Handle)
	msgs := Interleaved("share", 20, 50)
	publish(t, s.tr, msgs, 50)
	waitForAny(t, "group of two", ids(msgs), s.Wait, a, b)
	for _, id := range ids(msgs) {
		if n := a.Acks(id) + b.Acks(id); n != 1 {
			t.Fatalf("%s handled %d times by the group (%d by a, %d by b), want once", id, n, a.Acks(id), b.Acks(id))
		}
	}
	if a.Total() == 0 || b.Total() == 0 {
		t.Fatalf("one member did all the work: a handled %d, b %d", a.Total(), b.Total())
	}
	t.Logf("member a handled %d, member b %d", a.Total(), b.Total())
	checkContent(t, "member a", a.Accepted(), msgs)
	checkContent(t, "member b", b.Accepted(), msgs)
}

func testHandlerErrorRedelivers(t *testing.T, s *suite) {
	injected := errors.New("injected handler failure")
	var failed sync.Map // id -> true for messages of failed batches
	fail := func(call int, batch []transport.Message) error {
		if call <= 3 || call == 6 {
			for _, m := range batch {
				failed.Store(m.ID(), true)
			}
			return injected
		}
		return nil
	}
	grp, eph := NewRecorder(t), NewRecorder(t)
	grp.Fail, eph.Fail = fail, fail
	subscribe(t, s.tr, "flaky", grp.Handle)
	subscribe(t, s.tr, "", eph.Handle)
	msgs := Interleaved("err", 6, 20)
	publish(t, s.tr, msgs, 10)
	for _, c := range []struct {
		what string
		r    *Recorder
	}{{"group", grp}, {"ephemeral", eph}} {
		c.r.WaitFor(t, c.what+" with a failing handler", ids(msgs), s.Wait)
		dups := 0
		for _, id := range ids(msgs) {
			dups += c.r.Acks(id) - 1
		}
		if dups > 0 {
			t.Logf("%s: %d messages accepted more than once (at-least-once)", c.what, dups)
		}
		checkPerOrder(t, c.what+" with a failing handler", c.r.Accepted())
		checkContent(t, c.what, c.r.Accepted(), msgs)
		if c.r.Calls() < 4 {
			t.Fatalf("%s: handler called %d times; the three failures were not retried", c.what, c.r.Calls())
		}
	}
	n := 0
	failed.Range(func(k, _ any) bool {
		n++
		for _, r := range []*Recorder{grp, eph} {
			if r.Offers(k.(string)) > 0 && r.Acks(k.(string)) == 0 {
				t.Errorf("%s was in a failed batch and never accepted", k)
			}
		}
		return true
	})
	if n == 0 {
		t.Fatal("no batch failed; the case tested nothing")
	}
}

func testGroupsIndependent(t *testing.T, s *suite) {
	a, b, e := NewRecorder(t), NewRecorder(t), NewRecorder(t)
	subscribe(t, s.tr, "group-a", a.Handle)
	subscribe(t, s.tr, "group-b", b.Handle)
	subscribe(t, s.tr, "", e.Handle)
	msgs := Interleaved("ind", 4, 25)
	publish(t, s.tr, msgs, 20)
	for _, c := range []struct {
		what string
		r    *Recorder
	}{{"group a", a}, {"group b", b}, {"ephemeral", e}} {
		c.r.WaitFor(t, c.what, ids(msgs), s.Wait)
		checkExactlyOnce(t, c.what, c.r, ids(msgs))
		checkPerOrder(t, c.what, c.r.Accepted())
	}
}

func testDuplicatePublish(t *testing.T, s *suite) {
	grp, eph := NewRecorder(t), NewRecorder(t)
	subscribe(t, s.tr, "dedup", grp.Handle)
	subscribe(t, s.tr, "", eph.Handle)
	msgs := Interleaved("dup", 3, 3)
	publish(t, s.tr, msgs, len(msgs))
	publish(t, s.tr, msgs, len(msgs))
	publish(t, s.tr, msgs[:2], 2) // a third time for two of them
	marker := []transport.Message{Msg("dup-marker", 1)}
	publish(t, s.tr, marker, 1)
	for _, c := range []struct {
		what string
		r    *Recorder
	}{{"group", grp}, {"ephemeral", eph}} {
		// Everything published before the marker arrives before it.
		c.r.WaitFor(t, c.what, ids(append(msgs, marker...)), s.Wait)
		for i, id := range ids(msgs) {
			publishes := 2
			if i < 2 {
				publishes = 3
			}
			n := c.r.Acks(id)
			switch {
			case s.DuplicatePublishDelivered && (n < 1 || n > publishes):
				t.Fatalf("%s: %s published %d times, received %d times", c.what, id, publishes, n)
			case !s.DuplicatePublishDelivered && n != 1:
				t.Fatalf("%s: %s published %d times, received %d times; want the server to drop repeats", c.what, id, publishes, n)
			}
		}
		checkContent(t, c.what, c.r.Accepted(), append(msgs, marker...))
	}
}

func testSubscriptionClose(t *testing.T, s *suite) {
	victim, control := NewRecorder(t), NewRecorder(t)
	vs := subscribe(t, s.tr, "", victim.Handle)
	subscribe(t, s.tr, "", control.Handle)
	gv := NewRecorder(t)
	gs := subscribe(t, s.tr, "closing", gv.Handle)
	first := Interleaved("sc1", 2, 2)
	publish(t, s.tr, first, 10)
	victim.WaitFor(t, "victim", ids(first), s.Wait)
	gv.WaitFor(t, "group victim", ids(first), s.Wait)
	control.WaitFor(t, "control", ids(first), s.Wait)
	for _, sub := range []transport.Subscription{vs, gs} {
		if err := sub.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	}
	n, gn := victim.Calls(), gv.Calls()
	second := Interleaved("sc2", 2, 2)
	publish(t, s.tr, second, 10)
	control.WaitFor(t, "control", ids(second), s.Wait)
	if victim.Calls() != n || gv.Calls() != gn {
		t.Fatalf("closed subscriptions were called after Close: ephemeral %d -> %d, group %d -> %d",
			n, victim.Calls(), gn, gv.Calls())
	}

	// Close waits for a running handler call to return.
	var entered, returned atomic.Bool
	blocking := func(ctx context.Context, batch []transport.Message) error {
		entered.Store(true)
		<-ctx.Done()
		returned.Store(true)
		return ctx.Err()
	}
	bs := subscribe(t, s.tr, "blocking", blocking)
	publish(t, s.tr, []transport.Message{Msg("sc3", 1)}, 1)
	poll.Eventually(t, s.Wait, poll.True("the blocking handler to be called", entered.Load))
	done := make(chan error, 1)
	go func() { done <- bs.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close with a running handler: %v", err)
		}
	case <-time.After(s.Wait):
		t.Fatal("Close did not return: the handler's context was not canceled")
	}
	if !returned.Load() {
		t.Fatal("Close returned before the running handler call did")
	}
}

func testTransportClose(t *testing.T, s *suite) {
	var calls, late atomic.Int32
	var closed atomic.Bool
	failing := func(ctx context.Context, batch []transport.Message) error {
		if closed.Load() {
			late.Add(1)
		}
		calls.Add(1)
		return errors.New("always fails")
	}
	gsub := subscribe(t, s.tr, "doomed", failing)
	subscribe(t, s.tr, "", failing)
	publish(t, s.tr, Interleaved("tc", 2, 2), 10)
	poll.Eventually(t, s.Wait, poll.True("both failing handlers to be called again", func() bool { return calls.Load() >= 4 }))

	done := make(chan error, 1)
	go func() { done <- s.tr.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(s.Wait):
		t.Fatal("Close did not return")
	}
	closed.Store(true)
	if err := s.tr.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := gsub.Close(); err != nil {
		t.Fatalf("closing a subscription after its transport: %v", err)
	}
	ctx := ctxT(t)
	if err := s.tr.Publish(ctx, []transport.Message{Msg("tc-after", 1)}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if _, err := s.tr.Subscribe(ctx, transport.SubscribeOptions{}, failing); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
	if err := s.tr.Ping(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ping after close: %v, want ErrClosed", err)
	}
	// The failing handlers were being retried; none may run again. This can
	// only be checked over a window: a few retry periods.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := late.Load(); n > 0 {
			t.Fatalf("handler called %d times after Close returned", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLargeBatch(t *testing.T, s *suite) {
	grp, eph := NewRecorder(t), NewRecorder(t)
	subscribe(t, s.tr, "large", grp.Handle)
	subscribe(t, s.tr, "", eph.Handle)
	orders := 50
	msgs := Interleaved("big", orders, (s.LargeBatch+orders-1)/orders)[:s.LargeBatch]
	start := time.Now()
	if err := s.tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatalf("publish %d messages at once: %v", len(msgs), err)
	}
	t.Logf("published %d messages in one call in %v", len(msgs), time.Since(start))
	for _, c := range []struct {
		what string
		r    *Recorder
	}{{"group", grp}, {"ephemeral", eph}} {
		c.r.WaitFor(t, c.what, ids(msgs), s.Wait)
		checkExactlyOnce(t, c.what, c.r, ids(msgs))
		checkPerOrder(t, c.what, c.r.Accepted())
	}
	t.Logf("delivered to both subscribers %v after publishing started", time.Since(start))
}

func testConcurrentPublishers(t *testing.T, s *suite) {
	grp := NewRecorder(t)
	subscribe(t, s.tr, "concurrent", grp.Handle)
	const publishers = 8
	var (
		wg  sync.WaitGroup
		all []transport.Message
	)
	errs := make(chan error, publishers)
	for p := range publishers {
		msgs := Interleaved(fmt.Sprintf("cp%d", p), 4, 25)
		all = append(all, msgs...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxT(t)
			for len(msgs) > 0 {
				n := min(10, len(msgs))
				if err := s.tr.Publish(ctx, msgs[:n]); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					return
				}
				msgs = msgs[n:]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	grp.WaitFor(t, "group", ids(all), s.Wait)
	checkExactlyOnce(t, "group", grp, ids(all))
	checkPerOrder(t, "group", grp.Accepted())
	checkContent(t, "group", grp.Accepted(), all)
}

func testInvalidArguments(t *testing.T, s *suite) {
	r := NewRecorder(t)
	subscribe(t, s.tr, "", r.Handle)
	ctx := ctxT(t)
	good := Msg("inv-good", 1)
	bad := []struct {
		what string
		m    transport.Message
	}{
		{"empty order id", transport.Message{Version: 1, Type: "OrderCreated"}},
		{"version 0", transport.Message{OrderID: "o", Type: "OrderCreated"}},
		{"empty type", transport.Message{OrderID: "o", Version: 1}},
		{"type with a dot", transport.Message{OrderID: "o", Version: 1, Type: "Order.Created"}},
		{"type with a wildcard", transport.Message{OrderID: "o", Version: 1, Type: "Order*"}},
		{"order id with a space", transport.Message{OrderID: "o 1", Version: 1, Type: "OrderCreated"}},
		{"order id with a newline", transport.Message{OrderID: "o\r\n1", Version: 1, Type: "OrderCreated"}},
	}
	for _, c := range bad {
		// A bad message anywhere refuses the whole batch.
		err := s.tr.Publish(ctx, []transport.Message{good, c.m})
		if !errors.Is(err, transport.ErrInvalidArgument) {
			t.Fatalf("publish with %s: %v, want ErrInvalidArgument", c.what, err)
		}
	}
	for _, g := range []string{"a.b", "a b", "a*", ">", "x/y"} {
		if _, err := s.tr.Subscribe(ctx, transport.SubscribeOptions{Group: g}, r.Handle); !errors.Is(err, transport.ErrInvalidArgument) {
			t.Fatalf("subscribe with group %q: %v, want ErrInvalidArgument", g, err)
		}
	}
	if _, err := s.tr.Subscribe(ctx, transport.SubscribeOptions{}, nil); !errors.Is(err, transport.ErrInvalidArgument) {
		t.Fatalf("subscribe with a nil handler: %v, want ErrInvalidArgument", err)
	}
	if err := s.tr.Publish(ctx, nil); err != nil {
		t.Fatalf("publish of an empty batch: %v", err)
	}
	marker := Msg("inv-marker", 1)
	publish(t, s.tr, []transport.Message{marker}, 1)
	r.WaitFor(t, "subscriber", []string{marker.ID()}, s.Wait)
	if got := r.Accepted(); len(got) != 1 {
		t.Fatalf("refused batches were delivered: %d messages, want only the marker", len(got))
	}
}

func testCanceledContext(t *testing.T, s *suite) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.tr.Publish(ctx, []transport.Message{Msg("cc", 1)}); err == nil {
		t.Fatal("publish with a canceled context succeeded")
	}
	if sub, err := s.tr.Subscribe(ctx, transport.SubscribeOptions{Group: "canceled"}, NewRecorder(t).Handle); err == nil {
		_ = sub.Close()
		t.Fatal("subscribe with a canceled context succeeded")
	}
	// The transport still works.
	r := NewRecorder(t)
	subscribe(t, s.tr, "", r.Handle)
	m := Msg("cc-after", 1)
	publish(t, s.tr, []transport.Message{m}, 1)
	r.WaitFor(t, "subscriber after canceled calls", []string{m.ID()}, s.Wait)
}
