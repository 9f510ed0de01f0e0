package drill

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ordersystem/ordersystem/internal/wallclock"
)

// ClockStep runs three members under load on the backend server b and steps the wall clock of the
// first one through the node's test hook (wallclock.OffsetFileEnv): +step
// for hold, then, still +step, a membership change (the last member stops
// gracefully and starts again), then -step for hold, then back to 0. The
// hook moves what the member dates for the others (event timestamps, its
// member record, node-to-node tokens); it cannot move protoactor's own
// time.Now (its gossip heartbeats), so the drill shows what our code does
// with a stepped clock, and protoactor's gossip sees no step.
//
// Expected and checked: after each phase every member shows the same view
// digest (GET / view.digest) and the same owner of every order
// (X-Order-Owner through each member); no member fences; no request fails
// while the clock is stepped (the membership change is reported apart);
// the timestamps of every order's events never go backwards; linearizable
// histories and gap-free journals.
func ClockStep(opts Options, b *BackendServer, dir string, step, hold time.Duration) (Report, error) {
	opts.Backend = b.MemberArgs(b.Addr)
	offset := filepath.Join(dir, "clock-offset")
	if err := os.WriteFile(offset, []byte("0s"), 0o644); err != nil {
		return Report{}, err
	}
	var stepped *Node
	r, err := start("clock-step", opts, func(c *Cluster) error {
		stepped = c.Nodes[0]
		stepped.Env = append(stepped.Env, wallclock.OffsetFileEnv+"="+offset)
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	defer r.cluster.Close()
	var (
		figures, failures []string
		fences            int
	)
	setOffset := func(d time.Duration) {
		if err := os.WriteFile(offset, []byte(d.String()), 0o644); err != nil {
			failures = append(failures, err.Error())
		}
		r.opts.Logger.Info("clock offset set", slog.String("node", stepped.ID), slog.Duration("offset", d))
	}
	// phase holds the load for d and checks views, owners, fences and
	// errors; strict phases must see no failed request. The owners of
	// every order are compared after the last phase; the others compare
	// those of at most ownerSample orders spread over the history (every
	// order each time made a long drill's checks grow with the square of
	// its length).
	phase := func(name string, d time.Duration, strict bool, during func()) {
		before, err := r.fences()
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, err))
		}
		codes := r.rec.Codes()
		from := r.rec.now()
		if during != nil {
			during()
		}
		time.Sleep(d)
		to := r.rec.now()
		failed := failedAnswers(codes, r.rec.Codes())
		w := writesIn(r.rec.History(), from, to)
		n := 0
		if after, err := r.fences(); err == nil && before != nil {
			n = sumDiff(before, after)
		}
		fences += n
		digests, agree, err := r.agreeOnViews(5 * time.Second)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: view digests: %v", name, err))
		}
		orders := r.rec.Orders()
		if name != lastPhase && len(orders) > ownerSample {
			sample := make([]string, 0, ownerSample)
			for i := range ownerSample {
				sample = append(sample, orders[i*len(orders)/ownerSample])
			}
			orders = sample
		}
		dis, unanswered, example := r.ownerDisagreements(orders)
		figures = append(figures, fmt.Sprintf("%s: %s, %d failed requests, %d fences; views agree=%v %v; owners differ on %d of %d orders checked (%d unanswered)",
			name, w, failed, n, agree, digests, dis, len(orders), unanswered))
		switch {
		case !agree:
			failures = append(failures, fmt.Sprintf("%s: the members' view digests differ: %v", name, digests))
		case dis > 0:
			failures = append(failures, fmt.Sprintf("%s: owners differ on %d orders, e.g. %s", name, dis, example))
		}
		if n > 0 {
			failures = append(failures, fmt.Sprintf("%s: %d fences", name, n))
		}
		if strict && failed > 0 {
			failures = append(failures, fmt.Sprintf("%s: %d requests failed", name, failed))
		}
	}

	time.Sleep(r.opts.Load)
	phase("before the step", time.Second, true, nil)
	setOffset(step)
	phase(fmt.Sprintf("%s on %s", signed(step), stepped.ID), hold, true, nil)
	last := r.cluster.Nodes[len(r.cluster.Nodes)-1]
	phase(fmt.Sprintf("%s on %s, %s restarted", signed(step), stepped.ID, last.ID), hold, false, func() {
		// The restarted node's counter starts again: count its fences now.
		if f, err := r.fences(); err == nil {
			fences += f[last.ID]
		}
		r.down.Store(last.ID, true)
		last.Term()
		if err := last.Start(); err != nil {
			failures = append(failures, err.Error())
			return
		}
		if err := last.WaitReady(30 * time.Second); err != nil {
			failures = append(failures, err.Error())
			return
		}
		r.down.Delete(last.ID)
	})
	setOffset(-step)
	phase(fmt.Sprintf("%s on %s", signed(-step), stepped.ID), hold, true, nil)
	setOffset(0)
	phase(lastPhase, hold/2, true, nil)
	r.stopLoad()

	back, ahead, behind, err := r.checkDates(step)
	if err != nil {
		failures = append(failures, err.Error())
	}
	figures = append(figures, fmt.Sprintf("event dates: %d events dated before the event they follow; %d events dated at least %s ahead of the client's clock, %d at least %s behind (the hook at work)",
		back, ahead, step*2/3, behind, step*2/3))
	if back > 0 {
		failures = append(failures, fmt.Sprintf("%d events are dated before the event they follow", back))
	}
	if ahead == 0 {
		failures = append(failures, "no event is dated ahead: the clock hook did not move the stepped member's clock")
	}
	rep := r.finish("clock-step")
	rep.Figures = append(rep.Figures, figures...)
	rep.Figures = append(rep.Figures, fmt.Sprintf("fences in all: %d", fences))
	rep.Failures = append(rep.Failures, failures...)
	return rep, nil
}

// lastPhase is the name of the clock-step drill's last phase, after which
// the owners of every order are compared; ownerSample bounds the orders
// compared after the others.
const (
	lastPhase   = "clock back"
	ownerSample = 2000
)

func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// checkDates reads every order's history and counts the events dated
// before the event they follow, and the events dated more than
// 2/3 of step ahead of (or behind) the client's clock when the write that
// journaled it was acknowledged (so dated by the stepped member).
func (r *run) checkDates(step time.Duration) (back, ahead, behind int, err error) {
	writes := map[string][2]time.Time{} // order:version -> [call, return] on the wall clock
	for _, op := range r.acked(math.MaxInt64) {
		in, out := op.Input.(Op), op.Output.(Outcome)
		writes[fmt.Sprintf("%s:%d", in.Order, out.Version)] = [2]time.Time{
			r.rec.start.Add(time.Duration(op.Call)), r.rec.start.Add(time.Duration(op.Return))}
	}
	hc := &http.Client{Timeout: 3 * time.Second}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		work  = make(chan string)
		first error
		bound = step * 2 / 3
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				live := r.live()
				evs, rerr := readHistory[datedEvent](context.Background(), hc, func(int) string { return live[w%len(live)] }, id)
				mu.Lock()
				if rerr != nil && first == nil {
					first = rerr
				}
				var prev time.Time
				for i, e := range evs {
					at, ok := e.at()
					if !ok {
						continue
					}
					if i > 0 && at.Before(prev) {
						back++
					}
					prev = at
					if win, ok := writes[fmt.Sprintf("%s:%d", id, e.Version)]; ok {
						switch {
						case at.After(win[1].Add(bound)):
							ahead++
						case at.Before(win[0].Add(-bound)):
							behind++
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range r.rec.Orders() {
		work <- id
	}
	close(work)
	wg.Wait()
	return back, ahead, behind, first
}
