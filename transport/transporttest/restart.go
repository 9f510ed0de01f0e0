package transporttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/transport"
)

// RunRestart checks that tr survives a restart of its server (which restart
// performs, keeping the server's data): a durable group subscribed before the
// restart receives everything published before and after it, Publish fails
// only with ErrUnavailable while the server is away and works again by itself,
// and the group still resumes after its subscription is closed and reopened.
// Duplicates are allowed here (a publish retried after an unknown outcome may
// repeat an id); they are counted in the log. The caller closes tr.
func RunRestart(t *testing.T, tr transport.Transport, restart func()) {
	const wait = 30 * time.Second
	r := NewRecorder(t)
	sub := subscribe(t, tr, "restart", r.Handle)
	before := Interleaved("rs-before", 4, 5)
	publish(t, tr, before, 10)
	r.WaitFor(t, "group before restart", ids(before), wait)

	restart()

	after := Interleaved("rs-after", 4, 5)
	publishRetrying(t, tr, after, wait)
	r.WaitFor(t, "group across restart", ids(after), wait)
	if err := sub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	closed := Interleaved("rs-closed", 4, 5)
	publishRetrying(t, tr, closed, wait)
	r2 := NewRecorder(t)
	subscribe(t, tr, "restart", r2.Handle)
	r2.WaitFor(t, "group reopened after restart", ids(closed), wait)
	if err := tr.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	dups := 0
	for _, rec := range []*Recorder{r, r2} {
		for _, m := range rec.Accepted() {
			if rec.Acks(m.ID()) > 1 {
				dups++
			}
		}
	}
	t.Logf("restart: %d duplicate deliveries", dups)
	checkPerOrder(t, "group across restart", r.Accepted())
}

// publishRetrying publishes msgs, retrying while the transport reports
// ErrUnavailable (the server is coming back), for at most d.
func publishRetrying(t *testing.T, tr transport.Transport, msgs []transport.Message, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	failures := 0
	for {
		err := tr.Publish(ctxT(t), msgs)
		if err == nil {
			if failures > 0 {
				t.Logf("publish succeeded after %d failures", failures)
			}
			return
		}
		if !errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("publish while the server restarts: %v, want nil or ErrUnavailable", err)
		}
		failures++
		if time.Now().After(deadline) {
			t.Fatalf("transport did not come back after %v: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RunServerDown checks behaviour while tr's server is gone (stop kills it and
// does not bring it back): Ping and Publish fail with ErrUnavailable within
// their context's deadline, and Close still returns promptly, stopping the
// subscriptions that are retrying. The caller may close tr again.
func RunServerDown(t *testing.T, tr transport.Transport, stop func()) {
	grp, eph := NewRecorder(t), NewRecorder(t)
	subscribe(t, tr, "down", grp.Handle)
	subscribe(t, tr, "", eph.Handle)
	msgs := Interleaved("down", 2, 2)
	publish(t, tr, msgs, 10)
	grp.WaitFor(t, "group", ids(msgs), 10*time.Second)
	eph.WaitFor(t, "ephemeral", ids(msgs), 10*time.Second)

	stop()

	for _, op := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"ping", tr.Ping},
		{"publish", func(ctx context.Context) error { return tr.Publish(ctx, Interleaved("down-after", 1, 1)) }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err := op.call(ctx)
		cancel()
		if !errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("%s with the server down: %v, want ErrUnavailable", op.name, err)
		}
		if d := time.Since(start); d > 6*time.Second {
			t.Fatalf("%s with the server down took %v", op.name, d)
		}
		t.Logf("%s with the server down: %v (after %v)", op.name, err, time.Since(start))
	}
	start := time.Now()
	if err := tr.Close(); err != nil {
		t.Fatalf("close with the server down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("close with the server down took %v", d)
	}
	t.Logf("close with the server down took %v", time.Since(start))
}
