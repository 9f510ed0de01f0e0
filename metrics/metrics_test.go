package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ordersystem/ordersystem/metrics"
)

// scrape reads the metrics as a scraper would.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse the scrape: %v", err)
	}
	return fams
}

// value returns the value of the series of family name with the labels
// (pairs), or fails.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveHTTP("/", "GET", 200, time.Millisecond)
	m.ObserveCommand("create", metrics.OutcomeOK)
	m.ObserveAppend(time.Millisecond, true)
	m.SetOutboxLag(3, []uint64{1, 2})
	m.ObservePublish(3, nil)
	m.ObservePublish(0, errors.New("down"))
	m.ActorActivated()
	m.ActorStopped()
	m.SetClusterMembers(3)
	m.SetBackendUp("persistence", false)
	m.ObserveDeadLetter(metrics.DeadLetterNotInJournal)
	m.SetQuarantinedOrders(2)
	m.OnScrape(func() { t.Fatal("hook on a nil Metrics ran") })
	if m.Registry() != nil {
		t.Fatal("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil Metrics handler: %d", rec.Code)
	}
}

func TestMetricsMove(t *testing.T) {
	m := metrics.New()
	fams := scrape(t, m)
	// Every command/outcome pair and dead-letter reason exists from the
	// start, at 0.
	for _, r := range metrics.DeadLetterReasons {
		if v := value(t, fams, "readmodel_dead_lettered_total", "reason", r); v != 0 {
			t.Fatalf("readmodel_dead_lettered_total{%s} starts at %v", r, v)
		}
	}
	for _, r := range metrics.OutboxDeadLetterReasons {
		if v := value(t, fams, "outbox_dead_lettered_total", "reason", r); v != 0 {
			t.Fatalf("outbox_dead_lettered_total{%s} starts at %v", r, v)
		}
	}
	for _, c := range metrics.Commands {
		for _, o := range metrics.Outcomes {
			if v := value(t, fams, "order_commands_total", "command", c, "outcome", o); v != 0 {
				t.Fatalf("order_commands_total{%s,%s} starts at %v", c, o, v)
			}
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "journal_append_duration_seconds",
		"journal_conflicts_total", "outbox_lag_events", "outbox_published_total", "outbox_publish_failures_total",
		"order_actors_active", "cluster_members", "cluster_fences_total", "readmodel_quarantined_orders"} {
		if fams[name] == nil {
			t.Errorf("no %s before any observation", name)
		}
	}

	m.ObserveHTTP("/orders/:id", "GET", 200, 3*time.Millisecond)
	m.ObserveHTTP("/orders/:id", "GET", 200, 5*time.Millisecond)
	m.ObserveHTTP("/orders/:id", "GET", 404, time.Millisecond)
	m.ObserveCommand("pay", metrics.OutcomeOK)
	m.ObserveCommand("pay", metrics.OutcomeConflict)
	m.ObserveCommand("pay", metrics.OutcomeConflict)
	m.ObserveAppend(2*time.Millisecond, false)
	m.ObserveAppend(time.Millisecond, true)
	m.SetOutboxLag(7, nil)
	m.ObservePublish(5, nil)
	m.ObservePublish(3, errors.New("transport down"))
	m.ObserveOutboxDeadLetter(metrics.OutboxDeadLetterUnreadable)
	m.ActorActivated()
	m.ActorActivated()
	m.ActorStopped()
	m.SetClusterMembers(3)
	m.ObserveFence()
	m.SetBackendUp("persistence", true)
	m.SetBackendUp("transport", false)
	m.ObserveDeadLetter(metrics.DeadLetterNotInJournal)
	m.ObserveDeadLetter(metrics.DeadLetterNotInJournal)
	m.ObserveDeadLetter(metrics.DeadLetterUndecodable)
	m.SetQuarantinedOrders(1)

	fams = scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"http_requests_total", []string{"route", "/orders/:id", "method", "GET", "status", "200"}, 2},
		{"http_requests_total", []string{"route", "/orders/:id", "method", "GET", "status", "404"}, 1},
		{"http_request_duration_seconds", []string{"route", "/orders/:id", "method", "GET"}, 3},
		{"order_commands_total", []string{"command", "pay", "outcome", "ok"}, 1},
		{"order_commands_total", []string{"command", "pay", "outcome", "conflict"}, 2},
		{"order_commands_total", []string{"command", "create", "outcome", "ok"}, 0},
		{"journal_append_duration_seconds", nil, 2},
		{"journal_conflicts_total", nil, 1},
		{"outbox_lag_events", nil, 7},
		{"outbox_published_total", nil, 5},
		{"outbox_publish_failures_total", nil, 1},
		{"outbox_dead_lettered_total", []string{"reason", "unreadable"}, 1},
		{"outbox_dead_lettered_total", []string{"reason", "refused"}, 0},
		{"order_actors_active", nil, 1},
		{"cluster_members", nil, 3},
		{"cluster_fences_total", nil, 1},
		{"backend_up", []string{"component", "persistence"}, 1},
		{"backend_up", []string{"component", "transport"}, 0},
		{"readmodel_dead_lettered_total", []string{"reason", "not_in_journal"}, 2},
		{"readmodel_dead_lettered_total", []string{"reason", "undecodable"}, 1},
		{"readmodel_dead_lettered_total", []string{"reason", "quarantined"}, 0},
		{"readmodel_quarantined_orders", nil, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if h := fams["journal_append_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleSum() < 0.0029 || h.GetSampleSum() > 0.0031 {
		t.Errorf("journal_append_duration_seconds sum %v, want 0.003", h.GetSampleSum())
	}
}

// TestMetricsAreIndependent: each Metrics has its own registry, so a
// process can hold several nodes (the global registry is never touched).
func TestMetricsAreIndependent(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.ObserveCommand("create", metrics.OutcomeOK)
	if v := value(t, scrape(t, b), "order_commands_total", "command", "create", "outcome", "ok"); v != 0 {
		t.Fatalf("b sees a's command: %v", v)
	}
	if v := value(t, scrape(t, a), "order_commands_total", "command", "create", "outcome", "ok"); v != 1 {
		t.Fatalf("a: %v", v)
	}
	if a.Registry() == b.Registry() {
		t.Fatal("shared registry")
	}
}

func TestMetricsConcurrentUse(t *testing.T) {
	m := metrics.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				m.ObserveHTTP("/orders", "POST", 201, time.Duration(j)*time.Microsecond)
				m.ObserveHTTP("/orders", "POST", 400+j%2, time.Microsecond)
				m.ObserveHTTP("/orders/:id", "GET", 201, time.Microsecond)
				m.ObserveCommand("create", metrics.OutcomeOK)
				m.ObserveAppend(time.Microsecond, j%10 == 0)
				m.SetOutboxLag(uint64(i*j), []uint64{uint64(i)})
				m.ObservePublish(1, nil)
				m.ActorActivated()
				m.ActorStopped()
			}
		})
		wg.Go(func() {
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if !strings.Contains(rec.Body.String(), "order_commands_total") {
				t.Error("scrape during writes misses order_commands_total")
			}
		})
	}
	wg.Wait()
	fams := scrape(t, m)
	if v := value(t, fams, "order_commands_total", "command", "create", "outcome", "ok"); v != 1600 {
		t.Fatalf("order_commands_total = %v, want 1600", v)
	}
	// Each (route, method, status) counts in its own series.
	for _, c := range []struct {
		route, method, status string
		want                  float64
	}{{"/orders", "POST", "201", 1600}, {"/orders", "POST", "400", 800}, {"/orders", "POST", "401", 800}, {"/orders/:id", "GET", "201", 1600}} {
		if v := value(t, fams, "http_requests_total", "route", c.route, "method", c.method, "status", c.status); v != c.want {
			t.Fatalf("http_requests_total{%s %s %s} = %v, want %v", c.route, c.method, c.status, v, c.want)
		}
	}
	if v := value(t, fams, "http_request_duration_seconds", "route", "/orders", "method", "POST"); v != 3200 {
		t.Fatalf("http_request_duration_seconds{/orders POST} counts %v, want 3200", v)
	}
	if v := value(t, fams, "journal_conflicts_total"); v != 160 {
		t.Fatalf("journal_conflicts_total = %v, want 160", v)
	}
	if v := value(t, fams, "order_actors_active"); v != 0 {
		t.Fatalf("order_actors_active = %v, want 0", v)
	}
}

func TestOnScrapeSetsGaugesBeforeEachScrape(t *testing.T) {
	m := metrics.New()
	members, calls := 1, 0
	m.OnScrape(func() {
		calls++
		m.SetClusterMembers(members)
		m.SetBackendUp("persistence", members > 1)
	})
	if v := value(t, scrape(t, m), "cluster_members"); v != 1 {
		t.Fatalf("cluster_members = %v, want 1", v)
	}
	members = 3
	fams := scrape(t, m)
	if v := value(t, fams, "cluster_members"); v != 3 {
		t.Fatalf("cluster_members = %v, want 3", v)
	}
	if v := value(t, fams, "backend_up", "component", "persistence"); v != 1 {
		t.Fatalf("backend_up = %v, want 1", v)
	}
	if calls != 2 {
		t.Fatalf("hook ran %d times for 2 scrapes", calls)
	}
}

// BenchmarkObserveHTTP: what the HTTP middleware records per request.
func BenchmarkObserveHTTP(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveHTTP("/orders/:id", "GET", 200, 30*time.Microsecond)
	}
}
