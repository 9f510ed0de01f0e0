package drill

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// SlowStep is what one step of the slow-backend drill measured.
type SlowStep struct {
	RTT    time.Duration // round trip added between every member and the backend
	Fences int           // fences of all members during the step (cluster_fences_total)
	Lines  int           // "membership lease lost" log lines during the step
	Writes WriteFigures
	// Reasons are the fence reasons the members logged, by node.
	Reasons map[string][]string
}

// Clean reports whether the step saw no fence and no failed write.
func (s SlowStep) Clean() bool { return s.Fences == 0 && s.Lines == 0 && s.Writes.Failed == 0 }

func (s SlowStep) String() string {
	out := fmt.Sprintf("+%s round trip: %d fences, %s", s.RTT, s.Fences, s.Writes)
	for node, rs := range s.Reasons {
		for _, r := range rs {
			out += fmt.Sprintf("\n    %s fenced: %s", node, r)
		}
	}
	return out
}

// SlowBackend runs three members under light load, each reaching the
// backend server at addr (its members' flags from b) through its own
// latency proxy, and raises the added round trip through steps (half of
// it on each direction of every chunk), holding each for hold: per step it
// counts the members' fences, the failed writes and the write latency. It
// reports the highest added round trip up to which every step was clean
// (no fence, no failed write) and the first one that fenced; linearizable
// histories and gap-free journals are checked as always. A fence or a
// failed write at an added round trip up to and including carry fails the
// drill (0: never fails on that); see slowFailures.
func SlowBackend(opts Options, b *BackendServer, steps []time.Duration, hold, carry time.Duration) (Report, error) {
	opts.Backend = b.MemberArgs(b.Addr)
	var proxies []*Proxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	r, err := start("slow-backend", opts, func(c *Cluster) error {
		for _, n := range c.Nodes {
			p, err := NewProxy(b.Addr)
			if err != nil {
				return err
			}
			proxies = append(proxies, p)
			for i, a := range n.args {
				if (a == "--redis" || a == "--nats") && i+1 < len(n.args) {
					n.args[i+1] = strings.Replace(n.args[i+1], b.Addr, p.Addr(), 1)
				}
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	defer r.cluster.Close()
	time.Sleep(r.opts.Load)
	var out []SlowStep
	var errs []string
	for _, rtt := range steps {
		for _, p := range proxies {
			p.SetDelay(rtt/2, rtt-rtt/2)
		}
		before, err := r.fences()
		if err != nil {
			errs = append(errs, fmt.Sprintf("+%s: %v", rtt, err))
		}
		lines := r.fenceCounts()
		from := r.rec.now()
		time.Sleep(hold)
		to := r.rec.now()
		st := SlowStep{RTT: rtt, Writes: writesIn(r.rec.History(), from, to)}
		if after, err := r.fences(); err == nil && before != nil {
			st.Fences = sumDiff(before, after)
		} else if err != nil {
			errs = append(errs, fmt.Sprintf("+%s: %v", rtt, err))
		}
		// The reasons after the counters: a fence logs before it counts.
		st.Reasons = r.fenceReasons(lines)
		for _, rs := range st.Reasons {
			st.Lines += len(rs)
		}
		out = append(out, st)
		r.opts.Logger.Info("slow-backend step", slog.String("step", st.String()))
	}
	for _, p := range proxies {
		p.SetDelay(0, 0)
	}
	// Back to no delay: every member must become ready again.
	for _, n := range r.cluster.Nodes {
		if err := n.WaitReady(30 * time.Second); err != nil {
			errs = append(errs, fmt.Sprintf("after the delays: %s not ready again within 30 s", n.ID))
		}
	}
	time.Sleep(r.opts.Load)
	rep := r.finish("slow-backend")
	var clean time.Duration = -1
	fenceAt := time.Duration(-1)
	prefix := true
	for _, st := range out {
		rep.Figures = append(rep.Figures, st.String())
		if prefix && st.Clean() {
			clean = st.RTT
		} else {
			prefix = false
		}
		if fenceAt < 0 && (st.Fences > 0 || st.Lines > 0) {
			fenceAt = st.RTT
		}
	}
	rep.Failures = append(rep.Failures, slowFailures(out, carry)...)
	summary := "no step was clean"
	if clean >= 0 {
		summary = fmt.Sprintf("highest added round trip with no fence and no failed write (every step up to it clean): %s", clean)
	}
	if fenceAt >= 0 {
		summary += fmt.Sprintf("; fencing starts at +%s", fenceAt)
	} else {
		summary += "; no step fenced"
	}
	rep.Figures = append(rep.Figures, summary)
	rep.Failures = append(rep.Failures, errs...)
	return rep, nil
}

// slowFailures returns a failure for every step that was not clean at an
// added round trip up to and including carry (nil if carry is 0). The step
// at carry itself counts: the lease arithmetic promises that a member
// carries TTL/4 of round trip (500 ms at the default 2 s TTL), so a fence
// at exactly +500 ms breaks the promise.
func slowFailures(steps []SlowStep, carry time.Duration) []string {
	if carry <= 0 {
		return nil
	}
	var out []string
	for _, st := range steps {
		if st.RTT <= carry && !st.Clean() {
			out = append(out, fmt.Sprintf("+%s round trip (up to %s must be clean): %d fences, %d fence log lines, %d failed writes",
				st.RTT, carry, st.Fences, st.Lines, st.Writes.Failed))
		}
	}
	return out
}
