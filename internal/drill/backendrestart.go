package drill

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	ordercore "github.com/ordersystem/ordersystem/order"
)

// RestartFigures is what one round of the backend-restart drill measured.
// Times are from the moment the restarted server accepted connections
// again.
type RestartFigures struct {
	Stop string        // kill -9 or SIGTERM
	Down time.Duration // from the stop until the server accepted connections again
	// Ready is when every member answered /health/ready 200 again, Writes
	// when a write through every member was acknowledged (the slowest).
	Ready, Writes time.Duration
	// NotReadyDown says which members answered readiness 503 while the
	// server was down (they should).
	NotReadyDown []string
	// FailedDown, FailedAfter: writes that failed (5xx or no answer)
	// invoked while the server was down, and after it was back until the
	// round ended.
	FailedDown, FailedAfter int
	Fences                  int // fences of all members during the round
}

func (f RestartFigures) String() string {
	return fmt.Sprintf("%s, down %s: every member ready %s and writes acknowledged through every member %s after the server was back; "+
		"failed writes %d while down, %d after; readiness 503 while down on %v; %d fences",
		f.Stop, f.Down.Round(time.Millisecond), f.Ready.Round(time.Millisecond), f.Writes.Round(time.Millisecond),
		f.FailedDown, f.FailedAfter, f.NotReadyDown, f.Fences)
}

// BackendRestart runs three members under load on one private backend
// server (b) and stops the server twice, each time for down: first with
// SIGKILL, then with SIGTERM; each time it starts the server again on the
// same port with the same data and measures how long until every member is
// ready and until a write through every member is acknowledged, and counts
// the writes that failed. At the end every acknowledged write must be in
// the journals, the histories linearizable and the journals gap-free. The
// members reach the server directly; the server must keep acknowledged
// writes across a SIGKILL (StartRedisServer, StartNATSServer do).
func BackendRestart(opts Options, b *BackendServer, down time.Duration) (Report, error) {
	opts.Backend = b.MemberArgs(b.Addr)
	r, err := start("backend-restart", opts)
	if err != nil {
		return Report{}, err
	}
	defer r.cluster.Close()
	var rounds []RestartFigures
	var failures []string
	for i, stop := range []string{"kill -9", "SIGTERM"} {
		time.Sleep(r.opts.Load)
		f, err := r.restartRound(b, stop, down, 1000+i*len(r.cluster.Nodes))
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", stop, err))
		}
		rounds = append(rounds, f)
		r.opts.Logger.Info("backend restart round done", slog.String("round", f.String()))
	}
	time.Sleep(r.opts.Load)
	r.stopLoad()
	check := &BackendFigures{Durable: true}
	acked, lost := r.checkAcknowledged(check, "at the end")
	rep := r.finish("backend-restart " + b.Kind)
	for _, f := range rounds {
		rep.Figures = append(rep.Figures, f.String())
	}
	rep.Figures = append(rep.Figures, fmt.Sprintf("acknowledged writes lost: %d of %d", lost, acked))
	rep.Failures = append(rep.Failures, failures...)
	rep.Failures = append(rep.Failures, check.Failures...)
	return rep, nil
}

// restartRound stops the server (stop: "kill -9" or "SIGTERM"), keeps it
// down for down, starts it again and measures; probe numbers the client
// ids of its per-member probe writes (one per member from probe on).
func (r *run) restartRound(b *BackendServer, stop string, down time.Duration, probe int) (RestartFigures, error) {
	f := RestartFigures{Stop: stop}
	before, err := r.fences()
	if err != nil {
		return f, err
	}
	stopAt := r.rec.now()
	stopped := time.Now()
	if stop == "kill -9" {
		b.Kill()
	} else {
		b.Term()
	}
	r.opts.Logger.Info("backend server stopped", slog.String("how", stop))
	notReady := map[string]bool{}
	hc := &http.Client{Timeout: time.Second}
	for time.Since(stopped) < down {
		for _, n := range r.cluster.Nodes {
			if !ready(hc, n.URL()) {
				notReady[n.ID] = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range r.cluster.Nodes {
		if notReady[n.ID] {
			f.NotReadyDown = append(f.NotReadyDown, n.ID)
		}
	}
	if err := b.Start(); err != nil {
		return f, fmt.Errorf("start the server again: %w", err)
	}
	back := time.Now()
	backAt := r.rec.now()
	f.Down = back.Sub(stopped)
	r.opts.Logger.Info("backend server back", slog.Duration("down", f.Down))

	// Readiness on every member, and a write through each member, both
	// polled at once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := back.Add(60 * time.Second)
		for {
			all := true
			for _, n := range r.cluster.Nodes {
				all = all && ready(hc, n.URL())
			}
			if all {
				mu.Lock()
				f.Ready = time.Since(back)
				mu.Unlock()
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("not every member ready within 60 s of the server's return"))
				mu.Unlock()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for i, n := range r.cluster.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := back.Add(60 * time.Second)
			for k := 0; ; k++ {
				key := fmt.Sprintf("probe-%d-%d-%d", probe+i, k, r.rec.start.UnixNano()%1_000_000)
				out := r.client.DoAt(n.URL(), probe+i, Op{Order: ordercore.IDForKey("drill-" + key), Kind: "create", key: key})
				if !out.Unknown && out.Code/100 == 2 {
					r.created.Add(1)
					mu.Lock()
					f.Writes = max(f.Writes, time.Since(back))
					mu.Unlock()
					return
				}
				if time.Now().After(deadline) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("no write through %s acknowledged within 60 s of the server's return", n.ID))
					mu.Unlock()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	// Let the members settle with the load on, then count.
	time.Sleep(r.opts.Load)
	end := r.rec.now()
	ops := r.rec.History()
	f.FailedDown = writesIn(ops, stopAt, backAt).Failed
	f.FailedAfter = writesIn(ops, backAt, end).Failed
	after, err := r.fences()
	if err != nil {
		errs = append(errs, err)
	} else {
		f.Fences = sumDiff(before, after)
	}
	if len(errs) > 0 {
		return f, fmt.Errorf("%v", errs)
	}
	return f, nil
}

// ready reports whether base answers /health/ready 200.
func ready(hc *http.Client, base string) bool {
	res, err := hc.Get(base + "/health/ready")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}
