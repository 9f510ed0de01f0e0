package drill

import (
	"strings"
	"testing"
	"time"
)

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

// TestDistributionFailed: the failover-distribution drill fails on a kill
// it could not measure, on any keyed write with a client-visible error and
// on a p99 of "all answered" above the bound (with 50 kills or fewer, the
// slowest kill), and passes otherwise.
func TestDistributionFailed(t *testing.T) {
	fifty := make([]time.Duration, 50)
	for i := range fifty {
		fifty[i] = 100 * time.Millisecond
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = 100 * time.Millisecond
	}
	for _, c := range []struct {
		name string
		fig  DistributionFigures
		want []string // substrings of the reason; nil: passes
	}{
		{"clean", DistributionFigures{All: ms(90, 386, 120), First: ms(60, 131, 70)}, nil},
		{"at the bound", DistributionFigures{All: ms(90, 1000)}, nil},
		{"keyed errors", DistributionFigures{All: ms(90), KeyedErrors: map[string]int{"503": 2, "no answer (timeout or connection lost)": 1}},
			[]string{"3 keyed writes got a client-visible error"}},
		{"slowest of 10 above 1 s", DistributionFigures{All: ms(90, 90, 90, 90, 90, 90, 90, 90, 90, 1001)},
			[]string{"is 1.001s, above 1s", "over 10 kills p99 is the slowest"}},
		{"slowest of 50 above 1 s", DistributionFigures{All: append(fifty[:49:49], 2*time.Second)},
			[]string{"is 2s, above 1s", "over 50 kills"}},
		// Nearest rank over 100 kills: p99 is the second slowest, so one
		// outlier passes and two fail.
		{"one outlier in 100", DistributionFigures{All: append(hundred[:99:99], 5*time.Second)}, nil},
		{"two outliers in 100", DistributionFigures{All: append(hundred[:98:98], 5*time.Second, 3*time.Second)},
			[]string{"is 3s, above 1s"}},
		{"own bound", DistributionFigures{All: ms(90, 600), Bound: 500 * time.Millisecond}, []string{"is 600ms, above 500ms"}},
		{"unmeasured kill", DistributionFigures{All: ms(90), Failures: []string{"kill 3: cluster not whole"}}, []string{"kill 3: cluster not whole"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.fig.failed()
			if c.want == nil {
				if got != "" {
					t.Fatalf("failed() = %q, want a pass", got)
				}
				if !(Report{Linearizable: true, JournalOK: true, Distribution: &c.fig}).OK() {
					t.Fatal("report not OK")
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Fatalf("failed() = %q, want it to contain %q", got, w)
				}
			}
			if (Report{Linearizable: true, JournalOK: true, Distribution: &c.fig}).OK() {
				t.Fatal("report OK despite the failure")
			}
		})
	}
}

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
