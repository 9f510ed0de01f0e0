package drill

import (
	"testing"
	"time"
)

// TestSlowFailures: a fence, a fence log line or a failed write fails the
// slow-backend drill at every step up to and including the carried round
// trip (TTL/4: the step at +500 ms itself), and never above it.
func TestSlowFailures(t *testing.T) {
	step := func(rtt, fences, lines, failed int) SlowStep {
		return SlowStep{RTT: time.Duration(rtt) * time.Millisecond, Fences: fences, Lines: lines, Writes: WriteFigures{Failed: failed}}
	}
	carry := 500 * time.Millisecond
	for _, c := range []struct {
		name  string
		steps []SlowStep
		carry time.Duration
		want  int
	}{
		{"all clean", []SlowStep{step(0, 0, 0, 0), step(300, 0, 0, 0), step(500, 0, 0, 0)}, carry, 0},
		{"fence at exactly +500 ms", []SlowStep{step(0, 0, 0, 0), step(500, 1, 1, 0)}, carry, 1},
		{"fence line only at +500 ms", []SlowStep{step(500, 0, 1, 0)}, carry, 1},
		{"failed write at +300 ms", []SlowStep{step(300, 0, 0, 2), step(500, 0, 0, 0)}, carry, 1},
		{"fence above the carry", []SlowStep{step(500, 0, 0, 0), step(600, 3, 3, 9), step(1000, 3, 3, 50)}, carry, 0},
		{"report only", []SlowStep{step(100, 1, 1, 1)}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := slowFailures(c.steps, c.carry)
			if len(got) != c.want {
				t.Fatalf("slowFailures = %q, want %d failures", got, c.want)
			}
		})
	}
}
