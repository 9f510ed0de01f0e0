package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/internal/retry"
)

func TestHandleRetriesSameBatch(t *testing.T) {
	batch := []transport.Message{{OrderID: "o", Version: 1, Type: "T"}}
	calls, failures := 0, 0
	h := func(ctx context.Context, got []transport.Message) error {
		calls++
		if &got[0] != &batch[0] {
			t.Error("handler got a different batch")
		}
		if calls < 3 {
			return errors.New("fail")
		}
		return nil
	}
	err := retry.Handle(context.Background(), h, batch, backoff.Policy{Base: time.Millisecond, Max: time.Millisecond},
		func(int, error) { failures++ })
	if err != nil || calls != 3 || failures != 2 {
		t.Fatalf("err %v, calls %d, failures %d", err, calls, failures)
	}
}

func TestHandleStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	h := func(ctx context.Context, _ []transport.Message) error {
		calls++
		cancel()
		return errors.New("fail")
	}
	start := time.Now()
	err := retry.Handle(ctx, h, nil, backoff.Policy{Base: time.Hour, Max: time.Hour}, nil)
	if !errors.Is(err, context.Canceled) || calls != 1 || time.Since(start) > time.Second {
		t.Fatalf("err %v after %d calls and %v", err, calls, time.Since(start))
	}
	// A handler that accepts the batch while the context is canceled wins.
	ctx, cancel = context.WithCancel(context.Background())
	err = retry.Handle(ctx, func(context.Context, []transport.Message) error { cancel(); return nil }, nil, backoff.Policy{Base: 1, Max: 1}, nil)
	if err != nil {
		t.Fatalf("accepted batch reported %v", err)
	}
}
