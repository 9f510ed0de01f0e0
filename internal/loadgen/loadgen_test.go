package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig returns a configuration for a fake server: small, and bounded
// by a request budget so that counts are exact.
func testConfig(url, scenario string) Config {
	c := DefaultConfig()
	c.Targets = []string{url}
	c.Scenario = scenario
	c.Concurrency = 8
	c.Duration = 20 * time.Second
	c.MaxRequests = 400
	c.Pool = 40
	return c
}

func mustRun(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, n := range rep.Notes {
		t.Logf("note: %s", n)
	}
	return rep
}

func TestReportCountsRequestsAndStatuses(t *testing.T) {
	f := &fakeAPI{liveStatus: func(n int) int {
		switch {
		case n%5 == 0:
			return http.StatusServiceUnavailable
		case n%7 == 0:
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	}}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 1000
	rep := mustRun(t, cfg)

	total, status, _ := f.counts()
	if rep.Requests != 1000 || total != 1000 {
		t.Fatalf("requests: report %d, server %d; want 1000 each", rep.Requests, total)
	}
	if !maps.Equal(rep.Status, status) {
		t.Fatalf("status counts: report %v, server %v", rep.Status, status)
	}
	if rep.Successes != status[200] {
		t.Fatalf("successes %d, want the server's 200s %d", rep.Successes, status[200])
	}
	if len(rep.Errors) != 0 || rep.Aborted != 0 {
		t.Fatalf("errors %v aborted %d, want none", rep.Errors, rep.Aborted)
	}
	if rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P90 || rep.Latency.P90 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
		t.Fatalf("latency percentiles out of order: %+v", rep.Latency)
	}
	if want := float64(rep.Successes) / rep.Elapsed.Seconds(); rep.Throughput != want {
		t.Fatalf("throughput %v, want %v", rep.Throughput, want)
	}
	if rep.Operations != nil {
		t.Fatalf("one operation should have no breakdown, got %+v", rep.Operations)
	}
}

func TestDurationBoundsTheRun(t *testing.T) {
	// Every answer takes 30 s unless the client gives up: only the
	// duration can end this run.
	f := &fakeAPI{delay: 30 * time.Second}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 0
	cfg.Timeout = time.Minute
	cfg.Duration = 300 * time.Millisecond
	start := time.Now()
	rep := mustRun(t, cfg)
	took := time.Since(start)
	if took > cfg.Duration+2*time.Second {
		t.Fatalf("run took %s with -duration %s", took, cfg.Duration)
	}
	if rep.Elapsed < cfg.Duration {
		t.Fatalf("measured phase %s, shorter than the duration %s", rep.Elapsed, cfg.Duration)
	}
	if rep.Requests != 0 || rep.Aborted != uint64(cfg.Concurrency) {
		t.Fatalf("requests %d aborted %d; want 0 and one per worker (%d)", rep.Requests, rep.Aborted, cfg.Concurrency)
	}
	if err := CheckSuccess([]Report{rep}); !errors.Is(err, ErrNoSuccess) {
		t.Fatalf("CheckSuccess = %v, want ErrNoSuccess", err)
	}
}

func TestDurationEndsAFastRun(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{})
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 0
	cfg.Duration = 200 * time.Millisecond
	start := time.Now()
	rep := mustRun(t, cfg)
	if took := time.Since(start); took > cfg.Duration+2*time.Second {
		t.Fatalf("run took %s with -duration %s", took, cfg.Duration)
	}
	if rep.Successes == 0 {
		t.Fatal("no successful request in 200ms against a fast server")
	}
}

func TestTimeoutsAreCounted(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{delay: 5 * time.Second})
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 4
	cfg.Concurrency = 2
	cfg.Timeout = 50 * time.Millisecond
	rep := mustRun(t, cfg)
	if rep.Requests != 4 || rep.Errors[ErrKindTimeout] != 4 || rep.Successes != 0 || len(rep.Status) != 0 {
		t.Fatalf("requests %d errors %v status %v; want 4 timeouts", rep.Requests, rep.Errors, rep.Status)
	}
}

func TestWorkerRecoversAfterATimeout(t *testing.T) {
	// The first two answers come too late, the rest at once: the worker's
	// reusable deadline must be rebuilt after it fired.
	srv := newFakeServer(t, &fakeAPI{delay: 5 * time.Second, slow: 2})
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 6
	cfg.Concurrency = 1
	cfg.Timeout = 100 * time.Millisecond
	rep := mustRun(t, cfg)
	if rep.Errors[ErrKindTimeout] != 2 || rep.Successes != 4 {
		t.Fatalf("errors %v successes %d; want 2 timeouts then 4 successes", rep.Errors, rep.Successes)
	}
}

func TestConnectionRefusedIsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testConfig("http://"+addr, "live")
	cfg.MaxRequests = 10
	cfg.Concurrency = 2
	rep := mustRun(t, cfg)
	if rep.Requests != 10 || rep.Errors[ErrKindConnRefused] != 10 {
		t.Fatalf("requests %d errors %v; want 10 refused connections", rep.Requests, rep.Errors)
	}
	if err := CheckSuccess([]Report{rep}); !errors.Is(err, ErrNoSuccess) || !strings.Contains(err.Error(), "live") {
		t.Fatalf("CheckSuccess = %v, want ErrNoSuccess naming live", err)
	}
}

func TestLifecycleFollowsTheStateMachine(t *testing.T) {
	f := &fakeAPI{}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "lifecycle")
	cfg.MaxRequests = 503
	rep := mustRun(t, cfg)
	total, status, routes := f.counts()
	if rep.Requests != 503 || total != 503 {
		t.Fatalf("requests: report %d, server %d; want 503", rep.Requests, total)
	}
	if rep.Successes != 503 {
		t.Fatalf("successes %d of 503, status %v", rep.Successes, status)
	}
	want := map[string]bool{"create": true, "pay": true, "ship": true, "deliver": true, "history": true}
	var sum uint64
	per := map[string]uint64{}
	for _, o := range rep.Operations {
		if !want[o.Op] {
			t.Errorf("unexpected operation %s", o.Op)
		}
		per[o.Op] = o.Requests
		sum += o.Requests
	}
	if sum != rep.Requests || len(per) != len(want) {
		t.Fatalf("operations %v do not add up to %d", per, rep.Requests)
	}
	// Each worker is somewhere in its cycle when the budget runs out.
	for _, step := range []string{"pay", "ship", "deliver", "history"} {
		if per[step] > per["create"] || per["create"]-per[step] > uint64(cfg.Concurrency) {
			t.Errorf("%s %d vs create %d: not one per created order", step, per[step], per["create"])
		}
	}
	if routes["POST /orders"] != int(per["create"]) {
		t.Errorf("server saw %d creates, report %d", routes["POST /orders"], per["create"])
	}
}

func TestCreateWithoutLocationUsesTheBody(t *testing.T) {
	f := &fakeAPI{noLocation: true}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "lifecycle")
	cfg.MaxRequests = 100
	rep := mustRun(t, cfg)
	if rep.Successes != 100 {
		t.Fatalf("successes %d of 100: status %v errors %v", rep.Successes, rep.Status, rep.Errors)
	}
}

func TestMixAdvancesOrdersWithoutConflicts(t *testing.T) {
	f := &fakeAPI{}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "mix")
	mix, err := ParseMix("create=1,pay=2,ship=2,deliver=1,cancel=1,read=3,history=1,list=1,stats=1,live=1,ready=1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Mix = mix
	cfg.MaxRequests = 2000
	rep := mustRun(t, cfg)
	if rep.WarmupOrders != cfg.Pool {
		t.Fatalf("warm-up created %d orders, want %d", rep.WarmupOrders, cfg.Pool)
	}
	total, status, routes := f.counts()
	if rep.Requests != 2000 || total != 2000+cfg.Pool {
		t.Fatalf("requests: report %d, server %d; want 2000 plus %d warm-up", rep.Requests, total, cfg.Pool)
	}
	if rep.Successes != rep.Requests {
		t.Fatalf("successes %d of %d: status %v errors %v", rep.Successes, rep.Requests, rep.Status, rep.Errors)
	}
	if len(rep.Operations) != 11 {
		t.Fatalf("want all 11 operations in the breakdown, got %d", len(rep.Operations))
	}
	if status[http.StatusConflict] != 0 || status[http.StatusNotFound] != 0 {
		t.Fatalf("server answered conflicts or unknown orders: %v", status)
	}
	if routes["GET /orders"] == 0 {
		t.Fatalf("no list request reached the server: %v", routes)
	}
}

func TestReadUsesTheWarmupPool(t *testing.T) {
	f := &fakeAPI{}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "read")
	cfg.Pool = 25
	rep := mustRun(t, cfg)
	_, status, routes := f.counts()
	if routes["POST /orders"] != 25 || rep.WarmupOrders != 25 {
		t.Fatalf("warm-up: server saw %d creates, report %d; want 25", routes["POST /orders"], rep.WarmupOrders)
	}
	if rep.Successes != cfg.MaxRequests || status[http.StatusNotFound] != 0 {
		t.Fatalf("successes %d of %d, server status %v", rep.Successes, cfg.MaxRequests, status)
	}
	if rep.Status[http.StatusCreated] != 0 {
		t.Fatal("warm-up requests leaked into the report")
	}
}

func TestWarmupFailureIsReported(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{refuse: map[string]struct{}{"POST /orders": {}}})
	cfg := testConfig(srv.URL, "read")
	cfg.Pool = 10
	rep := mustRun(t, cfg)
	if rep.Successes != 0 || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "warm-up created 0 of 10") || !strings.Contains(rep.Notes[0], "503:10") {
		t.Fatalf("want a zero-success report with a warm-up note; got %+v", rep)
	}
}

func TestTokenIsSent(t *testing.T) {
	f := &fakeAPI{token: "s3cret"}
	srv := newFakeServer(t, f)
	cfg := testConfig(srv.URL, "create")
	cfg.MaxRequests = 50
	if rep := mustRun(t, cfg); rep.Status[http.StatusUnauthorized] != 50 {
		t.Fatalf("without a token: status %v, want 50 401s", rep.Status)
	}
	cfg.Token = "s3cret"
	if rep := mustRun(t, cfg); rep.Status[http.StatusCreated] != 50 {
		t.Fatalf("with the token: status %v, want 50 201s", rep.Status)
	}
}

func TestTargetsAreUsedRoundRobin(t *testing.T) {
	a, b := &fakeAPI{}, &fakeAPI{}
	sa, sb := newFakeServer(t, a), newFakeServer(t, b)
	cfg := testConfig(sa.URL, "live")
	cfg.Targets = []string{sa.URL, sb.URL + "/"}
	cfg.Concurrency = 1
	cfg.MaxRequests = 101
	rep := mustRun(t, cfg)
	na, _, _ := a.counts()
	nb, _, _ := b.counts()
	if rep.Successes != 101 || na != 51 || nb != 50 {
		t.Fatalf("successes %d, target a %d, b %d; want 101 split 51/50", rep.Successes, na, nb)
	}
}

func TestOpenLoopKeepsTheRate(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{})
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 0
	cfg.Rate = 200
	cfg.Duration = time.Second
	rep := mustRun(t, cfg)
	if rep.Mode != "open" {
		t.Fatalf("mode %q, want open", rep.Mode)
	}
	// At most one start per 1/rate plus the one at time zero; allow a slow
	// machine to fall behind.
	if rep.Requests+rep.Aborted+rep.Dropped > 201 || rep.Requests < 100 {
		t.Fatalf("%d requests (%d aborted, %d dropped) in 1s at 200/s", rep.Requests, rep.Aborted, rep.Dropped)
	}
}

func TestOpenLoopDropsWhenSaturated(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{delay: 30 * time.Second})
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 0
	cfg.Rate = 1000
	cfg.Concurrency = 2
	cfg.Duration = 300 * time.Millisecond
	rep := mustRun(t, cfg)
	if rep.Aborted != 2 || rep.Dropped < 100 {
		t.Fatalf("aborted %d dropped %d; want 2 in flight and the rest dropped", rep.Aborted, rep.Dropped)
	}
}

func TestOpenLoopStopsOnBudget(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{})
	cfg := testConfig(srv.URL, "live")
	cfg.Rate = 2000
	cfg.MaxRequests = 100
	start := time.Now()
	rep := mustRun(t, cfg)
	if rep.Requests != 100 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d requests in %s; want 100, quickly", rep.Requests, time.Since(start))
	}
}

func TestContextCancelEndsTheRun(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{})
	cfg := testConfig(srv.URL, "live")
	cfg.MaxRequests = 0
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Elapsed > 2*time.Second || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[len(rep.Notes)-1], "interrupted") {
		t.Fatalf("elapsed %s notes %q; want an early end with a note", rep.Elapsed, rep.Notes)
	}
}

func TestLoopbackCheck(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"http://127.0.0.1:5000", true},
		{"http://127.8.9.10:5000", true},
		{"http://localhost:5000", true},
		{"http://LOCALHOST.:5000/api", true},
		{"https://[::1]:5443", true},
		{"http://[::ffff:127.0.0.1]:5000", true},
		{"http://10.0.0.1:5000", false},
		{"http://0.0.0.0:5000", false},
		{"http://[::]:5000", false},
		{"http://example.com", false},
		{"http://localhost.example.com:5000", false},
		{"http://127.0.0.1.nip.io", false},
		{"http://[2001:db8::1]:80", false},
	} {
		err := CheckTarget(tc.target, false)
		if tc.ok != (err == nil) {
			t.Errorf("CheckTarget(%q) = %v, want ok=%v", tc.target, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrRemoteTarget) || !strings.Contains(err.Error(), "-allow-remote") || !strings.Contains(err.Error(), tc.target) {
				t.Errorf("CheckTarget(%q) = %q: want ErrRemoteTarget naming the URL and -allow-remote", tc.target, err)
			}
			if err := CheckTarget(tc.target, true); err != nil {
				t.Errorf("CheckTarget(%q, allowRemote) = %v", tc.target, err)
			}
		}
	}
	for _, bad := range []string{"127.0.0.1:5000", "ftp://127.0.0.1", "http://", "http://127.0.0.1/?x=1", "http://u:p@127.0.0.1"} {
		if err := CheckTarget(bad, true); err == nil || errors.Is(err, ErrRemoteTarget) {
			t.Errorf("CheckTarget(%q) = %v, want a malformed-URL error", bad, err)
		}
	}
}

func TestRunRefusesRemoteTargets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Targets = []string{"http://127.0.0.1:5000", "http://192.0.2.1:5000"}
	_, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrRemoteTarget) || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Fatalf("Run = %v, want ErrRemoteTarget naming 192.0.2.1", err)
	}
}

func TestDialerRefusesRemoteAddresses(t *testing.T) {
	if err := loopbackOnly("tcp", "127.0.0.1:80", nil); err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	if err := loopbackOnly("tcp", "[::1]:80", nil); err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	err := loopbackOnly("tcp", "192.0.2.1:80", nil)
	if err == nil || classify(err) != ekNotLoopback {
		t.Fatalf("remote address: err %v kind %v, want not_loopback", err, err)
	}
}

func TestValidateNamesFlagAndValue(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Duration = 11 * time.Minute }, "-duration 11m0s"},
		{func(c *Config) { c.Duration = 0 }, "-duration 0s"},
		{func(c *Config) { c.Concurrency = 0 }, "-concurrency 0"},
		{func(c *Config) { c.Rate = -1 }, "-rate -1"},
		{func(c *Config) { c.Timeout = 0 }, "-timeout 0s"},
		{func(c *Config) { c.Scenario = "nope" }, `-scenario "nope"`},
		{func(c *Config) { c.Scenario = "read"; c.Pool = 0 }, "-pool 0"},
		{func(c *Config) { c.Targets = nil }, "-targets"},
		{func(c *Config) { c.Token = "a\nb" }, "-token"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
	c := DefaultConfig()
	c.Duration = MaxDuration
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() with the maximum duration: %v", err)
	}
}

func TestRatios(t *testing.T) {
	reports := []Report{
		{Scenario: "live", Throughput: 40000},
		{Scenario: "create", Throughput: 24800},
		{Scenario: "read", Throughput: 36400},
		{Scenario: "mix", Throughput: 0},
	}
	got := Ratios(reports)
	want := []Ratio{
		{Name: "create/live", Value: 0.62, Defined: true},
		{Name: "read/live", Value: 0.91, Defined: true},
		{Name: "mix/live", Value: 0, Defined: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Ratios = %+v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Defined != want[i].Defined || abs(got[i].Value-want[i].Value) > 1e-9 {
			t.Errorf("ratio %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if Ratios(reports[:1]) != nil {
		t.Error("one report should have no ratios")
	}
	undef := Ratios([]Report{{Scenario: "a"}, {Scenario: "b", Throughput: 5}})
	if len(undef) != 1 || undef[0].Defined {
		t.Errorf("ratio over a zero base = %+v, want undefined", undef)
	}

	var buf bytes.Buffer
	if err := WriteText(&buf, reports[:3]); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"create/live 0.62\n", "read/live 0.91\n"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("text output lacks %q:\n%s", line, buf.String())
		}
	}
	buf.Reset()
	if err := WriteJSON(&buf, reports[:2]); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Scenarios []map[string]any `json:"scenarios"`
		Ratios    []Ratio          `json:"ratios"`
	}
	if err := json.Unmarshal(buf.Bytes(), &res); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, buf.String())
	}
	if len(res.Scenarios) != 2 || len(res.Ratios) != 1 || abs(res.Ratios[0].Value-0.62) > 1e-9 {
		t.Fatalf("JSON output: %+v", res)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestJSONReport(t *testing.T) {
	srv := newFakeServer(t, &fakeAPI{})
	cfg := testConfig(srv.URL, "lifecycle")
	cfg.MaxRequests = 50
	rep := mustRun(t, cfg)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, []Report{rep}); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Scenarios []struct {
			Scenario       string             `json:"scenario"`
			Requests       uint64             `json:"requests"`
			Status         map[string]uint64  `json:"status"`
			LatencyMs      map[string]float64 `json:"latencyMs"`
			ElapsedSeconds float64            `json:"elapsedSeconds"`
			Operations     []OpReport         `json:"operations"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(buf.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	s := res.Scenarios[0]
	if s.Scenario != "lifecycle" || s.Requests != 50 || s.Status["201"] == 0 || s.LatencyMs["p99"] <= 0 || s.ElapsedSeconds <= 0 || len(s.Operations) != 5 {
		t.Fatalf("JSON report: %s", buf.String())
	}
}
