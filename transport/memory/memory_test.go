package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/memory"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTransport(t testing.TB, opts memory.Options) *memory.Transport {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = transporttest.Logger(t)
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	}
	tr, err := memory.New(opts)
	if err != nil {
		t.Fatalf("new memory transport: %v", err)
	}
	return tr
}

func TestContract(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transport.Transport {
		return newTransport(t, memory.Options{})
	}, transporttest.Features{DuplicatePublishDelivered: true})
}

func TestName(t *testing.T) {
	tr := newTransport(t, memory.Options{})
	defer tr.Close()
	if tr.Name() != "inmemory" {
		t.Fatalf("name %q", tr.Name())
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []memory.Options{
		{MaxBacklog: -1},
		{BatchSize: -5},
		{RetryMin: time.Second, RetryMax: time.Millisecond},
	} {
		if _, err := memory.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func waitBacklog(t *testing.T, tr *memory.Transport, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tr.Backlog() != want {
		if time.Now().After(deadline) {
			t.Fatalf("backlog %d, want %d", tr.Backlog(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The log holds only what some reader still needs.
func TestLogTrimmedBehindSlowestReader(t *testing.T) {
	ctx := context.Background()
	tr := newTransport(t, memory.Options{})
	defer tr.Close()

	// No reader: nothing is kept.
	if err := tr.Publish(ctx, transporttest.Interleaved("none", 10, 10)); err != nil {
		t.Fatal(err)
	}
	if n := tr.Backlog(); n != 0 {
		t.Fatalf("backlog %d with no reader, want 0", n)
	}

	// A group keeps what it has not read while its member is away.
	r := transporttest.NewRecorder(t)
	sub, err := tr.Subscribe(ctx, transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	first := transporttest.Interleaved("a", 10, 10)
	if err := tr.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(t, "group", idsOf(first), 5*time.Second)
	waitBacklog(t, tr, 0)
	_ = sub.Close()
	if err := tr.Publish(ctx, transporttest.Interleaved("b", 10, 10)); err != nil {
		t.Fatal(err)
	}
	if n := tr.Backlog(); n != 100 {
		t.Fatalf("backlog %d while the group is away, want 100", n)
	}
	sub, err = tr.Subscribe(ctx, transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitBacklog(t, tr, 0)
}

// An abandoned group cannot make the log grow past MaxBacklog; it loses the
// oldest messages instead, and Dropped counts them.
func TestLogBounded(t *testing.T) {
	ctx := context.Background()
	tr := newTransport(t, memory.Options{MaxBacklog: 1000})
	defer tr.Close()
	sub, err := tr.Subscribe(ctx, transport.SubscribeOptions{Group: "abandoned"}, transporttest.NewRecorder(t).Handle)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	for i := range 50 {
		if err := tr.Publish(ctx, transporttest.Interleaved(fmt.Sprint("p", i), 10, 10)); err != nil {
			t.Fatal(err)
		}
		if n := tr.Backlog(); n > 1000 {
			t.Fatalf("backlog %d, bound 1000", n)
		}
	}
	if d := tr.Dropped(); d != 4000 {
		t.Fatalf("dropped %d, want 4000", d)
	}
	// The group resumes with the newest 1000.
	r := transporttest.NewRecorder(t)
	sub, err = tr.Subscribe(ctx, transport.SubscribeOptions{Group: "abandoned"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	last := transporttest.Interleaved("p49", 10, 10)
	r.WaitFor(t, "group", idsOf(last), 5*time.Second)
	waitBacklog(t, tr, 0)
	if n := r.Total(); n != 1000 {
		t.Fatalf("group got %d messages, want the newest 1000", n)
	}
}

// A member that closes with a batch its handler did not accept gives it back
// to the group.
func TestUnacceptedBatchGoesBackToGroup(t *testing.T) {
	ctx := context.Background()
	tr := newTransport(t, memory.Options{})
	defer tr.Close()
	entered := make(chan struct{}, 1)
	stuck := func(ctx context.Context, batch []transport.Message) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	sub, err := tr.Subscribe(ctx, transport.SubscribeOptions{Group: "g"}, stuck)
	if err != nil {
		t.Fatal(err)
	}
	msgs := transporttest.Interleaved("x", 3, 3)
	if err := tr.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	<-entered
	_ = sub.Close()
	r := transporttest.NewRecorder(t)
	sub, err = tr.Subscribe(ctx, transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r.WaitFor(t, "next member", idsOf(msgs), 5*time.Second)
}

func idsOf(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID()
	}
	return out
}
