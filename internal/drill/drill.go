package drill

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// Options of a drill run.
type Options struct {
	Binary  string        // path of the ordersystem binary
	Backend []string      // backend flags (--persistence redis --redis ...)
	Nodes   int           // cluster size (default 3)
	Workers int           // concurrent clients (default 16)
	Load    time.Duration // load before and after the fault (default 5 s each)
	Pause   time.Duration // SIGSTOP length of the pause drill (default 8 s)
	Kills   int           // kills of the failover-distribution drill (default 50)
	Probes  int           // orders probed per kill in failover-distribution (default 8)
	// FailoverBound is failover-distribution's goal for the p99 from kill
	// -9 until all probed orders answered (default 1 s).
	FailoverBound time.Duration
	// DrainDelay, if set, is the members' --drain-delay (nil: the node's
	// default, 5 s).
	DrainDelay *time.Duration
	// ProbeEvery, if positive, puts a load balancer in front of the
	// rolling drill's clients: they send only to the members whose
	// /health/ready answered 200 at its last probe, made this often. 0:
	// the drill takes a member out of the clients' list before its
	// SIGTERM itself (an external drain).
	ProbeEvery time.Duration
	// Victim, if set, names the server the backend-failover drill kills
	// instead of the leader of journal partition 0 (e.g. the leader of the
	// membership bucket).
	Victim func(ctx context.Context) (string, error)
	// NoFences makes the backend-failover drill fail when a member fences
	// itself while the server is down.
	NoFences bool
	// LogDir, if set, receives each node's output at the end of the drill
	// (<drill>-<node>.log).
	LogDir string
	// ClientTimeout bounds one client request (default 3 s).
	ClientTimeout time.Duration
	Logger        *slog.Logger
}

// Report is what a drill measured and found.
type Report struct {
	Drill        string
	Operations   int
	Orders       int
	Created      int64
	Codes        map[int]int
	Linearizable bool
	JournalOK    bool
	JournalError string
	// RecoveryTime is, for failover, the time from kill -9 until every order
	// last served by the dead node answered again from a survivor.
	RecoveryTime time.Duration
	Moved        int
	Errors       map[string]int
	// NoAnswer counts the requests that got no HTTP answer, by kind
	// (NoAnswerRefused, NoAnswerTimeout, ...).
	NoAnswer map[string]int
	Notes    []string
	// Backend is what the backend-failover drill measured (nil for the
	// other drills).
	Backend *BackendFigures
	// Distribution is what the failover-distribution drill measured (nil
	// for the other drills).
	Distribution *DistributionFigures
	// Failures are the checks of the membership drills (backend-restart,
	// slow-backend, clock-step) that failed; Figures what they measured.
	Failures []string
	Figures  []string
	// NodeLogs is what each node printed, by node id (see FailureLog).
	NodeLogs map[string]string
}

// FailureLog returns, for a drill that failed, the last lines of each
// node's output at level WARN or above (at most perNode per node), so that
// a failure in CI, where no log directory is kept, can be read afterwards;
// "" for a drill that passed.
func (r Report) FailureLog(perNode int) string {
	if r.OK() || len(r.NodeLogs) == 0 {
		return ""
	}
	ids := make([]string, 0, len(r.NodeLogs))
	for id := range r.NodeLogs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		var lines []string
		for _, l := range strings.Split(r.NodeLogs[id], "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "--- ") {
				lines = append(lines, l)
			}
		}
		skipped := max(len(lines)-perNode, 0)
		fmt.Fprintf(&b, "--- %s: the last %d of its %d WARN and ERROR lines\n", id, len(lines)-skipped, len(lines))
		for _, l := range lines[skipped:] {
			if len(l) > 600 {
				l = l[:600] + "..."
			}
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// OK reports whether the drill passed.
func (r Report) OK() bool {
	return r.Linearizable && r.JournalOK && (r.Backend == nil || len(r.Backend.Failures) == 0) &&
		(r.Distribution == nil || r.Distribution.failed() == "") && len(r.Failures) == 0
}

func (r Report) String() string {
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	s := fmt.Sprintf("%s %s: %d operations on %d orders (%d created), statuses %v, linearizable=%v, journals gap-free=%v",
		verdict, r.Drill, r.Operations, r.Orders, r.Created, r.Codes, r.Linearizable, r.JournalOK)
	if r.RecoveryTime > 0 {
		s += fmt.Sprintf(", %d orders of the killed node answered again after %s", r.Moved, r.RecoveryTime.Round(time.Millisecond))
	}
	if r.JournalError != "" {
		s += ", journal: " + r.JournalError
	}
	if r.Backend != nil {
		s += "; " + r.Backend.String()
		for _, f := range r.Backend.Failures {
			s += "\n  FAILED: " + f
		}
	}
	if d := r.Distribution; d != nil {
		s += "; " + d.String()
		if why := d.failed(); why != "" {
			s += "\n  FAILED: " + why
		}
	}
	for _, f := range r.Figures {
		s += "\n  " + f
	}
	for _, f := range r.Failures {
		s += "\n  FAILED: " + f
	}
	for msg, n := range r.Errors {
		s += fmt.Sprintf("\n  %d x %s", n, msg)
	}
	for kind, n := range r.NoAnswer {
		s += fmt.Sprintf("\n  %d x no answer: %s", n, kind)
	}
	for _, n := range r.Notes {
		s += "; " + n
	}
	return s
}

func (o *Options) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Workers == 0 {
		o.Workers = 16
	}
	if o.Load == 0 {
		o.Load = 5 * time.Second
	}
	if o.Pause == 0 {
		o.Pause = 8 * time.Second
	}
	if o.ClientTimeout == 0 {
		o.ClientTimeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

type run struct {
	opts    Options
	cluster *Cluster
	rec     *Recorder
	client  *Client
	down    sync.Map // node id -> true while it must not be used
	lb      atomic.Pointer[balancer]
	created atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
}

func start(name string, opts Options, prepare ...func(*Cluster) error) (*run, error) {
	opts.defaults()
	args := opts.Backend
	if opts.DrainDelay != nil {
		args = append(slices.Clone(args), "--drain-delay", opts.DrainDelay.String())
	}
	c, err := NewCluster(opts.Binary, opts.Nodes, args)
	if err != nil {
		return nil, err
	}
	for _, p := range prepare {
		if err := p(c); err != nil {
			return nil, err
		}
	}
	if err := c.Start(2 * time.Minute); err != nil { // a fresh JetStream cluster may take a while to elect every new stream's leader
		c.Close()
		return nil, err
	}
	r := &run{opts: opts, cluster: c, rec: NewRecorder(), done: make(chan struct{})}
	r.client = NewClient(r.rec, r.live, opts.ClientTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.client.Run(ctx, opts.Workers, &r.created); close(r.done) }()
	opts.Logger.Info("drill started", slog.String("drill", name), slog.Int("nodes", opts.Nodes))
	return r, nil
}

// live returns the URLs of the nodes the clients may use: those the load
// balancer found ready, if there is one.
func (r *run) live() []string {
	if b := r.lb.Load(); b != nil {
		return b.live()
	}
	var out []string
	for _, n := range r.cluster.Nodes {
		if _, down := r.down.Load(n.ID); !down {
			out = append(out, n.URL())
		}
	}
	return out
}

func (r *run) finish(name string) Report {
	r.cancel()
	<-r.done
	if b := r.lb.Load(); b != nil {
		b.close()
	}
	rep := Report{Drill: name, Created: r.created.Load(), Codes: r.rec.Codes(), Errors: r.rec.Errors(), NoAnswer: r.rec.NoAnswer()}
	res, n, bad := r.rec.Check(2 * time.Minute)
	rep.Operations, rep.Orders = n, len(r.rec.Orders())
	rep.Linearizable = res == porcupine.Ok
	if res != porcupine.Ok {
		rep.Notes = append(rep.Notes, fmt.Sprintf("porcupine result %v%s", res, bad))
	}
	rep.JournalOK, rep.JournalError = true, ""
	if err := r.checkJournals(); err != nil {
		rep.JournalOK, rep.JournalError = false, err.Error()
	}
	r.cluster.Close()
	rep.NodeLogs = make(map[string]string, len(r.cluster.Nodes))
	for _, n := range r.cluster.Nodes {
		rep.NodeLogs[n.ID] = n.AllLogs()
	}
	if r.opts.LogDir != "" {
		for _, n := range r.cluster.Nodes {
			path := filepath.Join(r.opts.LogDir, strings.ReplaceAll(name, " ", "-")+"-"+n.ID+".log")
			if err := os.WriteFile(path, []byte(n.AllLogs()), 0o644); err != nil {
				rep.Notes = append(rep.Notes, err.Error())
			}
		}
	}
	return rep
}

// abort stops the load, the load balancer and the nodes of a drill that
// cannot go on.
func (r *run) abort() {
	r.cancel()
	<-r.done
	if b := r.lb.Load(); b != nil {
		b.close()
	}
	r.cluster.Close()
}

// checkJournals reads every order's history through the live nodes:
// versions 1..n without gaps, and a valid path of the state machine (so no
// command was applied twice and no two writers both won).
func (r *run) checkJournals() error {
	orders := r.rec.Orders()
	hist, err := r.histories(orders)
	if err != nil {
		return err
	}
	want := []string{"OrderCreated", "OrderPaid", "OrderShipped", "OrderDelivered"}
	for _, id := range orders {
		evs := hist[id] // nil: a create whose outcome was unknown and did not happen
		for i, e := range evs {
			if e.Version != uint64(i+1) {
				return fmt.Errorf("order %s: event %d has version %d (gap or duplicate)", id, i, e.Version)
			}
			if i >= len(want) || e.Type != want[i] {
				var types []string
				for _, e := range evs {
					types = append(types, e.Type)
				}
				return fmt.Errorf("order %s: history %s is not a path of the state machine", id, strings.Join(types, ","))
			}
		}
	}
	return nil
}

// Failover: steady load, kill -9 of one node, time until every order the
// dead node served answers again from the survivors, then the node comes
// back with the same --node-id.
func Failover(opts Options) (Report, error) {
	r, err := start("failover", opts)
	if err != nil {
		return Report{}, err
	}
	time.Sleep(r.opts.Load)
	victim := r.cluster.Nodes[len(r.cluster.Nodes)-1]
	r.down.Store(victim.ID, true)
	moved := r.rec.Owners(victim.ID)
	victim.Kill()
	recovery, err := r.waitAnswered(moved, 60*time.Second)
	note := ""
	if err != nil {
		note = err.Error()
	}
	time.Sleep(r.opts.Load)
	if err := victim.Start(); err == nil {
		if err := victim.WaitReady(30 * time.Second); err == nil {
			r.down.Delete(victim.ID)
		}
	}
	time.Sleep(r.opts.Load / 2)
	rep := r.finish("failover")
	rep.RecoveryTime, rep.Moved = recovery, len(moved)
	if note != "" {
		rep.Notes = append(rep.Notes, note)
		rep.JournalOK = false
	}
	return rep, nil
}

// waitAnswered polls GET of every order through the live nodes until each
// answered 200 (or 404 for a create that never happened) and returns how
// long that took. Orders are polled concurrently, each request bounded by
// 500 ms: polled one after another with a long timeout, one request stuck on
// the dead owner just before the cluster noticed it added up to that
// timeout to the figure (failovers of 3 s measured as 5.6 s).
func (r *run) waitAnswered(orders []string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	work := make(chan string)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		last     time.Duration
		pending  = len(orders)
		deadline = start.Add(timeout)
	)
	for w := range min(16, max(1, len(orders))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				for i := w; time.Now().Before(deadline); i++ {
					live := r.live()
					res, err := hc.Get(live[i%len(live)] + "/orders/" + o)
					if err == nil {
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode == http.StatusOK || res.StatusCode == http.StatusNotFound {
							mu.Lock()
							last, pending = max(last, time.Since(start)), pending-1
							mu.Unlock()
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for _, o := range orders {
		work <- o
	}
	close(work)
	wg.Wait()
	if pending > 0 {
		return 0, fmt.Errorf("%d orders still unanswered after %s", pending, timeout)
	}
	return last, nil
}

// Pause: SIGSTOP a node for longer than its lease, SIGCONT: it must fence,
// rejoin, and no order may end up with two live writers.
func Pause(opts Options) (Report, error) {
	r, err := start("pause", opts)
	if err != nil {
		return Report{}, err
	}
	time.Sleep(r.opts.Load)
	victim := r.cluster.Nodes[0]
	r.down.Store(victim.ID, true)
	victim.Stop()
	time.Sleep(r.opts.Pause)
	victim.Cont()
	// Let it notice, fence and rejoin; then use it again.
	rejoined := victim.WaitReady(30 * time.Second)
	if rejoined == nil {
		r.down.Delete(victim.ID)
	}
	time.Sleep(r.opts.Load)
	rep := r.finish("pause")
	if rejoined != nil {
		rep.Notes = append(rep.Notes, "paused node did not become ready again: "+rejoined.Error())
		rep.JournalOK = false
	}
	if !strings.Contains(victim.Logs(), "fenced") {
		rep.Notes = append(rep.Notes, "the paused node did not log that it fenced itself")
	}
	return rep, nil
}

// Rolling: restart every node in turn (SIGTERM, start again, wait until
// it is ready) under load. With opts.ProbeEvery the clients sit behind a
// load balancer that knows only what readiness tells it (see balancer),
// and the drill counts what they saw: refused connections, timeouts, lost
// connections, 5xx. The members' drain delay (opts.DrainDelay, default
// 5 s) is what should keep them from seeing a refused connection: readiness
// answers 503 for that long before the port closes. A drain delay of at
// least two probe intervals leaves the balancer a probe and a spare to see
// the 503, so then any refused connection fails the drill. Without a
// balancer the drill takes each member out of the clients' list before its
// SIGTERM (a perfect external drain).
func Rolling(opts Options) (Report, error) {
	r, err := start("rolling-restart", opts)
	if err != nil {
		return Report{}, err
	}
	every := r.opts.ProbeEvery
	if every > 0 {
		r.lb.Store(newBalancer(r.cluster.Nodes, every))
	}
	time.Sleep(r.opts.Load)
	began := time.Now()
	for _, n := range r.cluster.Nodes {
		if every == 0 {
			r.down.Store(n.ID, true)
		}
		n.Term()
		if err := n.Start(); err != nil {
			r.abort()
			return Report{}, err
		}
		if err := n.WaitReady(60 * time.Second); err != nil {
			r.abort()
			return Report{}, err
		}
		r.down.Delete(n.ID)
		time.Sleep(r.opts.Load / 2)
	}
	took := time.Since(began)
	rep := r.finish("rolling-restart")
	if every == 0 {
		return rep, nil
	}
	drain := 5 * time.Second // the node's default
	if r.opts.DrainDelay != nil {
		drain = *r.opts.DrainDelay
	}
	failed := 0
	for code, n := range rep.Codes {
		if code >= 500 {
			failed += n
		}
	}
	refused := rep.NoAnswer[NoAnswerRefused]
	rep.Figures = append(rep.Figures, fmt.Sprintf("behind a load balancer probing readiness every %s, members with --drain-delay %s: "+
		"%d refused connections, %d timeouts (%s), %d lost connections, %d other transport errors, %d 5xx answers; the %d restarts took %s",
		every, drain, refused, rep.NoAnswer[NoAnswerTimeout], r.opts.ClientTimeout, rep.NoAnswer[NoAnswerLost], rep.NoAnswer[NoAnswerOther],
		failed, len(r.cluster.Nodes), took.Round(100*time.Millisecond)))
	if why := drainFailure(refused, drain, every); why != "" {
		rep.Failures = append(rep.Failures, why)
	}
	return rep, nil
}

// drainFailure says why refused connections in a rolling restart behind a
// load balancer probing every interval fail the drill ("" if they do not):
// with a drain delay of at least two probe intervals the balancer has seen
// readiness 503 before the port closes, so no connection may be refused.
// A shorter delay is measured, not judged.
func drainFailure(refused int, drain, every time.Duration) string {
	if every <= 0 || drain < 2*every || refused == 0 {
		return ""
	}
	return fmt.Sprintf("%d refused connections with --drain-delay %s, at least twice the probe interval %s (want 0)", refused, drain, every)
}

// Cutoff: one node reaches the backend through a proxy that is cut for
// longer than the lease: that node must fence (its lease cannot be renewed),
// the others carry on, and it rejoins when the backend is back.
func Cutoff(opts Options) (Report, error) {
	var proxy *Proxy
	var victim *Node
	r, err := start("backend-cutoff", opts, func(c *Cluster) error {
		victim = c.Nodes[len(c.Nodes)-1]
		for i, a := range victim.args {
			if (a == "--redis" || a == "--nats") && i+1 < len(victim.args) {
				target := strings.TrimPrefix(victim.args[i+1], "nats://")
				p, err := NewProxy(target)
				if err != nil {
					return err
				}
				proxy = p
				if a == "--nats" {
					victim.args[i+1] = "nats://" + p.Addr()
				} else {
					victim.args[i+1] = p.Addr()
				}
			}
		}
		if proxy == nil {
			return fmt.Errorf("cutoff drill: no --redis or --nats flag to proxy")
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	defer proxy.Close()
	time.Sleep(r.opts.Load)
	r.down.Store(victim.ID, true)
	proxy.Cut()
	// The others must carry on: their requests keep succeeding.
	time.Sleep(r.opts.Pause)
	proxy.Restore()
	rejoined := victim.WaitReady(30 * time.Second)
	if rejoined == nil {
		r.down.Delete(victim.ID)
	}
	time.Sleep(r.opts.Load)
	rep := r.finish("backend-cutoff")
	if rejoined != nil {
		rep.Notes = append(rep.Notes, "cut-off node did not become ready again: "+rejoined.Error())
		rep.JournalOK = false
	}
	if !strings.Contains(victim.Logs(), "fenced") {
		rep.Notes = append(rep.Notes, "the cut-off node did not fence itself")
		rep.JournalOK = false
	}
	return rep, nil
}
