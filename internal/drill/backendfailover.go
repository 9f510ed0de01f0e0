package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ordersystem/ordersystem/persistence"
)

// FailoverBackend is a replicated backend whose servers the backend-failover
// drill kills: a Redis Cluster or a JetStream cluster.
type FailoverBackend interface {
	// Leaders returns, for each of n journal partitions, the server that
	// takes its writes now (Redis: the primary of its slot; NATS: the
	// leader of its stream).
	Leaders(ctx context.Context, n int) ([]string, error)
	// Kill sends SIGKILL to a server; Restart starts it again with its data.
	Kill(server string) error
	Restart(server string) error
	// Whole waits until every server is back in the backend and caught up.
	Whole(timeout time.Duration) error
}

// BackendFigures is what the backend-failover drill measured. Times are
// from the kill -9 of the server.
type BackendFigures struct {
	Killed   string // the server killed
	Affected []int  // partitions whose writes it took
	Durable  bool   // the durable profile: no acknowledged write may be lost
	// WritesBack is when the first write (create, pay, ship, deliver)
	// invoked after the kill on an affected partition was acknowledged;
	// LastFailed when the last write that failed (5xx or no answer) while
	// the server was down was invoked, FailedWrites how many failed then.
	WritesBack, LastFailed time.Duration
	FailedWrites           int
	// LagZero is when every member's /stats showed an outbox lag of 0 with
	// every acknowledged write in the partitions' heads, the server still
	// down (the load paused at LoadPaused); ReadModel when GET /orders
	// listed every created order.
	LagZero, LoadPaused, ReadModel time.Duration
	// Acknowledged writes, and those not found in the journals while the
	// server was down and at the end (after its restart).
	AckedDown, LostDown, AckedEnd, LostEnd int
	// After the restart: outbox lag back to 0, read model complete.
	LagZeroEnd, ReadModelEnd time.Duration
	// Fences is how often the members fenced themselves from the kill
	// until the restart (cluster_fences_total); -1 when not read.
	Fences   int
	Failures []string
}

func (f *BackendFigures) String() string {
	profile := "default profile"
	if f.Durable {
		profile = "durable profile"
	}
	back := "never"
	if f.WritesBack > 0 {
		back = f.WritesBack.Round(time.Millisecond).String() + " after the kill"
	}
	return fmt.Sprintf("killed %s (leader of partitions %v, %s): writes to them acknowledged again %s, last failed write invoked at %s (%d failed writes while down); "+
		"outbox lag 0 at %s (load paused at %s), read model complete at %s, still down; acknowledged writes lost: %d of %d while down, %d of %d after the restart; "+
		"after the restart lag 0 %s and read model complete %s after the load stopped; member fences while down: %d",
		f.Killed, f.Affected, profile, back, f.LastFailed.Round(time.Millisecond), f.FailedWrites,
		f.LagZero.Round(time.Millisecond), f.LoadPaused.Round(time.Millisecond), f.ReadModel.Round(time.Millisecond),
		f.LostDown, f.AckedDown, f.LostEnd, f.AckedEnd, f.LagZeroEnd.Round(time.Millisecond), f.ReadModelEnd.Round(time.Millisecond), f.Fences)
}

func (f *BackendFigures) fail(format string, args ...any) {
	f.Failures = append(f.Failures, fmt.Sprintf(format, args...))
}

// BackendFailover runs three members under load on a replicated backend,
// kills with SIGKILL the server that takes partition 0's writes and keeps
// it down while the load goes on: it measures how long writes to the
// partitions that server led fail, checks that every acknowledged write is
// in the journals, that the outbox lag returns to 0 and the read model
// lists every created order while the server is down; then it restarts the
// server, loads again, and checks everything again, the histories with
// porcupine and the journals for gaps included. durable says the backend
// runs the durable profile, where losing an acknowledged write fails the
// drill; otherwise the loss is measured and reported.
func BackendFailover(opts Options, b FailoverBackend, durable bool) (Report, error) {
	r, err := start("backend-failover", opts)
	if err != nil {
		return Report{}, err
	}
	defer r.cluster.Close()
	fig := &BackendFigures{Durable: durable}
	time.Sleep(r.opts.Load)

	parts, err := r.partitions()
	if err != nil {
		r.stopLoad()
		return Report{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	leaders, err := b.Leaders(ctx, parts)
	cancel()
	if err != nil {
		r.stopLoad()
		return Report{}, err
	}
	fig.Killed = leaders[0]
	if r.opts.Victim != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		fig.Killed, err = r.opts.Victim(ctx)
		cancel()
		if err != nil {
			r.stopLoad()
			return Report{}, fmt.Errorf("the server to kill: %w", err)
		}
	}
	for p, l := range leaders {
		if l == fig.Killed {
			fig.Affected = append(fig.Affected, p)
		}
	}
	fig.Fences = -1
	fencesBefore, ferr := r.fences()
	killAt := r.rec.now()
	if err := b.Kill(fig.Killed); err != nil {
		r.stopLoad()
		return Report{}, err
	}
	r.opts.Logger.Info("backend server killed", slog.String("server", fig.Killed), slog.Any("partitions", fig.Affected))
	affected := func(order string) bool {
		return slices.Contains(fig.Affected, persistence.PartitionOf(order, parts))
	}

	// 1. Writes to the affected partitions succeed again.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if back, ok := firstAckedWrite(r.rec.History(), killAt, affected); ok {
			fig.WritesBack = back
			break
		}
		if time.Now().After(deadline) {
			fig.fail("no write to partitions %v acknowledged within 60s of the kill", fig.Affected)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(r.opts.Load)
	r.stopLoad()
	downEnd := r.rec.now()
	fig.LoadPaused = time.Duration(downEnd - killAt)
	fig.LastFailed, fig.FailedWrites = failedWrites(r.rec.History(), killAt, downEnd)

	// 2 and 3, the server still down.
	fig.AckedDown, fig.LostDown = r.checkAcknowledged(fig, "while the server was down")
	if at, err := r.waitLagZero(60 * time.Second); err != nil {
		fig.fail("server down: %v", err)
	} else {
		fig.LagZero = time.Duration(at - killAt)
	}
	if at, err := r.waitListed(30 * time.Second); err != nil {
		fig.fail("server down: %v", err)
	} else {
		fig.ReadModel = time.Duration(at - killAt)
	}

	// 4. The server comes back; load again; everything again.
	if fencesAfter, err := r.fences(); err == nil && ferr == nil {
		fig.Fences = sumDiff(fencesBefore, fencesAfter)
		if fig.Fences > 0 && r.opts.NoFences {
			fig.fail("%d member fences while %s was down", fig.Fences, fig.Killed)
		}
	}
	if err := b.Restart(fig.Killed); err != nil {
		return Report{}, err
	}
	if err := b.Whole(60 * time.Second); err != nil {
		fig.fail("after the restart of %s: %v", fig.Killed, err)
	}
	r.startLoad()
	time.Sleep(r.opts.Load)
	r.stopLoad()
	quiet := r.rec.now()
	fig.AckedEnd, fig.LostEnd = r.checkAcknowledged(fig, "after the restart")
	if at, err := r.waitLagZero(60 * time.Second); err != nil {
		fig.fail("after the restart: %v", err)
	} else {
		fig.LagZeroEnd = time.Duration(at - quiet)
	}
	if at, err := r.waitListed(30 * time.Second); err != nil {
		fig.fail("after the restart: %v", err)
	} else {
		fig.ReadModelEnd = time.Duration(at - quiet)
	}
	rep := r.finish("backend-failover")
	rep.Backend = fig
	return rep, nil
}

// startLoad starts the workload again after stopLoad.
func (r *run) startLoad() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	done := r.done
	go func() { r.client.Run(ctx, r.opts.Workers, &r.created); close(done) }()
}

// stopLoad stops the workload and waits for every worker to return.
func (r *run) stopLoad() {
	r.cancel()
	<-r.done
}

var writeKinds = map[string]string{"create": "OrderCreated", "pay": "OrderPaid", "ship": "OrderShipped", "deliver": "OrderDelivered", "cancel": "OrderCancelled"}

// firstAckedWrite returns when the first write invoked after at on an
// order that affected says yes to was acknowledged, relative to at.
func firstAckedWrite(ops []porcupine.Operation, at int64, affected func(string) bool) (time.Duration, bool) {
	first := int64(math.MaxInt64)
	for _, op := range ops {
		in, out := op.Input.(Op), op.Output.(Outcome)
		if _, w := writeKinds[in.Kind]; w && op.Call >= at && !out.Unknown && out.Code/100 == 2 && affected(in.Order) {
			first = min(first, op.Return)
		}
	}
	if first == math.MaxInt64 {
		return 0, false
	}
	return time.Duration(first - at), true
}

// failedWrites returns when the last write invoked in [from, to) that
// failed (5xx or no answer) was invoked, relative to from, and how many did.
func failedWrites(ops []porcupine.Operation, from, to int64) (time.Duration, int) {
	var last int64
	n := 0
	for _, op := range ops {
		in, out := op.Input.(Op), op.Output.(Outcome)
		if _, w := writeKinds[in.Kind]; w && out.Unknown && op.Call >= from && op.Call < to {
			n++
			last = max(last, op.Call-from)
		}
	}
	return time.Duration(last), n
}

// partitions returns the journal's partition count from a member's /stats.
func (r *run) partitions() (int, error) {
	st, err := r.stats(r.live()[0])
	if err != nil {
		return 0, err
	}
	if len(st.Outbox.Partitions) == 0 {
		return 0, fmt.Errorf("GET /stats lists no outbox partitions")
	}
	return len(st.Outbox.Partitions), nil
}

type statsBody struct {
	Outbox struct {
		Lag        uint64 `json:"lag"`
		Partitions []struct {
			Head uint64 `json:"head"`
		} `json:"partitions"`
	} `json:"outbox"`
}

func (r *run) stats(base string) (statsBody, error) {
	var st statsBody
	err := getJSON(&http.Client{Timeout: 2 * time.Second}, base+"/stats", &st)
	return st, err
}

// acked returns the acknowledged writes that returned before at.
func (r *run) acked(at int64) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range r.rec.History() {
		in, o := op.Input.(Op), op.Output.(Outcome)
		if _, w := writeKinds[in.Kind]; w && !o.Unknown && o.Code/100 == 2 && op.Return < at {
			out = append(out, op)
		}
	}
	return out
}

// waitLagZero polls /stats of every live member until each reports an
// outbox lag of 0 with heads that hold every acknowledged write (a member
// whose backend reads fail keeps older figures, which cannot pass that),
// read at least a cache period after the call; it returns when, on the
// recorder's clock.
func (r *run) waitLagZero(timeout time.Duration) (int64, error) {
	time.Sleep(1100 * time.Millisecond) // outlive the 1 s cache of the figures
	want := uint64(len(r.acked(math.MaxInt64)))
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok := true
		for _, base := range r.live() {
			st, err := r.stats(base)
			var heads uint64
			for _, p := range st.Outbox.Partitions {
				heads += p.Head
			}
			switch {
			case err != nil:
				ok, last = false, err.Error()
			case st.Outbox.Lag != 0 || heads < want:
				ok, last = false, fmt.Sprintf("%s: outbox lag %d, heads hold %d events of %d acknowledged writes", base, st.Outbox.Lag, heads, want)
			}
		}
		if ok {
			return r.rec.now(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("outbox lag not 0 within %s: %s", timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitListed polls GET /orders (every page) through a live member until it
// lists every order whose create was acknowledged; it returns when.
func (r *run) waitListed(timeout time.Duration) (int64, error) {
	want := map[string]bool{}
	for _, op := range r.acked(math.MaxInt64) {
		if in := op.Input.(Op); in.Kind == "create" {
			want[in.Order] = true
		}
	}
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 5 * time.Second}
	for i := 0; ; i++ {
		live := r.live()
		missing, err := listMissing(hc, live[i%len(live)], want)
		if err == nil && missing == 0 {
			return r.rec.now(), nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return 0, fmt.Errorf("GET /orders within %s: %w", timeout, err)
			}
			return 0, fmt.Errorf("GET /orders still misses %d of the %d created orders after %s", missing, len(want), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func listMissing(hc *http.Client, base string, want map[string]bool) (int, error) {
	seen := map[string]bool{}
	cursor := ""
	for {
		u := base + "/orders?limit=1000"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		res, err := hc.Get(u)
		if err != nil {
			return 0, err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return 0, fmt.Errorf("GET %s: %d %s", u, res.StatusCode, b)
		}
		var page []struct {
			OrderID string `json:"orderId"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return 0, fmt.Errorf("GET %s: %w", u, err)
		}
		for _, o := range page {
			seen[o.OrderID] = true
		}
		cursor = res.Header.Get("X-Next-Cursor")
		if cursor == "" || len(page) == 0 {
			break
		}
	}
	missing := 0
	for o := range want {
		if !seen[o] {
			missing++
		}
	}
	return missing, nil
}

// checkAcknowledged reads every order's history through the live members
// and counts the acknowledged writes (returned before the read began) whose
// event is not at its version there; in the durable profile a loss fails
// the drill.
func (r *run) checkAcknowledged(fig *BackendFigures, when string) (acked, lost int) {
	ops := r.acked(r.rec.now())
	hist, err := r.histories(r.rec.Orders())
	if err != nil {
		fig.fail("%s: %v", when, err)
		return len(ops), 0
	}
	var examples []string
	for _, op := range ops {
		in, out := op.Input.(Op), op.Output.(Outcome)
		evs := hist[in.Order]
		if out.Version == 0 || len(evs) < int(out.Version) || evs[out.Version-1].Type != writeKinds[in.Kind] {
			lost++
			if len(examples) < 3 {
				examples = append(examples, fmt.Sprintf("%s of %s acknowledged as v%d, history has %d events", in.Kind, in.Order, out.Version, len(evs)))
			}
		}
	}
	if lost > 0 && fig.Durable {
		fig.fail("%s: %d of %d acknowledged writes are not in the journals (%s)", when, lost, len(ops), strings.Join(examples, "; "))
	}
	return len(ops), lost
}

type histEvent struct {
	Type    string `json:"type"`
	Version uint64 `json:"version"`
}

// histories reads the history of each order through the live members, 8
// at a time, each retried for up to 10 s; an order without history (404)
// maps to nil.
func (r *run) histories(orders []string) (map[string][]histEvent, error) {
	hc := &http.Client{Timeout: 3 * time.Second}
	var (
		mu    sync.Mutex
		out   = make(map[string][]histEvent, len(orders))
		first error
		wg    sync.WaitGroup
		work  = make(chan string)
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				evs, err := r.history(hc, w, id)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out[id] = evs
				mu.Unlock()
			}
		}()
	}
	for _, id := range orders {
		work <- id
	}
	close(work)
	wg.Wait()
	return out, first
}

func (r *run) history(hc *http.Client, w int, id string) ([]histEvent, error) {
	return readHistory[histEvent](context.Background(), hc, func(i int) string {
		live := r.live()
		return live[(w+i)%len(live)]
	}, id)
}

// readHistory reads an order's history (nil for an order that does not
// exist) through the node base(attempt) names, again after a failure, for
// up to 10 s or until ctx ends.
func readHistory[T any](ctx context.Context, hc *http.Client, base func(attempt int) string, id string) ([]T, error) {
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		res, err := hc.Get(base(i) + "/orders/" + id + "/history")
		if err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch res.StatusCode {
		case http.StatusNotFound:
			return nil, nil
		case http.StatusOK:
			var evs []T
			if err := json.Unmarshal(b, &evs); err != nil {
				return nil, fmt.Errorf("history of %s: %w", id, err)
			}
			return evs, nil
		}
		last = fmt.Errorf("%d %s", res.StatusCode, b)
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("history of %s: %w", id, last)
}
