package drill

import (
	"net"
	"net/http"
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

// TestDrainFailure: refused connections fail the rolling drill only when
// the drain delay is at least twice the balancer's probe interval.
func TestDrainFailure(t *testing.T) {
	const every = 200 * time.Millisecond
	for _, c := range []struct {
		refused int
		drain   time.Duration
		fails   bool
	}{
		{0, 5 * time.Second, false},
		{1, 5 * time.Second, true},
		{3, 400 * time.Millisecond, true}, // exactly twice the interval
		{263, 399 * time.Millisecond, false},
		{263, 0, false},
	} {
		if got := drainFailure(c.refused, c.drain, every); (got != "") != c.fails {
			t.Errorf("drainFailure(%d, %s, %s) = %q, want failing %v", c.refused, c.drain, every, got, c.fails)
		}
	}
	if got := drainFailure(5, 5*time.Second, 0); got != "" {
		t.Errorf("no balancer: %q, want no judgement", got)
	}
}

// TestNoAnswerKind: a refused dial, a timeout and a broken connection are
// told apart, through the wrapping net/http adds.
func TestNoAnswerKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	if _, err := http.Get("http://" + closed + "/"); noAnswerKind(err) != NoAnswerRefused {
		t.Errorf("dial to a closed port: %v classified %q, want %q", err, noAnswerKind(err), NoAnswerRefused)
	}

	// A server that accepts and never answers, then one that hangs up.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hangUp := make(chan bool, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if <-hangUp {
				c.Close()
			} else {
				defer c.Close()
			}
		}
	}()
	hangUp <- false
	hc := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := hc.Get("http://" + ln.Addr().String() + "/"); noAnswerKind(err) != NoAnswerTimeout {
		t.Errorf("no answer: %v classified %q, want %q", err, noAnswerKind(err), NoAnswerTimeout)
	}
	hangUp <- true
	hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := hc.Post("http://"+ln.Addr().String()+"/", "text/plain", strings.NewReader("x")); noAnswerKind(err) != NoAnswerLost {
		t.Errorf("hang-up: %v classified %q, want %q", err, noAnswerKind(err), NoAnswerLost)
	}
}
