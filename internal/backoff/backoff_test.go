package backoff

import (
	"testing"
	"time"
)

func TestBoundsJitterAndCap(t *testing.T) {
	base, maxD := 100*time.Millisecond, 2*time.Second
	for _, c := range []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{6, time.Second, 2 * time.Second},
		{60, time.Second, 2 * time.Second}, // capped, no overflow
	} {
		lo := Policy{Base: base, Max: maxD, Rand: func() float64 { return 0 }}.Delay(c.attempt)
		hi := Policy{Base: base, Max: maxD, Rand: func() float64 { return 0.999999999 }}.Delay(c.attempt)
		if lo != c.lo || hi < c.hi-time.Microsecond || hi > c.hi {
			t.Errorf("attempt %d: range [%s, %s], want [%s, %s]", c.attempt, lo, hi, c.lo, c.hi)
		}
	}
	// Real jitter spreads the delays.
	p := Policy{Base: base, Max: maxD}
	seen := map[time.Duration]bool{}
	for range 50 {
		d := p.Delay(4)
		if d < 400*time.Millisecond || d > 800*time.Millisecond {
			t.Fatalf("jittered delay %s outside [400ms, 800ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 50: no real jitter", len(seen))
	}
}
