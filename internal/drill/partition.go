package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The ports every member uses inside its own namespace (each namespace has
// its own port space and address).
const (
	partitionHTTPPort   = 8080
	partitionRemotePort = 9080
)

// ownerRecheck is how long after the first owner check the members are
// asked again; the drill fails on the disagreements that last.
const ownerRecheck = 15 * time.Second

// PartitionFigures is what one round of the partition drill measured.
type PartitionFigures struct {
	Cut    string        // the member whose node-to-node port was cut
	Hold   time.Duration // how long the cut held
	Before time.Duration // the load window before the cut the rates compare with
	// Requests by the owner of the order (Cut or another member) and the
	// member the request went through, invoked during the cut.
	ViaOthers, ViaCut, OthersViaCut, OthersViaOthers RequestFigures
	// Back is when, after the heal, a request for the cut member's orders
	// through another member first succeeded (invoked after the heal).
	Back time.Duration
	// Probes: from the cut until Load after the heal, every 200 ms a read
	// of one of ProbeOrders of the cut member's orders and of the others'
	// through each member (at most 4 in flight per member), by member
	// gone through; ProbeBack as Back.
	ProbeOrders         int
	ProbeCut, ProbeRest map[string]RequestFigures
	ProbeBack           time.Duration
	// Acknowledged writes (create, pay, ship, deliver) that returned in
	// the window before the cut and during the cut.
	AckedBefore, AckedDuring int
	// Readiness is, per member, the statuses of GET /health/ready polled
	// during the cut; Listed the member counts GET / showed then.
	Readiness map[string]map[int]int
	Listed    map[string][]int
	// Changed is the member stopped (SIGTERM) and started again after the
	// heal, the membership change.
	Changed string
	// Owner agreement over every order of the history, asked of every
	// member (GET /orders/{id}, X-Order-Owner): after the heal, 5 s after
	// the restarted member was ready (Soon) and ownerRecheck later.
	// Unanswered counts orders some member did not answer for (5xx or no
	// answer within 5 s).
	Disagree, Unanswered         int
	DisagreeSoon, UnansweredSoon int
	DisagreeHeal, UnansweredHeal int
	Examples                     []string
	// Digests is each member's view.digest of GET / at the end.
	Digests map[string]string
	// Acknowledged writes checked in the journals at the end, and lost.
	Acked, Lost int
	Failures    []string
}

// RequestFigures sums up a class of requests.
type RequestFigures struct {
	OK, Failed    int           // definite answers (2xx, 4xx) and 5xx or none
	P50, P99, Max time.Duration // latency of all of them
	// Stall is the longest stretch of the cut with no successful answer
	// returning in the class (the whole cut when none did).
	Stall time.Duration
}

func (f RequestFigures) String() string {
	return fmt.Sprintf("%d ok / %d failed, p50 %s p99 %s max %s, longest stall %s", f.OK, f.Failed,
		f.P50.Round(time.Millisecond), f.P99.Round(time.Millisecond), f.Max.Round(time.Millisecond), f.Stall.Round(time.Millisecond))
}

func (f *PartitionFigures) String() string {
	var b strings.Builder
	if f.Hold == 0 {
		fmt.Fprintf(&b, "control round without a cut of %s (the during-the-cut figures are of an empty window)", f.Cut)
	} else {
		fmt.Fprintf(&b, "%s's node-to-node port cut for %s", f.Cut, f.Hold)
	}
	probes := func(m map[string]RequestFigures) string {
		var ids, out []string
		for id := range m {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			out = append(out, "via "+id+": "+m[id].String())
		}
		return strings.Join(out, "; ")
	}
	fmt.Fprintf(&b, "\n  probes of %d of its orders during the cut (a read every 200 ms through each member, answered or not): %s", f.ProbeOrders, probes(f.ProbeCut))
	if f.ProbeBack > 0 {
		fmt.Fprintf(&b, "; through the others first success %s after the heal", f.ProbeBack.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n  probes of %d of the others' orders: %s", f.ProbeOrders, probes(f.ProbeRest))
	fmt.Fprintf(&b, "\n  workload, its orders through the others: %s", f.ViaOthers)
	if f.Back > 0 {
		fmt.Fprintf(&b, "; first success %s after the heal", f.Back.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n  workload, its orders through itself: %s", f.ViaCut)
	fmt.Fprintf(&b, "\n  workload, the others' orders through it: %s", f.OthersViaCut)
	fmt.Fprintf(&b, "\n  workload, the others' orders through the others: %s", f.OthersViaOthers)
	rate := func(n int, d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
	}
	fmt.Fprintf(&b, "\n  acknowledged writes: %d in the %s before the cut (%s), %d during it (%s)",
		f.AckedBefore, f.Before, rate(f.AckedBefore, f.Before), f.AckedDuring, rate(f.AckedDuring, f.Hold))
	var ids []string
	for id := range f.Readiness {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var ready []string
	for _, id := range ids {
		ready = append(ready, fmt.Sprintf("%s %v lists %v members", id, f.Readiness[id], compact(f.Listed[id])))
	}
	fmt.Fprintf(&b, "\n  during the cut, /health/ready statuses and GET / member counts: %s", strings.Join(ready, "; "))
	fmt.Fprintf(&b, "\n  owner disagreements: %d after the heal (%d unanswered); after restarting %s: %d at +5s (%d unanswered), %d at +%s (%d unanswered)",
		f.DisagreeHeal, f.UnansweredHeal, f.Changed, f.DisagreeSoon, f.UnansweredSoon, f.Disagree, 5*time.Second+ownerRecheck, f.Unanswered)
	for _, e := range f.Examples {
		fmt.Fprintf(&b, "\n    e.g. %s", e)
	}
	ids = ids[:0]
	for id := range f.Digests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var ds []string
	same := true
	for _, id := range ids {
		ds = append(ds, id+"="+f.Digests[id])
		same = same && f.Digests[id] == f.Digests[ids[0]]
	}
	fmt.Fprintf(&b, "\n  view digests at the end: %s (equal=%v)", strings.Join(ds, " "), same)
	fmt.Fprintf(&b, "\n  acknowledged writes lost: %d of %d", f.Lost, f.Acked)
	for _, s := range f.Failures {
		b.WriteString("\n  FAILED: " + s)
	}
	return b.String()
}

// compact lists the distinct values of xs in order of first appearance.
func compact(xs []int) []int {
	var out []int
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func (f *PartitionFigures) fail(format string, args ...any) {
	f.Failures = append(f.Failures, fmt.Sprintf(format, args...))
}

// Partition runs the partition drill, one round per hold: every member in
// its own network namespace (see Net) on a private Redis bound to the
// bridge, a workload through every member; iptables inside the last
// member's namespace drops its node-to-node traffic with the other members
// (both directions; backend and HTTP stay open) for hold, then heals it;
// after Load more of load the first member is stopped (SIGTERM) and
// started again, the membership change; a few seconds later every member
// is asked for the owner of every order of the history. It fails on
// acknowledged writes lost, a history that is not linearizable, journals
// with gaps, or members that disagree on an owner after the change; the
// availability figures are measured, not judged. dir holds the Redis data.
func Partition(opts Options, dir string, holds []time.Duration) ([]PartitionReport, error) {
	opts.defaults()
	nt, err := NewNet(opts.Nodes)
	if err != nil {
		return nil, err
	}
	defer nt.Close()
	var reps []PartitionReport
	for k, hold := range holds {
		d := filepath.Join(dir, "partition-"+strconv.Itoa(k))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return reps, err
		}
		rep, err := partitionRound(opts, nt, d, hold)
		if err != nil {
			return reps, fmt.Errorf("partition %s: %w", hold, err)
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// sample is one request the workload made.
type sample struct {
	probe  bool
	base   string // the URL of the member it went through
	member int    // its index
	order  string
	at     time.Time
	took   time.Duration
	code   int
}

func (s sample) ok() bool { return s.code >= 200 && s.code < 500 }

func partitionRound(opts Options, nt *Net, dir string, hold time.Duration) (PartitionReport, error) {
	redis, stopRedis, err := StartRedisOn(dir, nt.HostAddr(), "127.0.0.1")
	if err != nil {
		return PartitionReport{}, err
	}
	c := &Cluster{}
	byURL := map[string]int{}
	for i := range opts.Nodes {
		id := "node" + strconv.Itoa(i+1)
		args := []string{"--cluster", "--node-id", id, "--http-host", nt.Addr(i), "--port", strconv.Itoa(partitionHTTPPort),
			"--remote-port", strconv.Itoa(partitionRemotePort), "--advertise-host", nt.Addr(i), "--log-level", "info", "--shutdown-timeout", "20s",
			"--persistence", "redis", "--transport", "redis", "--redis", redis}
		bin, args := nt.Command(i, opts.Binary, args...)
		n := &Node{ID: id, HTTPPort: partitionHTTPPort, Host: nt.Addr(i), bin: bin, args: args}
		c.Nodes = append(c.Nodes, n)
		byURL[n.URL()] = i
	}
	var closeOnce sync.Once
	stop := func() { closeOnce.Do(func() { c.Close(); stopRedis() }) }
	nt.OnClose(stop)
	defer stop()
	if err := c.Start(60 * time.Second); err != nil {
		return PartitionReport{}, err
	}
	cut, changed := len(c.Nodes)-1, 0
	victim := c.Nodes[cut]
	fig := &PartitionFigures{Cut: victim.ID, Hold: hold, Before: opts.Load, Changed: c.Nodes[changed].ID}
	name := "partition-" + hold.String()

	var (
		mu      sync.Mutex
		samples []sample
	)
	r := &run{opts: opts, cluster: c, rec: NewRecorder(), done: make(chan struct{})}
	// Longer than the members' 10 s --request-timeout: the drill sees what
	// a member answers, not its own timeout.
	r.client = NewClient(r.rec, r.live, 12*time.Second)
	observe(r.client, func(s sample) {
		s.member = byURL[s.base]
		mu.Lock()
		samples = append(samples, s)
		mu.Unlock()
	})
	r.startLoad()
	opts.Logger.Info("drill started", slog.String("drill", name), slog.Int("nodes", opts.Nodes))
	time.Sleep(opts.Load)

	owners := r.rec.ownerMap()
	cutAt := time.Now()
	if hold > 0 {
		if err := nt.Cut(cut, partitionRemotePort); err != nil {
			r.stopLoad()
			return PartitionReport{}, err
		}
		opts.Logger.Info("node-to-node port cut", slog.String("node_id", victim.ID), slog.Duration("hold", hold))
	}
	pollCtx, endPoll := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() { fig.Readiness, fig.Listed = pollMembers(pollCtx, c); close(polled) }()
	mine, rest := probeSet(owners, victim.ID, r.rec, 16)
	fig.ProbeOrders = len(mine)
	probeCtx, endProbe := context.WithCancel(context.Background())
	defer endProbe()
	probed := make(chan struct{})
	go func() {
		probe(probeCtx, r.rec, c, [][]string{mine, rest}, func(s sample) {
			s.member, s.probe = byURL[s.base], true
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		})
		close(probed)
	}()
	time.Sleep(hold)
	endPoll()
	<-polled
	healAt := time.Now()
	if hold > 0 {
		if err := nt.Heal(cut); err != nil {
			r.stopLoad()
			return PartitionReport{}, err
		}
	}
	opts.Logger.Info("healed", slog.String("node_id", victim.ID))
	time.Sleep(opts.Load)
	endProbe()
	<-probed

	// Owners under the whole cluster, for the orders first seen in the cut.
	heal := askOwners(c, r.rec.Orders(), 0)
	fig.DisagreeHeal, fig.UnansweredHeal, _ = agreement(heal)

	// The membership change.
	other := c.Nodes[changed]
	r.down.Store(other.ID, true)
	other.Term()
	if err := other.Start(); err != nil {
		r.stopLoad()
		return PartitionReport{}, err
	}
	if err := other.WaitReady(60 * time.Second); err != nil {
		fig.fail("%s did not become ready again after its restart: %v", other.ID, err)
	} else {
		r.down.Delete(other.ID)
	}
	time.Sleep(5 * time.Second)
	r.stopLoad()
	end := askOwners(c, r.rec.Orders(), 0)
	fig.DisagreeSoon, fig.UnansweredSoon, fig.Examples = agreement(end)
	// Asked again later: a split that lasts, not a handover still under way.
	time.Sleep(ownerRecheck)
	end = askOwners(c, r.rec.Orders(), 0)
	var later []string
	fig.Disagree, fig.Unanswered, later = agreement(end)
	if fig.Disagree > 0 {
		fig.Examples = later
		fig.fail("%d orders have different owners on different members %s after the heal and the restart of %s", fig.Disagree, 5*time.Second+ownerRecheck, other.ID)
	}
	fig.Digests = digests(c)

	// Who owns what, for the figures: the owner seen before the cut, else
	// the one most members named after the heal.
	ownerOf := func(o string) string {
		if id, ok := owners[o]; ok {
			return id
		}
		return majority(heal[o])
	}
	mu.Lock()
	all := samples
	mu.Unlock()
	classes := [4][]sample{}
	probeCut, probeRest := map[string][]sample{}, map[string][]sample{}
	var back, probeBack time.Time
	for _, s := range all {
		own := ownerOf(s.order) == victim.ID
		if s.probe {
			id := c.Nodes[s.member].ID
			switch {
			case s.at.Before(cutAt):
			case !s.at.Before(healAt):
				if own && s.member != cut && s.ok() && (probeBack.IsZero() || s.at.Add(s.took).Before(probeBack)) {
					probeBack = s.at.Add(s.took)
				}
			case own:
				probeCut[id] = append(probeCut[id], s)
			default:
				probeRest[id] = append(probeRest[id], s)
			}
			continue
		}
		switch {
		case s.at.Before(cutAt):
			continue
		case !s.at.Before(healAt):
			if own && s.member != cut && s.ok() && (back.IsZero() || s.at.Add(s.took).Before(back)) {
				back = s.at.Add(s.took)
			}
			continue
		}
		k := 0
		switch {
		case own && s.member != cut:
			k = 0
		case own:
			k = 1
		case s.member == cut:
			k = 2
		default:
			k = 3
		}
		classes[k] = append(classes[k], s)
	}
	fig.ViaOthers = requestFigures(classes[0], cutAt, healAt)
	fig.ViaCut = requestFigures(classes[1], cutAt, healAt)
	fig.OthersViaCut = requestFigures(classes[2], cutAt, healAt)
	fig.OthersViaOthers = requestFigures(classes[3], cutAt, healAt)
	if !back.IsZero() {
		fig.Back = back.Sub(healAt)
	}
	if !probeBack.IsZero() {
		fig.ProbeBack = probeBack.Sub(healAt)
	}
	fig.ProbeCut, fig.ProbeRest = map[string]RequestFigures{}, map[string]RequestFigures{}
	for _, n := range c.Nodes {
		fig.ProbeCut[n.ID] = requestFigures(probeCut[n.ID], cutAt, healAt)
		fig.ProbeRest[n.ID] = requestFigures(probeRest[n.ID], cutAt, healAt)
	}
	fig.AckedBefore = ackedIn(r, cutAt.Add(-opts.Load), cutAt)
	fig.AckedDuring = ackedIn(r, cutAt, healAt)

	lost := &BackendFigures{Durable: true}
	fig.Acked, fig.Lost = r.checkAcknowledged(lost, "at the end")
	fig.Failures = append(fig.Failures, lost.Failures...)
	return PartitionReport{Report: r.finish(name), Figures: fig}, nil
}

// PartitionReport is a round's Report and figures.
type PartitionReport struct {
	Report
	Figures *PartitionFigures
}

// OK reports whether the round passed: the Report's checks and no
// failure of the figures'.
func (p PartitionReport) OK() bool { return p.Report.OK() && len(p.Figures.Failures) == 0 }

func (p PartitionReport) String() string {
	s := p.Report.String()
	if !p.OK() {
		s = strings.Replace(s, "PASS ", "FAIL ", 1)
	}
	// The figures after the first line, then the answers by cause.
	head, tail, _ := strings.Cut(s, "\n")
	s = head + "; " + p.Figures.String()
	if tail != "" {
		s += "\n" + tail
	}
	return s
}

// ownerMap returns a copy of order -> node id of the last answer.
func (r *Recorder) ownerMap() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.owner))
	for o, n := range r.owner {
		out[o] = n
	}
	return out
}

// observe makes c's HTTP client report every order request to add: the
// member's base URL, the order, when, how long until the answer's headers,
// the status (0: no answer).
func observe(c *Client, add func(sample)) {
	next := c.http.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.http.Transport = observer{next: next, add: add}
}

type observer struct {
	next http.RoundTripper
	add  func(sample)
}

func (o observer) RoundTrip(req *http.Request) (*http.Response, error) {
	at := time.Now()
	res, err := o.next.RoundTrip(req)
	s := sample{base: req.URL.Scheme + "://" + req.URL.Host, at: at, took: time.Since(at)}
	if rest, ok := strings.CutPrefix(req.URL.Path, "/orders/"); ok {
		s.order, _, _ = strings.Cut(rest, "/")
	}
	if err == nil {
		s.code = res.StatusCode
	}
	if s.order != "" {
		o.add(s)
	}
	return res, err
}

// probeSet returns up to n created orders the member victim answered for
// last before the cut, and as many of the other members' (fewer of both if
// either has fewer).
func probeSet(owners map[string]string, victim string, rec *Recorder, n int) (mine, rest []string) {
	created := map[string]bool{}
	for _, op := range rec.History() {
		if in, out := op.Input.(Op), op.Output.(Outcome); in.Kind == "create" && out.Code == 201 {
			created[in.Order] = true
		}
	}
	for o, id := range owners {
		switch {
		case !created[o]:
		case id == victim:
			mine = append(mine, o)
		default:
			rest = append(rest, o)
		}
	}
	sort.Strings(mine)
	sort.Strings(rest)
	k := min(n, len(mine), len(rest))
	return mine[:k], rest[:k]
}

// probe reads the orders of each set in turn through each member, one read
// of each set every 200 ms per member whether or not the earlier ones
// answered (at most 64 in flight per set and member), recorded in rec
// (reads with a client timeout of 12 s, longer than the members' request
// timeout), until ctx ends; add sees each read.
func probe(ctx context.Context, rec *Recorder, c *Cluster, sets [][]string, add func(sample)) {
	var ids atomic.Int64
	ids.Store(1 << 20) // client ids apart from the workload's
	var wg sync.WaitGroup
	for m, n := range c.Nodes {
		for _, orders := range sets {
			if len(orders) == 0 {
				continue
			}
			base := []string{n.URL()}
			pc := NewClient(rec, func() []string { return base }, 12*time.Second)
			observe(pc, add)
			wg.Add(1)
			go probeLoop(ctx, pc, &wg, &ids, m, orders)
		}
	}
	wg.Wait()
}

func probeLoop(ctx context.Context, pc *Client, wg *sync.WaitGroup, ids *atomic.Int64, m int, orders []string) {
	defer wg.Done()
	slots := make(chan struct{}, 64)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for k := m; ; k++ {
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			go func(o string) {
				defer wg.Done()
				pc.Do(int(ids.Add(1)), Op{Order: o, Kind: "read"})
				<-slots
			}(orders[k%len(orders)])
		default: // 64 in flight already
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// requestFigures sums up samples invoked in [from, to).
func requestFigures(ss []sample, from, to time.Time) RequestFigures {
	var f RequestFigures
	var lat []time.Duration
	ends := []time.Time{from}
	for _, s := range ss {
		lat = append(lat, s.took)
		if s.ok() {
			f.OK++
			if e := s.at.Add(s.took); e.Before(to) {
				ends = append(ends, e)
			}
		} else {
			f.Failed++
		}
	}
	ends = append(ends, to)
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	for k := 1; k < len(ends); k++ {
		f.Stall = max(f.Stall, ends[k].Sub(ends[k-1]))
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		f.P50, f.P99, f.Max = lat[(len(lat)-1)/2], lat[(len(lat)-1)*99/100], lat[len(lat)-1]
	}
	return f
}

// ackedIn counts the acknowledged writes that returned in [from, to).
func ackedIn(r *run, from, to time.Time) int {
	a, b := int64(r.rec.Since(from)), int64(r.rec.Since(to))
	n := 0
	for _, op := range r.acked(b) {
		if op.Return >= a {
			n++
		}
	}
	return n
}

// pollMembers polls every member's readiness (every 250 ms) and GET /
// (every second) until ctx ends.
func pollMembers(ctx context.Context, c *Cluster) (map[string]map[int]int, map[string][]int) {
	ready, listed := map[string]map[int]int{}, map[string][]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: time.Second}
	for _, n := range c.Nodes {
		ready[n.ID] = map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for k := 0; ; k++ {
				code := 0
				if res, err := hc.Get(n.URL() + "/health/ready"); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					code = res.StatusCode
				}
				members := -1
				if k%4 == 0 {
					var info struct {
						Members []json.RawMessage `json:"members"`
					}
					if err := getJSON(hc, n.URL()+"/", &info); err == nil {
						members = len(info.Members)
					}
				}
				mu.Lock()
				ready[n.ID][code]++
				if k%4 == 0 {
					listed[n.ID] = append(listed[n.ID], members)
				}
				mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	return ready, listed
}

// askOwners asks every member for the owner of every order (X-Order-Owner
// of GET /orders/{id}, each asked again after a failure for up to retry),
// 16 requests at a time: order -> one owner per member ("" when the member
// gave no answer with an owner).
func askOwners(c *Cluster, orders []string, retry time.Duration) map[string][]string {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	out := make(map[string][]string, len(orders))
	for _, o := range orders {
		out[o] = make([]string, len(c.Nodes))
	}
	type job struct {
		order string
		node  int
	}
	work := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				owner, _ := orderOwner(hc, c.Nodes[j.node].URL(), j.order, retry)
				mu.Lock()
				out[j.order][j.node] = owner
				mu.Unlock()
			}
		}()
	}
	for _, o := range orders {
		for i := range c.Nodes {
			work <- job{o, i}
		}
	}
	close(work)
	wg.Wait()
	return out
}

// agreement counts the orders whose members named different owners, and
// those some member named none for, with a few examples.
func agreement(owners map[string][]string) (disagree, unanswered int, examples []string) {
	ids := make([]string, 0, len(owners))
	for o := range owners {
		ids = append(ids, o)
	}
	sort.Strings(ids)
	for _, o := range ids {
		seen := map[string]bool{}
		missing := false
		for _, id := range owners[o] {
			if id == "" {
				missing = true
				continue
			}
			seen[id] = true
		}
		if missing {
			unanswered++
		}
		if len(seen) > 1 {
			disagree++
			if len(examples) < 3 {
				examples = append(examples, fmt.Sprintf("order %s: owners by member %v", o, owners[o]))
			}
		}
	}
	return disagree, unanswered, examples
}

// majority is the owner most members named ("" if none).
func majority(ids []string) string {
	count := map[string]int{}
	best := ""
	for _, id := range ids {
		if id == "" {
			continue
		}
		count[id]++
		if count[id] > count[best] || best == "" {
			best = id
		}
	}
	return best
}

// digests returns each member's view.digest of GET / ("?" when it did not
// answer).
func digests(c *Cluster) map[string]string {
	hc := &http.Client{Timeout: 3 * time.Second}
	out := map[string]string{}
	for _, n := range c.Nodes {
		out[n.ID] = "?"
		if v, err := readView(hc, n.URL()); err == nil {
			out[n.ID] = v.Digest
		}
	}
	return out
}
