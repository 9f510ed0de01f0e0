package lazydeadline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestDeadlineWithoutDone(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	d, ok := ctx.Deadline()
	if !ok || time.Until(d) > 30*time.Millisecond || time.Until(d) < 20*time.Millisecond {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("err before the deadline: %v", err)
	}
	if ctx.(*lazy).inner.Load() != nil {
		t.Fatal("a timer was made without a Done call")
	}
	time.Sleep(40 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err after the deadline: %v", err)
	}
	closes(t, ctx, time.Second, "Done after the deadline")
}

// closes fails t unless ctx.Done() closes within d.
func closes(t *testing.T, ctx context.Context, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(d):
		t.Fatalf("%s: not closed within %v", what, d)
	}
}

func TestDoneClosesAtTheDeadline(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	closes(t, ctx, 2*time.Second, "Done")
	if e := time.Since(start); e < 45*time.Millisecond {
		t.Fatalf("closed after %v, before its deadline", e)
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err: %v", err)
	}
}

func TestParentCancellation(t *testing.T) {
	parent, stop := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
	ctx, cancel := WithTimeout(parent, time.Hour)
	defer cancel()
	if ctx.Value("k") != "v" {
		t.Fatal("value of the parent not found")
	}
	stop()
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err without Done: %v", err)
	}
	closes(t, ctx, time.Second, "Done after the parent's cancel")
}

func TestParentDeadlineBounds(t *testing.T) {
	parent, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	pd, _ := parent.Deadline()
	ctx, cancel := WithTimeout(parent, time.Hour)
	defer cancel()
	if d, _ := ctx.Deadline(); !d.Equal(pd) {
		t.Fatalf("deadline %v, want the parent's %v", d, pd)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Hour)
	cancel()
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err after cancel, before Done: %v", err)
	}
	select {
	case <-ctx.Done(): // made after the cancel: closed at once
	default:
		t.Fatal("Done after cancel is open")
	}

	ctx, cancel = WithTimeout(context.Background(), time.Hour)
	done := ctx.Done()
	child, stopChild := context.WithCancel(ctx)
	defer stopChild()
	cancel()
	<-done
	<-child.Done()
	if err := child.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("derived context: %v", err)
	}
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cause: %v", err)
	}
}

// TestCancelAfterTheDeadline: what ended the context first stays its error,
// as with the standard library's.
func TestCancelAfterTheDeadline(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	cancel()
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err: %v", err)
	}
	<-ctx.Done()
}

func TestConcurrentDone(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	chans := make([]<-chan struct{}, 8)
	for i := range chans {
		wg.Go(func() { chans[i] = ctx.Done(); _ = ctx.Err(); _ = ctx.Value("x") })
	}
	wg.Wait()
	for _, c := range chans[1:] {
		if c != chans[0] {
			t.Fatal("Done returned different channels")
		}
	}
	<-chans[0]
}

// BenchmarkWithTimeout: a context whose deadline is read and never waited
// for, next to the standard library's.
func BenchmarkWithTimeout(b *testing.B) {
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	for _, bc := range []struct {
		name string
		with func(context.Context, time.Duration) (context.Context, context.CancelFunc)
	}{{"lazy", WithTimeout}, {"stdlib", context.WithTimeout}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := bc.with(parent, time.Second)
				if _, ok := ctx.Deadline(); !ok {
					b.Fatal("no deadline")
				}
				cancel()
			}
		})
	}
}
