package nats

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
)

// TestUnheardSendsAgain: a write no stream answered is sent again until it
// is answered; any other outcome ends it at once.
func TestUnheardSendsAgain(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := unheard(ctx, func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("put: %w", jetstream.ErrNoStreamResponse)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("answered on the third send: err %v after %d calls", err, calls)
	}

	calls = 0
	other := errors.New("wrong last sequence")
	if err := unheard(ctx, func() error { calls++; return other }); err != other || calls != 1 {
		t.Fatalf("another error: got %v after %d calls, want it after one", err, calls)
	}
}

// TestUnheardStopsWithItsContext: never answered, the write gives up when
// its context ends and returns the last error, which callers classify as
// unavailable.
func TestUnheardStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*unheardWait)
	defer cancel()
	start := time.Now()
	err := unheard(ctx, func() error { return jetstream.ErrNoStreamResponse })
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("got %v, want the last ErrNoStreamResponse", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("gave up after %s, long after its context ended", waited)
	}
	b := &Backend{addr: "nats://x"}
	if err := b.wrap(ctx, "put", err); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("wrapped: %v, want ErrUnavailable", err)
	}
}

// TestWrapTransientAPIErrors: JetStream API errors that a cluster gives
// while it is still forming or electing (400 "no suitable peers", 500 "not
// leader") are unavailable, to be retried; a refusal is not.
func TestWrapTransientAPIErrors(t *testing.T) {
	b := &Backend{addr: "nats://x"}
	ctx := context.Background()
	for _, c := range []struct {
		err         *jetstream.APIError
		unavailable bool
	}{
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10009, Description: "JetStream cluster not assigned to this server"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
	} {
		err := b.wrap(ctx, "create bucket", fmt.Errorf("create: %w", c.err))
		if got := errors.Is(err, persistence.ErrUnavailable); got != c.unavailable {
			t.Errorf("%d/%d %q: unavailable %v, want %v (%v)", c.err.Code, c.err.ErrorCode, c.err.Description, got, c.unavailable, err)
		}
	}
}

// TestAppendWaitsForAStreamToAnswer: an append made while no stream
// listens on its subject (its subjects moved away here; after a create or a
// leader change on a cluster, for a moment) is sent again until the stream
// answers, past nats.go's default two retries 250 ms apart, and is stored
// once.
func TestAppendWaitsForAStreamToAnswer(t *testing.T) {
	b := newBackend(t, testservers.NATS(t), Options{Partitions: 1})
	ctx := context.Background()
	rec := []persistence.Record{{Type: "OrderCreated", Data: []byte{1}}}
	if _, err := b.Append(ctx, "o-1", 0, rec); err != nil {
		t.Fatal(err)
	}
	cfg := b.streams[0].CachedInfo().Config
	away := cfg
	away.Subjects = []string{cfg.Name + "-elsewhere.>"}
	if _, err := b.js.UpdateStream(ctx, away); err != nil {
		t.Fatal(err)
	}
	back := make(chan error, 1)
	go func() {
		time.Sleep(800 * time.Millisecond)
		_, err := b.js.UpdateStream(ctx, cfg)
		back <- err
	}()
	actx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	v, err := b.Append(actx, "o-1", 1, rec)
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if err != nil || v != 2 {
		t.Fatalf("append while no stream listened for 0.8 s: version %d, %v", v, err)
	}
	if recs, err := b.Load(ctx, "o-1", 1); err != nil || len(recs) != 2 {
		t.Fatalf("load after: %d records, %v; want 2", len(recs), err)
	}
}
