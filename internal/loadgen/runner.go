package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// warmupTimeout bounds the warm-up that creates the order pool.
const warmupTimeout = time.Minute

// maxListPerWorker bounds each per-worker list of orders waiting for their
// next transition in the mix scenario, so memory stays bounded on long runs.
const maxListPerWorker = 1024

// kind is how a scenario picks its next request.
type kind uint8

const (
	kindSingle    kind = iota // one operation without an order
	kindPool                  // one operation on a random pool order
	kindLifecycle             // create, pay, ship, deliver, history, repeat
	kindMix                   // weighted operations
)

// runner holds what the workers of one Run share; it is read-only while
// they run.
type runner struct {
	cfg     Config
	rt      *http.Transport
	targets []*target
	kind    kind
	op      Op // kindSingle, kindPool
	picker  picker
	pool    []string // warm-up orders; read-only once the measured phase starts
	// poolRoute, set for a routed run (Config.Route), says where the reads
	// of pool[i] go; read-only like pool.
	poolRoute []poolRoute
	routed    bool // cfg.routed(): record X-Order-Owner of every answer
}

// Run runs cfg.Scenario and reports on it. It returns an error when cfg is
// invalid or, for a routed run (cfg.Route owner or other), when a target's
// node id or an order's owner cannot be matched with the targets; a scenario
// whose every request failed is a report with zero Successes (see
// CheckSuccess). The measured phase lasts cfg.Duration at most, or less when
// ctx ends first (the report then has a note).
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	r := &runner{cfg: cfg, routed: cfg.routed()}
	for _, s := range cfg.Targets {
		u, err := parseTarget(s, cfg.AllowRemote)
		if err != nil {
			return Report{}, err
		}
		r.targets = append(r.targets, newTarget(u, &cfg))
	}
	r.rt = newTransport(&cfg, len(r.targets))
	defer r.rt.CloseIdleConnections()
	if cfg.routed() {
		if err := r.learnNodes(ctx); err != nil {
			return Report{}, err
		}
	}

	switch cfg.Scenario {
	case "live":
		r.kind, r.op = kindSingle, OpLive
	case "ready":
		r.kind, r.op = kindSingle, OpReady
	case "create":
		r.kind, r.op = kindSingle, OpCreate
	case "list":
		r.kind, r.op = kindSingle, OpList
	case "stats":
		r.kind, r.op = kindSingle, OpStats
	case "read":
		r.kind, r.op = kindPool, OpRead
	case "history":
		r.kind, r.op = kindPool, OpHistory
	case "lifecycle":
		r.kind = kindLifecycle
	case "mix":
		r.kind = kindMix
		r.picker = newPicker(cfg.Mix)
	}

	rep := Report{
		Scenario:     cfg.Scenario,
		Targets:      append([]string(nil), cfg.Targets...),
		Mode:         "closed",
		Concurrency:  cfg.Concurrency,
		GeneratorCPU: -1,
		Status:       map[int]uint64{},
		Errors:       map[string]uint64{},
	}
	if cfg.Rate > 0 {
		rep.Mode, rep.Rate = "open", cfg.Rate
	}
	if r.kind == kindMix {
		rep.Mix = cfg.Mix.String()
	}
	if cfg.routed() {
		rep.Route = cfg.Route
		for _, t := range r.targets {
			rep.Nodes = append(rep.Nodes, t.nodeID)
		}
	}

	var perWorker [][]string
	if cfg.needsPool() {
		var note string
		var owners []string
		r.pool, owners, perWorker, note = r.warmup(ctx)
		rep.WarmupOrders = len(r.pool)
		if note != "" {
			rep.Notes = append(rep.Notes, note)
		}
		if len(r.pool) == 0 {
			rep.GOMAXPROCS = runtime.GOMAXPROCS(0)
			return rep, nil
		}
		if cfg.routed() {
			if err := r.routePool(owners); err != nil {
				return Report{}, err
			}
		}
	}

	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		w := newWorker(r, i)
		if r.kind == kindMix && perWorker != nil {
			for _, id := range perWorker[i] {
				w.pending.put(id)
			}
		}
		workers[i] = w
	}
	var b *budget
	if cfg.MaxRequests > 0 {
		b = &budget{}
		b.left.Store(int64(cfg.MaxRequests))
		for _, w := range workers {
			w.budget = b
		}
	}

	cpu0, cpuOK := cpuTime()
	start := time.Now()
	runCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer cancel()
	if cfg.Rate > 0 {
		rep.Dropped = r.openLoop(runCtx, workers)
	} else {
		r.closedLoop(runCtx, workers)
	}
	rep.Elapsed = time.Since(start)
	cpu1, _ := cpuTime()

	recs := make([]*recorder, len(workers))
	for i, w := range workers {
		recs[i] = &w.rec
	}
	buildReport(&rep, recs)
	if cfg.routed() {
		rt := rep.Routing
		if rt == nil {
			rt = &Routing{}
			rep.Routing = rt
		}
		if rt.Moved > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf(
				"%d of %d requests were answered by a node other than the order's owner at warm-up: owners moved during the run, so the owner/other split is not clean",
				rt.Moved, rep.Requests))
		}
	}
	if cpuOK && rep.Elapsed > 0 {
		rep.GeneratorCPU = (cpu1 - cpu0).Seconds() / rep.Elapsed.Seconds()
		if rep.GeneratorCPU >= 0.85*float64(rep.GOMAXPROCS) {
			rep.Notes = append(rep.Notes, fmt.Sprintf(
				"the generator kept %.2f of its %d processors busy: it may be the bottleneck; give it other cores (taskset) or fewer workers",
				rep.GeneratorCPU, rep.GOMAXPROCS))
		}
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("interrupted after %.2fs of %s", rep.Elapsed.Seconds(), cfg.Duration))
	}
	return rep, nil
}

// closedLoop runs every worker back to back until runCtx ends or the
// request budget is spent.
func (r *runner) closedLoop(runCtx context.Context, workers []*worker) {
	var stopped atomic.Bool
	stop := context.AfterFunc(runCtx, func() { stopped.Store(true) })
	defer stop()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			defer w.release()
			for !stopped.Load() && w.step(runCtx) {
			}
		})
	}
	wg.Wait()
}

// openLoop starts requests at cfg.Rate per second on whichever worker is
// free. A start that finds every worker busy waits in a backlog of
// openBacklog starts; when that is full too, the start is dropped. It
// returns the number of dropped starts.
func (r *runner) openLoop(runCtx context.Context, workers []*worker) uint64 {
	limit := int64(len(workers)) + openBacklog(r.cfg)
	ticks := make(chan struct{}, limit) // outstanding < limit, so a send never blocks
	var outstanding atomic.Int64
	spent := make(chan struct{})
	var spentOnce sync.Once
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			ctx := runCtx
			defer w.release()
			for range ticks {
				if ctx.Err() != nil {
					return
				}
				if !w.step(ctx) {
					if ctx.Err() == nil {
						spentOnce.Do(func() { close(spent) })
					}
					return
				}
				outstanding.Add(-1)
			}
		})
	}

	var dropped, sent uint64
	rate := r.cfg.Rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	end, _ := runCtx.Deadline()
pace:
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := uint64(float64(now.Sub(start))*rate/1e9) + 1
		for ; sent < due; sent++ {
			if outstanding.Load() >= limit {
				dropped++
				continue
			}
			outstanding.Add(1)
			ticks <- struct{}{}
		}
		wait := time.Duration(float64(sent)*1e9/rate) - time.Since(start)
		timer.Reset(max(wait, 0))
		select {
		case <-runCtx.Done():
			break pace
		case <-spent:
			break pace
		case <-timer.C:
		}
	}
	close(ticks)
	wg.Wait()
	return dropped
}

// openBacklog is how many open-loop starts may wait for a free worker:
// 50 ms of schedule, at least Concurrency, so that a short stall of the
// generator or the server does not turn into dropped starts.
func openBacklog(cfg Config) int64 {
	return min(max(int64(cfg.Concurrency), int64(cfg.Rate/20)), 1_000_000)
}

// warmup creates cfg.Pool orders with up to cfg.Concurrency workers, and
// returns them all, for a routed run their owners (owners[i] owns all[i],
// from X-Order-Owner; nil otherwise), the orders split by worker, and a note
// when it fell short.
func (r *runner) warmup(ctx context.Context) (all, owners []string, perWorker [][]string, note string) {
	ctx, cancel := context.WithTimeout(ctx, warmupTimeout)
	defer cancel()
	n := r.cfg.Pool
	ws := make([]*worker, min(r.cfg.Concurrency, n))
	ids := make([][]string, len(ws))
	own := make([][]string, len(ws))
	routed := r.routed
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = newWorker(r, i)
		wg.Go(func() {
			defer ws[i].release()
			for ctx.Err() == nil && claimed.Add(1) <= int64(n) {
				id, ok, _ := ws[i].send(ctx, OpCreate, "")
				if ok {
					ids[i] = append(ids[i], id)
					if routed {
						own[i] = append(own[i], ws[i].owner)
					}
				}
			}
		})
	}
	wg.Wait()

	perWorker = make([][]string, r.cfg.Concurrency)
	for i, l := range ids {
		for _, id := range l {
			perWorker[len(all)%len(perWorker)] = append(perWorker[len(all)%len(perWorker)], id)
			all = append(all, id)
		}
		if routed {
			owners = append(owners, own[i]...)
		}
	}
	if len(all) < n {
		var rep Report
		recs := make([]*recorder, len(ws))
		for i, w := range ws {
			recs[i] = &w.rec
		}
		buildReport(&rep, recs)
		note = fmt.Sprintf("warm-up created %d of %d orders (POST /orders status=%s errors=%s)",
			len(all), n, fmtStatus(rep.Status), fmtErrors(rep.Errors))
		if len(all) == 0 {
			note += "; nothing to measure"
		}
	}
	return all, owners, perWorker, note
}

// budget counts down the requests a run may still send.
type budget struct{ left atomic.Int64 }

func (b *budget) take() bool { return b.left.Add(-1) >= 0 }

// worker is one closed-loop client. Its fields are its own: nothing here is
// shared with other workers except the runner, which is read-only.
type worker struct {
	r      *runner
	rec    recorder
	budget *budget // nil: unlimited
	next   int     // round-robin index into r.targets
	create []byte  // this worker's POST /orders body
	owner  string  // routed runs: X-Order-Owner of the last answer, "" if none

	// lifecycle scenario
	lcOp Op
	lcID string

	// mix scenario: orders waiting for their next transition
	pending, paid, shipped idList

	dl deadline // per-request timeout, see arm
}

func newWorker(r *runner, i int) *worker {
	return &worker{
		r:      r,
		next:   i % len(r.targets),
		create: createBody(i),
		lcOp:   OpCreate,
	}
}

// step sends one request of the scenario; false means the run is over.
func (w *worker) step(ctx context.Context) bool {
	r := w.r
	switch r.kind {
	case kindSingle:
		_, _, more := w.send(ctx, r.op, "")
		return more
	case kindPool:
		i := rand.IntN(len(r.pool))
		if r.poolRoute != nil {
			return w.routedStep(ctx, i)
		}
		_, _, more := w.send(ctx, r.op, r.pool[i])
		return more
	case kindLifecycle:
		return w.lifecycle(ctx)
	default:
		return w.mix(ctx)
	}
}

// lifecycleNext is the operation after a successful one.
var lifecycleNext = [numOps]Op{
	OpCreate:  OpPay,
	OpPay:     OpShip,
	OpShip:    OpDeliver,
	OpDeliver: OpHistory,
	OpHistory: OpCreate,
}

func (w *worker) lifecycle(ctx context.Context) bool {
	op := w.lcOp
	id, ok, more := w.send(ctx, op, w.lcID)
	switch {
	case !more:
		return false
	case !ok:
		w.lcOp, w.lcID = OpCreate, ""
	case op == OpCreate:
		w.lcOp, w.lcID = OpPay, id
	default:
		w.lcOp = lifecycleNext[op]
	}
	return true
}

func (w *worker) mix(ctx context.Context) bool {
	r := w.r
	op := r.picker.pick(rand.Uint64N(r.picker.total))
	var from, to *idList
	switch op {
	case OpPay:
		from, to = &w.pending, &w.paid
	case OpShip:
		from, to = &w.paid, &w.shipped
	case OpDeliver:
		from = &w.shipped
	case OpCancel:
		from = &w.pending
	}
	var id string
	switch {
	case from != nil:
		var ok bool
		if id, ok = from.take(); !ok {
			op = OpCreate
			w.rec.fallbacks++
		}
	case op.needsOrder():
		id = r.pool[rand.IntN(len(r.pool))]
	}
	newID, ok, more := w.send(ctx, op, id)
	if !more {
		return false
	}
	// On failure the order is dropped: a 409 means it is not in the state
	// we thought, a timeout leaves its state unknown.
	if ok {
		if op == OpCreate {
			w.pending.put(newID)
		} else if to != nil {
			to.put(id)
		}
	}
	return true
}

// send performs one request of op (on order id when op needs one) against
// the next target, round-robin; see sendTo.
func (w *worker) send(ctx context.Context, op Op, id string) (orderID string, ok, more bool) {
	t := w.r.targets[w.next]
	if w.next++; w.next == len(w.r.targets) {
		w.next = 0
	}
	return w.sendTo(ctx, t, op, id)
}

// sendTo performs one request of op (on order id when op needs one) against
// target t. It returns the new order's id for a successful create, whether
// the answer was 2xx, and more=false when the run is over: the budget is
// spent or ctx ended (a request cut short by ctx is counted as aborted, not
// as a request). In a routed run it leaves the answer's X-Order-Owner in
// w.owner.
func (w *worker) sendTo(ctx context.Context, t *target, op Op, id string) (orderID string, ok, more bool) {
	if w.budget != nil && !w.budget.take() {
		return "", false, false
	}
	routed := w.r.routed
	if routed {
		w.owner = ""
	}
	req := t.tmpl[op].WithContext(w.arm(ctx))
	if op.needsOrder() {
		req.URL = t.orderURL(op, id)
	}
	var b []byte
	switch op {
	case OpCreate:
		b = w.create
	case OpPay:
		b = payBody
	case OpShip:
		b = shipBody
	}
	if b != nil {
		req.Body = newBody(b)
		req.ContentLength = int64(len(b))
	}

	start := time.Now()
	resp, err := w.r.rt.RoundTrip(req)
	if err != nil {
		return w.failed(ctx, op, err, w.disarm())
	}
	code := resp.StatusCode
	ok = code >= 200 && code < 300
	if routed {
		w.owner = resp.Header.Get(OwnerHeader)
	}
	if op == OpCreate && ok {
		if orderID = idFromLocation(resp.Header.Get("Location")); orderID == "" {
			orderID, err = idFromBody(resp.Body)
		}
	}
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	d := time.Since(start)
	timedOut := w.disarm()
	if err != nil {
		return w.failed(ctx, op, err, timedOut)
	}
	if op == OpCreate && ok && orderID == "" {
		w.rec.badResponse(op, code, d)
		return "", false, true
	}
	w.rec.response(op, code, d)
	return orderID, ok, true
}

func (w *worker) failed(ctx context.Context, op Op, err error, timedOut bool) (string, bool, bool) {
	if ctx.Err() != nil {
		w.rec.aborted++
		w.release() // its context is canceled with ctx
		return "", false, false
	}
	kind := classify(err)
	if timedOut {
		kind = ekTimeout
	}
	w.rec.failure(op, kind)
	return "", false, true
}

// deadline is a worker's reusable per-request timeout: a context canceled
// by a timer. Arming it costs a timer reset instead of the four allocations
// of a context.WithTimeout per request; it is rebuilt only after it fired.
type deadline struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
}

// arm starts the per-request timeout and returns the request's context.
func (w *worker) arm(parent context.Context) context.Context {
	d := &w.dl
	if d.timer != nil && d.parent == parent {
		d.timer.Reset(w.r.cfg.Timeout)
		return d.ctx
	}
	w.release()
	ctx, cancel := context.WithCancel(parent)
	*d = deadline{parent: parent, ctx: ctx, cancel: cancel, timer: time.AfterFunc(w.r.cfg.Timeout, cancel)}
	return ctx
}

// disarm stops the timeout of the request that just ended and reports
// whether it had expired (its context is then canceled and is dropped).
func (w *worker) disarm() bool {
	if w.dl.timer.Stop() {
		return false
	}
	w.release()
	return true
}

// release drops the deadline; the worker calls it when it is done.
func (w *worker) release() {
	if w.dl.timer != nil {
		w.dl.timer.Stop()
		w.dl.cancel()
	}
	w.dl = deadline{}
}

// idFromBody reads orderId from a create answer without a usable Location.
func idFromBody(body io.Reader) (string, error) {
	var v struct {
		OrderID string `json:"orderId"`
	}
	data, err := io.ReadAll(io.LimitReader(body, 1<<20))
	if err != nil {
		return "", err
	}
	if json.Unmarshal(data, &v) != nil {
		return "", nil
	}
	return v.OrderID, nil
}

// idList is a bounded bag of order ids; take returns a random one.
type idList struct{ ids []string }

func (l *idList) put(id string) {
	if len(l.ids) < maxListPerWorker {
		l.ids = append(l.ids, id)
		return
	}
	l.ids[rand.IntN(len(l.ids))] = id
}

func (l *idList) take() (string, bool) {
	n := len(l.ids)
	if n == 0 {
		return "", false
	}
	i := rand.IntN(n)
	id := l.ids[i]
	l.ids[i] = l.ids[n-1]
	l.ids[n-1] = ""
	l.ids = l.ids[:n-1]
	return id, true
}
