package metrics

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of an order command, the values of order_commands_total's
// outcome label.
const (
	OutcomeOK          = "ok"          // applied
	OutcomeReplayed    = "replayed"    // answered from an earlier request with the same command id
	OutcomeInvalid     = "invalid"     // refused as bad input (400, 413, 422)
	OutcomeNotFound    = "not_found"   // no such order
	OutcomeConflict    = "conflict"    // the state machine forbids it, or the order exists already
	OutcomeUnavailable = "unavailable" // a backend or the order's actor could not be reached
	OutcomeInternal    = "internal"    // anything else
)

// Reasons a delivered event is dead-lettered by the read model, the values
// of readmodel_dead_lettered_total's reason label.
const (
	DeadLetterUndecodable  = "undecodable"    // the payload is not an order event
	DeadLetterInvalid      = "invalid"        // not an order id, or the payload names another event than the message
	DeadLetterNotInJournal = "not_in_journal" // cannot be applied, and the journal does not hold it
	DeadLetterQuarantined  = "quarantined"    // its order is quarantined (a journal record cannot be read)
	DeadLetterJournalError = "journal_error"  // the journal kept refusing to read the order (not an outage)
)

// DeadLetterReasons lists every dead-letter reason.
var DeadLetterReasons = []string{DeadLetterUndecodable, DeadLetterInvalid, DeadLetterNotInJournal, DeadLetterQuarantined, DeadLetterJournalError}

// Reasons the outbox dead-letters an entry of the journal's global log, the
// values of outbox_dead_lettered_total's reason label.
const (
	OutboxDeadLetterRefused    = "refused"    // the transport refuses the event for good (too large, invalid)
	OutboxDeadLetterUnreadable = "unreadable" // the entry is not a record (it breaks the backend's layout)
)

// OutboxDeadLetterReasons lists every outbox dead-letter reason.
var OutboxDeadLetterReasons = []string{OutboxDeadLetterRefused, OutboxDeadLetterUnreadable}

// Commands are the values of order_commands_total's command label.
var Commands = []string{"create", "pay", "ship", "deliver", "cancel"}

// Outcomes lists every outcome.
var Outcomes = []string{OutcomeOK, OutcomeReplayed, OutcomeInvalid, OutcomeNotFound, OutcomeConflict, OutcomeUnavailable, OutcomeInternal}

// Metrics is a node's set of metrics on its own registry. The zero value is
// not usable: build one with New. A nil *Metrics is valid and does nothing.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// httpSeries holds each (route, method, status)'s counter and
	// histogram once looked up (an *httpSeries per httpKey): a label
	// lookup hashes and checks the label values and takes the vector's
	// lock, for every request. The keys are as bounded as the labels.
	httpSeries sync.Map

	commands *prometheus.CounterVec

	appendDuration   prometheus.Histogram
	journalConflicts prometheus.Counter

	outboxLag       prometheus.Gauge
	partitionLag    *prometheus.GaugeVec
	outboxPublished prometheus.Counter
	outboxBatches   prometheus.Counter
	outboxFailures  prometheus.Counter
	outboxDead      *prometheus.CounterVec

	readModelDeadLettered *prometheus.CounterVec
	readModelQuarantined  prometheus.Gauge

	snapshotWrites, snapshotFailures, snapshotBytes prometheus.Counter
	snapshotDuration                                prometheus.Histogram
	restoreTail, restoreFromSnapshot                prometheus.Gauge

	actorsActive   prometheus.Gauge
	clusterMembers prometheus.Gauge
	viewDigest     prometheus.Gauge
	viewMembers    prometheus.Gauge
	fences         prometheus.Counter
	backendUp      *prometheus.GaugeVec

	probes, probeFailures, divergences, failedFast prometheus.Counter
	probeMu                                        sync.Mutex
	probeTotals                                    [4]uint64 // last totals added, in that order
	peerReachable, peerSuspect, peerRTT            *prometheus.GaugeVec

	handler http.Handler

	hooksMu sync.Mutex
	hooks   []func()
}

// New returns a Metrics registered on a new registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_commands_total",
			Help: "Order commands answered, by command (create, pay, ship, deliver, cancel) and outcome.",
		}, []string{"command", "outcome"}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "journal_append_duration_seconds",
			Help:    "Time of one journal append (successful or not).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		journalConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "journal_conflicts_total",
			Help: "Journal appends refused because the stream moved (another activation wrote first).",
		}),
		outboxLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_lag_events",
			Help: "Journaled events not yet published to the transport.",
		}),
		partitionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "outbox_partition_lag_events",
			Help: "Journaled events of one journal partition not yet published by its outbox (the cluster's, read from the backend).",
		}, []string{"partition"}),
		outboxPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total",
			Help: "Events the outbox published to the transport.",
		}),
		outboxBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_batches_total",
			Help: "Batches the outbox published to the transport (outbox_published_total / this is the mean batch size).",
		}),
		outboxFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_failures_total",
			Help: "Outbox publish attempts that failed.",
		}),
		outboxDead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outbox_dead_lettered_total",
			Help: "Entries of the journal's global log the outbox skipped without publishing, by reason (" + strings.Join(OutboxDeadLetterReasons, ", ") + ").",
		}, []string{"reason"}),
		readModelDeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "readmodel_dead_lettered_total",
			Help: "Delivered events the read model could neither apply nor repair from the journal and skipped, by reason (" + strings.Join(DeadLetterReasons, ", ") + ").",
		}, []string{"reason"}),
		readModelQuarantined: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "readmodel_quarantined_orders",
			Help: "Orders left out of the read model because a record of their journal stream cannot be read, plus entries of the global log that are not records (skipped by the rebuild).",
		}),
		snapshotWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readmodel_snapshot_writes_total",
			Help: "Read-model snapshots of a journal partition this node wrote.",
		}),
		snapshotFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readmodel_snapshot_failures_total",
			Help: "Read-model snapshot writes that failed (the log or the backend could not be read or written).",
		}),
		snapshotBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readmodel_snapshot_written_bytes_total",
			Help: "Bytes of the read-model snapshots this node wrote.",
		}),
		snapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "readmodel_snapshot_write_duration_seconds",
			Help:    "Time to build and store one read-model snapshot of a partition (paced replay of the log since the last one, encoding, chunked write).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		restoreTail: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "readmodel_restore_tail_records",
			Help: "Log records the read model replayed at start after the partitions' snapshots (all of them when there were none).",
		}),
		restoreFromSnapshot: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "readmodel_restore_snapshot_partitions",
			Help: "Journal partitions whose read model started from a snapshot at this node's start.",
		}),
		actorsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "order_actors_active",
			Help: "Order actors activated on this node.",
		}),
		viewDigest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cluster_view_digest",
			Help: "The first 53 bits of the digest of this member's routing view (members, incarnations, kinds): members that route alike report the same value; count(count_values(\"d\", cluster_view_digest)) > 1 means they disagree.",
		}),
		viewMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cluster_view_members",
			Help: "Members in this member's routing view (where its placement puts actors).",
		}),
		clusterMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cluster_members",
			Help: "Cluster members this node sees, itself included.",
		}),
		fences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cluster_fences_total",
			Help: "Times this node fenced itself (its membership lease ran out or the registry dropped its record) and rejoined as a new incarnation.",
		}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backend_up",
			Help: "1 when the component (persistence, transport, membership) answers, else 0.",
		}, []string{"component"}),
		probes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cluster_probes_total",
			Help: "Direct reachability probes this node sent to the other members over the node-to-node port.",
		}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cluster_probe_failures_total",
			Help: "Direct reachability probes that were not answered within the probe timeout.",
		}),
		divergences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cluster_view_divergences_total",
			Help: "Episodes in which another member's view digest differed from this node's for longer than the divergence bound (logged at WARN, healed by listing the registry again or by fencing the member the other dropped).",
		}),
		failedFast: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cluster_requests_failed_fast_total",
			Help: "Actor requests refused at once because their owner was suspect (unreachable over the node-to-node port).",
		}),
		peerReachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cluster_peer_reachable",
			Help: "1 when the member at this node-to-node address answered its last probe (directly or through a relay), else 0.",
		}, []string{"peer"}),
		peerSuspect: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cluster_peer_suspect",
			Help: "1 while the member at this address is suspect (its last direct probes failed): requests to its actors fail fast.",
		}, []string{"peer"}),
		peerRTT: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cluster_peer_probe_round_trip_seconds",
			Help: "Round trip of the last answered direct probe of the member at this address.",
		}, []string{"peer"}),
	}
	m.reg.MustRegister(
		// go_memstats_* plus go_gc_heap_live_bytes: the heap the last
		// collection found live (heap_alloc also counts garbage not yet
		// collected, which an idle node keeps for up to 2 minutes).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.commands,
		m.appendDuration, m.journalConflicts,
		m.outboxLag, m.partitionLag, m.outboxPublished, m.outboxBatches, m.outboxFailures, m.outboxDead,
		m.readModelDeadLettered, m.readModelQuarantined,
		m.snapshotWrites, m.snapshotFailures, m.snapshotBytes, m.snapshotDuration, m.restoreTail, m.restoreFromSnapshot,
		m.actorsActive, m.clusterMembers, m.viewDigest, m.viewMembers, m.fences, m.backendUp,
		m.probes, m.probeFailures, m.divergences, m.failedFast, m.peerReachable, m.peerSuspect, m.peerRTT,
	)
	// Every command/outcome pair exists from the start, so that rates and
	// alerts see a 0 rather than no series.
	for _, c := range Commands {
		for _, o := range Outcomes {
			m.commands.WithLabelValues(c, o)
		}
	}
	for _, r := range DeadLetterReasons {
		m.readModelDeadLettered.WithLabelValues(r)
	}
	for _, r := range OutboxDeadLetterReasons {
		m.outboxDead.WithLabelValues(r)
	}
	inner := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
	m.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.runHooks()
		inner.ServeHTTP(w, r)
	})
	return m
}

// OnScrape registers f to run before every scrape through Handler, to set
// gauges from state the node already keeps (backend health, members,
// outbox lag) instead of on every change. Hooks run one at a time, in the
// order registered; f must be quick and must not block (a scrape waits for
// it) and must not call OnScrape.
func (m *Metrics) OnScrape(f func()) {
	if m == nil || f == nil {
		return
	}
	m.hooksMu.Lock()
	m.hooks = append(m.hooks, f)
	m.hooksMu.Unlock()
}

func (m *Metrics) runHooks() {
	m.hooksMu.Lock()
	defer m.hooksMu.Unlock()
	for _, f := range m.hooks {
		f()
	}
}

// Registry is the registry the metrics live in (to add collectors).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the metrics in the Prometheus text format (GET /metrics).
// On a nil *Metrics it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// ObserveHTTP records one answered request. route must be the route
// template (/orders/:id), never the raw path, and method one of a bounded
// set: both are labels.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	k := httpKey{route: route, method: method, status: status}
	v, ok := m.httpSeries.Load(k)
	if !ok {
		v, _ = m.httpSeries.LoadOrStore(k, &httpSeries{
			requests: m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)),
			duration: m.httpDuration.WithLabelValues(route, method),
		})
	}
	series := v.(*httpSeries)
	series.requests.Inc()
	series.duration.Observe(d.Seconds())
}

type httpKey struct {
	route, method string
	status        int
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// ObserveCommand counts one answered order command. command is one of
// Commands and outcome one of the Outcome constants.
func (m *Metrics) ObserveCommand(command, outcome string) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(command, outcome).Inc()
}

// ObserveAppend records one journal append that took d; conflict reports
// that it was refused with a version conflict.
func (m *Metrics) ObserveAppend(d time.Duration, conflict bool) {
	if m == nil {
		return
	}
	m.appendDuration.Observe(d.Seconds())
	if conflict {
		m.journalConflicts.Inc()
	}
}

// SetOutboxLag sets the number of journaled events not yet published, in
// all (lag) and per partition (partitions[p] is partition p's; nil leaves
// the partition gauges as they are).
func (m *Metrics) SetOutboxLag(lag uint64, partitions []uint64) {
	if m == nil {
		return
	}
	m.outboxLag.Set(float64(lag))
	for p, l := range partitions {
		m.partitionLag.WithLabelValues(strconv.Itoa(p)).Set(float64(l))
	}
}

// ObservePublish records one outbox publish attempt of n events: n are
// counted as published when err is nil, else one failure is counted.
func (m *Metrics) ObservePublish(n int, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.outboxFailures.Inc()
		return
	}
	if n > 0 {
		m.outboxPublished.Add(float64(n))
		m.outboxBatches.Inc()
	}
}

// ObserveOutboxDeadLetter counts one entry of the global log the outbox
// skipped; reason is one of OutboxDeadLetterReasons.
func (m *Metrics) ObserveOutboxDeadLetter(reason string) {
	if m == nil {
		return
	}
	m.outboxDead.WithLabelValues(reason).Inc()
}

// ObserveDeadLetter counts one event the read model dead-lettered; reason is
// one of DeadLetterReasons.
func (m *Metrics) ObserveDeadLetter(reason string) {
	if m == nil {
		return
	}
	m.readModelDeadLettered.WithLabelValues(reason).Inc()
}

// SetQuarantinedOrders sets the number of orders the read model keeps in
// quarantine.
func (m *Metrics) SetQuarantinedOrders(n int) {
	if m == nil {
		return
	}
	m.readModelQuarantined.Set(float64(n))
}

// ObserveReadModelSnapshot counts one read-model snapshot write of
// bytes bytes that took d (failed when err is not nil).
func (m *Metrics) ObserveReadModelSnapshot(bytes int, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.snapshotFailures.Inc()
		return
	}
	m.snapshotWrites.Inc()
	m.snapshotBytes.Add(float64(bytes))
	m.snapshotDuration.Observe(d.Seconds())
}

// SetReadModelRestore records how the read model started: how many
// partitions came from a snapshot and how many log records it replayed.
func (m *Metrics) SetReadModelRestore(fromSnapshot int, tail uint64) {
	if m == nil {
		return
	}
	m.restoreFromSnapshot.Set(float64(fromSnapshot))
	m.restoreTail.Set(float64(tail))
}

// ActorActivated counts an order actor that started on this node; call
// ActorStopped exactly once when it stops (passivation or shutdown).
func (m *Metrics) ActorActivated() {
	if m == nil {
		return
	}
	m.actorsActive.Inc()
}

// ActorStopped is the counterpart of ActorActivated.
func (m *Metrics) ActorStopped() {
	if m == nil {
		return
	}
	m.actorsActive.Dec()
}

// SetClusterMembers sets the number of cluster members this node sees.
func (m *Metrics) SetClusterMembers(n int) {
	if m == nil {
		return
	}
	m.clusterMembers.Set(float64(n))
}

// ObserveFence counts one fence of this node's membership.
func (m *Metrics) ObserveFence() {
	if m == nil {
		return
	}
	m.fences.Inc()
}

// SetClusterView records this member's routing view: its digest's first
// 53 bits and its member count.
func (m *Metrics) SetClusterView(digest uint64, members int) {
	if m == nil {
		return
	}
	m.viewDigest.Set(float64(digest))
	m.viewMembers.Set(float64(members))
}

// Peer is one other member's reachability as this node's probes see it.
type Peer struct {
	Address            string
	Reachable, Suspect bool
	RoundTrip          time.Duration
}

// ProbeTotals are this node's probe counts since it started (they never go
// back; a new total below the last one is ignored).
type ProbeTotals struct {
	Probes, Failures, Divergences, FailedFast uint64
}

// SetClusterReachability records the reachability of the other members
// (peers no longer listed lose their series) and the probe totals.
func (m *Metrics) SetClusterReachability(peers []Peer, t ProbeTotals) {
	if m == nil {
		return
	}
	m.probeMu.Lock()
	defer m.probeMu.Unlock()
	m.peerReachable.Reset()
	m.peerSuspect.Reset()
	m.peerRTT.Reset()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, p := range peers {
		m.peerReachable.WithLabelValues(p.Address).Set(b(p.Reachable))
		m.peerSuspect.WithLabelValues(p.Address).Set(b(p.Suspect))
		m.peerRTT.WithLabelValues(p.Address).Set(p.RoundTrip.Seconds())
	}
	for i, c := range []struct {
		total uint64
		ctr   prometheus.Counter
	}{{t.Probes, m.probes}, {t.Failures, m.probeFailures}, {t.Divergences, m.divergences}, {t.FailedFast, m.failedFast}} {
		if c.total > m.probeTotals[i] {
			c.ctr.Add(float64(c.total - m.probeTotals[i]))
			m.probeTotals[i] = c.total
		}
	}
}

// SetBackendUp records whether a component (persistence, transport,
// membership) answers.
func (m *Metrics) SetBackendUp(component string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.backendUp.WithLabelValues(component).Set(v)
}
