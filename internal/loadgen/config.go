package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// MaxDuration is the hard upper bound on Config.Duration.
const MaxDuration = 10 * time.Minute

// maxConcurrency bounds Config.Concurrency (each worker keeps a connection
// per target open, so this is also a bound on file descriptors).
const maxConcurrency = 10_000

// Scenarios lists the scenario names Run accepts:
//
//   - live, ready: GET /health/live, /health/ready.
//   - create: POST /orders.
//   - read, history: GET /orders/{id}, /orders/{id}/history over Config.Pool
//     orders created in a warm-up phase that is not measured.
//   - list, stats: GET /orders?limit=Config.ListLimit, GET /stats.
//   - lifecycle: each worker creates an order, pays, ships and delivers it,
//     reads its history, and starts over; every request counts on its own.
//   - mix: operations chosen by Config.Mix weights. Each worker keeps the
//     orders it knows by state, starting with its share of the warm-up
//     orders: create adds a Pending one, pay takes a Pending one and makes it
//     Paid, ship Paid to Shipped, deliver takes a Shipped one, cancel a
//     Pending one. When there is no order in the state an operation needs,
//     the worker creates one instead and counts a fallback. read and history
//     pick any warm-up order (the mix moves those along too).
//
// The warm-up is not measured and is bounded by one minute of its own.
var Scenarios = []string{"live", "ready", "create", "read", "history", "list", "stats", "lifecycle", "mix"}

// Routes lists the values of Config.Route:
//
//   - any: reads go round-robin over the targets, whoever owns the order.
//   - owner: each read goes to the target whose node owns the order (the
//     node named by X-Order-Owner when the warm-up created it).
//   - other: each read goes to a target that does not own the order: the
//     target after the owner's in Config.Targets, so the node that answers
//     has to forward it to the owner.
//
// owner and other need the read or history scenario and at least two
// targets, each a different member of one cluster; every target must answer
// GET / with its nodeId.
var Routes = []string{RouteAny, RouteOwner, RouteOther}

// The values of Config.Route.
const (
	RouteAny   = "any"
	RouteOwner = "owner"
	RouteOther = "other"
)

// OwnerHeader names the cluster member whose order actor answered.
const OwnerHeader = "X-Order-Owner"

// Errors callers may test with errors.Is.
var (
	// ErrRemoteTarget means a target is not a loopback address and
	// Config.AllowRemote is off.
	ErrRemoteTarget = errors.New("target is not a loopback address")
	// ErrNoSuccess means a scenario finished without a single 2xx answer.
	ErrNoSuccess = errors.New("no successful requests")
)

// Config describes one run. Start from DefaultConfig and call Validate.
type Config struct {
	// Targets are base URLs (http or https, optionally with a path prefix);
	// requests are spread round-robin over them.
	Targets []string
	// Scenario is one of Scenarios.
	Scenario string
	// Mix weights the operations of the mix scenario.
	Mix Mix
	// Concurrency is the number of workers of the closed loop, or the cap on
	// requests in flight of the open loop.
	Concurrency int
	// Rate, when positive, selects the open loop: requests start at this
	// many per second, at most Concurrency in flight. A start that finds
	// them all in flight waits in a backlog of max(Concurrency, Rate/20)
	// starts (50 ms of schedule); when the backlog is full it is dropped and
	// counted (Report.Dropped).
	Rate float64
	// Duration bounds the measured phase; at most MaxDuration.
	Duration time.Duration
	// MaxRequests, when positive, ends the run after that many requests
	// (Duration still bounds it).
	MaxRequests uint64
	// Timeout bounds each request, from sending it to reading the whole
	// response body.
	Timeout time.Duration
	// Pool is the number of orders created in the warm-up of read, history
	// and mix.
	Pool int
	// ListLimit is the ?limit= of the list operation.
	ListLimit int
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// AllowRemote accepts targets that are not loopback addresses.
	AllowRemote bool
	// Route chooses the target of each read of the read and history
	// scenarios: one of Routes; "" means RouteAny.
	Route string
}

// DefaultConfig returns the defaults of the command-line tool.
func DefaultConfig() Config {
	m, _ := ParseMix(DefaultMix)
	return Config{
		Targets:     []string{"http://127.0.0.1:5000"},
		Scenario:    "live",
		Mix:         m,
		Concurrency: 64,
		Duration:    10 * time.Second,
		Timeout:     5 * time.Second,
		Pool:        1000,
		ListLimit:   20,
		Route:       RouteAny,
	}
}

// Validate checks the configuration and names the flag and value at fault.
func (c *Config) Validate() error {
	if len(c.Targets) == 0 {
		return errors.New("-targets: no target given")
	}
	for _, t := range c.Targets {
		if _, err := parseTarget(t, c.AllowRemote); err != nil {
			return err
		}
	}
	if !knownScenario(c.Scenario) {
		return fmt.Errorf("-scenario %q: unknown (want one of %s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if c.Scenario == "mix" && c.Mix.total() == 0 {
		return errors.New("-mix: all weights are zero")
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		return fmt.Errorf("-concurrency %d: want 1 to %d", c.Concurrency, maxConcurrency)
	}
	if c.Rate < 0 || c.Rate > 10_000_000 {
		return fmt.Errorf("-rate %g: want 0 (closed loop) or a rate up to 1e7 per second", c.Rate)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return fmt.Errorf("-duration %s: want more than 0 and at most %s", c.Duration, MaxDuration)
	}
	if c.Timeout <= 0 || c.Timeout > MaxDuration {
		return fmt.Errorf("-timeout %s: want more than 0 and at most %s", c.Timeout, MaxDuration)
	}
	if c.needsPool() && (c.Pool < 1 || c.Pool > 1_000_000) {
		return fmt.Errorf("-pool %d: scenario %s needs 1 to 1000000 orders", c.Pool, c.Scenario)
	}
	if c.ListLimit < 1 {
		return fmt.Errorf("-limit %d: want at least 1", c.ListLimit)
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		return errors.New("-token: contains a line break")
	}
	switch c.Route {
	case "", RouteAny:
	case RouteOwner, RouteOther:
		if c.Scenario != "read" && c.Scenario != "history" {
			return fmt.Errorf("-route %s: only for the read and history scenarios, not %s", c.Route, c.Scenario)
		}
		if len(c.Targets) < 2 {
			return fmt.Errorf("-route %s: needs at least 2 -targets, each a member of one cluster (got %d)", c.Route, len(c.Targets))
		}
	default:
		return fmt.Errorf("-route %q: unknown (want one of %s)", c.Route, strings.Join(Routes, ", "))
	}
	return nil
}

// routed reports whether reads are sent by owner rather than round-robin.
func (c *Config) routed() bool {
	return c.Route == RouteOwner || c.Route == RouteOther
}

func knownScenario(s string) bool {
	for _, n := range Scenarios {
		if n == s {
			return true
		}
	}
	return false
}

func (c *Config) needsPool() bool {
	switch c.Scenario {
	case "read", "history", "mix":
		return true
	}
	return false
}

// CheckTarget parses a base URL and, unless allowRemote, refuses it when its
// host is not a loopback address (127.0.0.0/8, ::1) or "localhost". Errors
// about the host wrap ErrRemoteTarget.
func CheckTarget(target string, allowRemote bool) error {
	_, err := parseTarget(target, allowRemote)
	return err
}

func parseTarget(target string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("-targets %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-targets %q: want an http:// or https:// base URL", target)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("-targets %q: no host", target)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("-targets %q: want a base URL without user info, query or fragment", target)
	}
	if !allowRemote && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("-targets %q: %w (127.0.0.0/8, ::1, localhost); pass -allow-remote to send load to %s", target, ErrRemoteTarget, u.Hostname())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// isLoopbackHost accepts "localhost" and literal loopback addresses. Other
// names are refused rather than resolved: a name could resolve elsewhere
// later. The dialer checks the resolved address again (see loopbackOnly).
func isLoopbackHost(h string) bool {
	if strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
