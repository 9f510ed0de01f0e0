package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Error kinds counted in Report.Errors. A request that got any HTTP answer is
// not an error (its status is counted instead), except when its body could
// not be read or a 2xx answer to a create carried no order id.
const (
	ErrKindTimeout          = "timeout"            // the per-request timeout expired
	ErrKindConnRefused      = "connection_refused" // nothing listens on the target
	ErrKindConnReset        = "connection_reset"   // the peer reset the connection
	ErrKindBrokenPipe       = "broken_pipe"        // writing to a closed connection
	ErrKindEOF              = "eof"                // the server closed the connection mid-exchange
	ErrKindAddrNotAvailable = "addr_not_available" // local ports exhausted
	ErrKindTooManyOpenFiles = "too_many_open_files"
	ErrKindDNS              = "dns"
	ErrKindNotLoopback      = "not_loopback" // a name resolved to a remote address
	ErrKindBadResponse      = "bad_response" // a 2xx create without an order id
	ErrKindOther            = "other"
)

type errKind uint8

const (
	ekTimeout errKind = iota
	ekConnRefused
	ekConnReset
	ekBrokenPipe
	ekEOF
	ekAddrNotAvailable
	ekTooManyOpenFiles
	ekDNS
	ekNotLoopback
	ekBadResponse
	ekOther
	numErrKinds
)

var errKindNames = [numErrKinds]string{
	ekTimeout:          ErrKindTimeout,
	ekConnRefused:      ErrKindConnRefused,
	ekConnReset:        ErrKindConnReset,
	ekBrokenPipe:       ErrKindBrokenPipe,
	ekEOF:              ErrKindEOF,
	ekAddrNotAvailable: ErrKindAddrNotAvailable,
	ekTooManyOpenFiles: ErrKindTooManyOpenFiles,
	ekDNS:              ErrKindDNS,
	ekNotLoopback:      ErrKindNotLoopback,
	ekBadResponse:      ErrKindBadResponse,
	ekOther:            ErrKindOther,
}

// Latency holds latency percentiles. Latencies are measured from sending a
// request to having read its whole response, for requests that got an HTTP
// answer (whatever its status); JSON carries them as milliseconds.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// MarshalJSON writes {"p50":ms,"p90":ms,"p99":ms,"max":ms}.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{
		"p50": ms(l.P50), "p90": ms(l.P90), "p99": ms(l.P99), "max": ms(l.Max),
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *Latency) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	fromMS := func(v float64) time.Duration { return time.Duration(math.Round(v * 1e6)) }
	l.P50, l.P90, l.P99, l.Max = fromMS(m["p50"]), fromMS(m["p90"]), fromMS(m["p99"]), fromMS(m["max"])
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// OpReport is the part of a scenario that one operation accounts for.
type OpReport struct {
	Op        string            `json:"op"`
	Requests  uint64            `json:"requests"`
	Successes uint64            `json:"successes"`
	Latency   Latency           `json:"latencyMs"`
	Status    map[int]uint64    `json:"status"`
	Errors    map[string]uint64 `json:"errors"`
}

// Report is the outcome of one scenario.
type Report struct {
	Scenario    string   `json:"scenario"`
	Mix         string   `json:"mix,omitempty"`
	Targets     []string `json:"targets"`
	Mode        string   `json:"mode"` // "closed" or "open"
	Concurrency int      `json:"concurrency"`
	Rate        float64  `json:"rate,omitempty"`
	// Elapsed is the measured phase, warm-up excluded.
	Elapsed time.Duration `json:"-"`
	// Requests counts requests that completed: with an HTTP answer or an error.
	Requests uint64 `json:"requests"`
	// Successes counts 2xx answers.
	Successes uint64 `json:"successes"`
	// Throughput is Successes per second of Elapsed; ratios compare it.
	Throughput float64 `json:"throughput"`
	// RequestRate is Requests per second of Elapsed.
	RequestRate float64           `json:"requestRate"`
	Latency     Latency           `json:"latencyMs"`
	Status      map[int]uint64    `json:"status"`
	Errors      map[string]uint64 `json:"errors"`
	// Aborted counts requests still in flight when the run ended; they are
	// not in Requests.
	Aborted uint64 `json:"aborted,omitempty"`
	// Dropped counts open-loop starts skipped because Concurrency requests
	// were in flight and the backlog was full (see Config.Rate).
	Dropped uint64 `json:"dropped,omitempty"`
	// Fallbacks counts mix picks that found no order in the state they need
	// and created one instead.
	Fallbacks uint64 `json:"fallbacks,omitempty"`
	// WarmupOrders is the number of orders the warm-up created.
	WarmupOrders int `json:"warmupOrders,omitempty"`
	// Route is Config.Route of a routed run (owner or other), else empty.
	Route string `json:"route,omitempty"`
	// Nodes are the node ids of Targets, in order, for a routed run.
	Nodes []string `json:"nodes,omitempty"`
	// Routing counts a routed run's requests by the node that answered.
	Routing *Routing `json:"routing,omitempty"`
	// Operations breaks the numbers down per operation when there are several.
	Operations []OpReport `json:"operations,omitempty"`
	// GeneratorCPU is the CPU the generator process used during the measured
	// phase, in cores (1.0 = one core busy all the time); -1 when unknown.
	GeneratorCPU float64 `json:"generatorCpuCores"`
	// GOMAXPROCS is the generator's processor count.
	GOMAXPROCS int `json:"gomaxprocs"`
	// Notes explain anything that makes the numbers suspect.
	Notes []string `json:"notes,omitempty"`
}

// MarshalJSON adds elapsedSeconds.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsedSeconds"`
	}{plain(r), r.Elapsed.Seconds()})
}

// Ratio is the throughput of one scenario divided by that of the first
// scenario of a comparison.
type Ratio struct {
	Name  string  `json:"name"` // "create/live"
	Value float64 `json:"value"`
	// Defined is false when the base scenario had no successful request.
	Defined bool `json:"defined"`
}

// Ratios compares each report after the first with the first one.
func Ratios(reports []Report) []Ratio {
	if len(reports) < 2 {
		return nil
	}
	base := reports[0]
	out := make([]Ratio, 0, len(reports)-1)
	for _, r := range reports[1:] {
		q := Ratio{Name: r.Scenario + "/" + base.Scenario}
		if base.Throughput > 0 {
			q.Value = r.Throughput / base.Throughput
			q.Defined = true
		}
		out = append(out, q)
	}
	return out
}

// CheckSuccess returns an error wrapping ErrNoSuccess that names every
// scenario without a single successful request, or nil.
func CheckSuccess(reports []Report) error {
	var bad []string
	for _, r := range reports {
		if r.Successes == 0 {
			bad = append(bad, r.Scenario)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("scenario %s: %w", strings.Join(bad, ", "), ErrNoSuccess)
}

// Result is what the command prints with -json.
type Result struct {
	Scenarios []Report `json:"scenarios"`
	Ratios    []Ratio  `json:"ratios,omitempty"`
}

// WriteJSON writes reports and their ratios as one indented JSON object.
func WriteJSON(w io.Writer, reports []Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Result{Scenarios: reports, Ratios: Ratios(reports)})
}

// WriteText writes one line per scenario (plus one per operation when a
// scenario has several, and its notes), then one line per ratio:
//
//	live   requests=85424 ok=85424 throughput=17063.6/s p50=3.080ms ...
//	create/live 0.62
//
// throughput counts 2xx answers; completed, shown when it differs, counts
// every request that completed.
func WriteText(w io.Writer, reports []Report) error {
	var b strings.Builder
	width := 0
	for _, r := range reports {
		width = max(width, len(r.Scenario))
	}
	for _, r := range reports {
		fmt.Fprintf(&b, "%-*s requests=%d ok=%d throughput=%.1f/s", width, r.Scenario, r.Requests, r.Successes, r.Throughput)
		if r.Requests != r.Successes {
			fmt.Fprintf(&b, " completed=%.1f/s", r.RequestRate)
		}
		fmt.Fprintf(&b, " p50=%s p90=%s p99=%s max=%s status=%s errors=%s",
			fmtMS(r.Latency.P50), fmtMS(r.Latency.P90), fmtMS(r.Latency.P99), fmtMS(r.Latency.Max),
			fmtStatus(r.Status), fmtErrors(r.Errors))
		fmt.Fprintf(&b, " elapsed=%.2fs %s", r.Elapsed.Seconds(), r.Mode)
		if r.Mode == "open" {
			fmt.Fprintf(&b, "/rate=%g/max-in-flight=%d", r.Rate, r.Concurrency)
		} else {
			fmt.Fprintf(&b, "/c=%d", r.Concurrency)
		}
		if r.Aborted > 0 {
			fmt.Fprintf(&b, " aborted=%d", r.Aborted)
		}
		if r.Dropped > 0 {
			fmt.Fprintf(&b, " dropped=%d", r.Dropped)
		}
		if r.Fallbacks > 0 {
			fmt.Fprintf(&b, " fallbacks=%d", r.Fallbacks)
		}
		if r.GeneratorCPU >= 0 {
			fmt.Fprintf(&b, " gen-cpu=%.2f/%d", r.GeneratorCPU, r.GOMAXPROCS)
		}
		b.WriteByte('\n')
		if rt := r.Routing; rt != nil {
			fmt.Fprintf(&b, "  route=%s nodes=%s: to-owner=%d to-other=%d no-owner=%d moved=%d\n",
				r.Route, strings.Join(r.Nodes, ","), rt.ToOwner, rt.ToOther, rt.NoOwner, rt.Moved)
		}
		for _, o := range r.Operations {
			fmt.Fprintf(&b, "  %-8s requests=%d ok=%d p50=%s p90=%s p99=%s max=%s status=%s errors=%s\n",
				o.Op, o.Requests, o.Successes,
				fmtMS(o.Latency.P50), fmtMS(o.Latency.P90), fmtMS(o.Latency.P99), fmtMS(o.Latency.Max),
				fmtStatus(o.Status), fmtErrors(o.Errors))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
	}
	for _, q := range Ratios(reports) {
		if q.Defined {
			fmt.Fprintf(&b, "%s %.2f\n", q.Name, q.Value)
		} else {
			fmt.Fprintf(&b, "%s n/a (no successful request in the base scenario)\n", q.Name)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtMS(d time.Duration) string {
	return strconv.FormatFloat(ms(d), 'f', 3, 64) + "ms"
}

func fmtStatus(m map[int]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = strconv.Itoa(c) + ":" + strconv.FormatUint(m[c], 10)
	}
	return strings.Join(parts, ",")
}

func fmtErrors(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + ":" + strconv.FormatUint(m[k], 10)
	}
	return strings.Join(parts, ",")
}

// stats is what one worker records for one operation.
type stats struct {
	hist      histogram
	requests  uint64
	successes uint64
	status    [600]uint64 // index 0 holds codes outside 1..599
	errors    [numErrKinds]uint64
}

func (s *stats) merge(o *stats) {
	if o == nil {
		return
	}
	s.hist.merge(&o.hist)
	s.requests += o.requests
	s.successes += o.successes
	for i, c := range o.status {
		s.status[i] += c
	}
	for i, c := range o.errors {
		s.errors[i] += c
	}
}

// recorder is one worker's statistics; per-operation stats are allocated on
// first use so that unused operations cost nothing.
type recorder struct {
	ops       [numOps]*stats
	aborted   uint64
	fallbacks uint64
	route     routeCounts // routed runs only
}

func (r *recorder) op(o Op) *stats {
	s := r.ops[o]
	if s == nil {
		s = new(stats)
		r.ops[o] = s
	}
	return s
}

func (r *recorder) response(o Op, code int, d time.Duration) {
	s := r.op(o)
	s.requests++
	if code >= 200 && code < 300 {
		s.successes++
	}
	if code < 1 || code >= len(s.status) {
		code = 0
	}
	s.status[code]++
	s.hist.record(d)
}

func (r *recorder) failure(o Op, kind errKind) {
	s := r.op(o)
	s.requests++
	s.errors[kind]++
}

func (s *stats) fill(requests, successes *uint64, lat *Latency, status map[int]uint64, errs map[string]uint64) {
	*requests = s.requests
	*successes = s.successes
	lat.P50 = s.hist.quantile(0.50)
	lat.P90 = s.hist.quantile(0.90)
	lat.P99 = s.hist.quantile(0.99)
	lat.Max = s.hist.max
	for c, n := range s.status {
		if n > 0 {
			status[c] += n
		}
	}
	for k, n := range s.errors {
		if n > 0 {
			errs[errKindNames[k]] += n
		}
	}
}

// buildReport merges the workers' recorders into r.
func buildReport(r *Report, recs []*recorder) {
	var all stats
	var per [numOps]*stats
	var rc routeCounts
	for _, rec := range recs {
		r.Aborted += rec.aborted
		r.Fallbacks += rec.fallbacks
		rc.toOwner += rec.route.toOwner
		rc.toOther += rec.route.toOther
		rc.noOwner += rec.route.noOwner
		rc.moved += rec.route.moved
		for o, s := range rec.ops {
			if s == nil {
				continue
			}
			if per[o] == nil {
				per[o] = new(stats)
			}
			per[o].merge(s)
			all.merge(s)
		}
	}
	if rc != (routeCounts{}) {
		r.Routing = &Routing{ToOwner: rc.toOwner, ToOther: rc.toOther, NoOwner: rc.noOwner, Moved: rc.moved}
	}
	r.Status = map[int]uint64{}
	r.Errors = map[string]uint64{}
	all.fill(&r.Requests, &r.Successes, &r.Latency, r.Status, r.Errors)
	var used []Op
	for o, s := range per {
		if s != nil {
			used = append(used, Op(o))
		}
	}
	if len(used) > 1 {
		for _, o := range used {
			op := OpReport{Op: o.String(), Status: map[int]uint64{}, Errors: map[string]uint64{}}
			per[o].fill(&op.Requests, &op.Successes, &op.Latency, op.Status, op.Errors)
			r.Operations = append(r.Operations, op)
		}
	}
	if secs := r.Elapsed.Seconds(); secs > 0 {
		r.Throughput = float64(r.Successes) / secs
		r.RequestRate = float64(r.Requests) / secs
	}
	r.GOMAXPROCS = runtime.GOMAXPROCS(0)
}

// badResponse counts a 2xx answer that was unusable (a create without an
// order id): a request with a status, but an error rather than a success.
func (r *recorder) badResponse(o Op, code int, d time.Duration) {
	s := r.op(o)
	s.requests++
	if code < 1 || code >= len(s.status) {
		code = 0
	}
	s.status[code]++
	s.errors[ekBadResponse]++
	s.hist.record(d)
}
