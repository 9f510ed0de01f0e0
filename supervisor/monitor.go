// Package supervisor is the node's recovery service (what the .NET original
// calls RecoveryHostedService): a root supervisor actor with one monitor actor per
// external dependency (persistence, transport, cluster membership). A monitor
// checks its dependency on a timer (default every 30 s) and at once when the
// data path reports an error; after a failure it checks again with capped
// exponential backoff with jitter until the dependency answers (the clients
// reconnect by themselves; the monitor tells when they did). Status changes
// go to a Board that the health probes read, and onto the actor system's
// event stream as *StatusChanged.
package supervisor

import (
	"time"

	"github.com/ordersystem/ordersystem/internal/backoff"
)

// Status is what a monitor knows of its dependency.
type Status struct {
	Component string        `json:"-"`
	Up        bool          `json:"up"`
	LastError string        `json:"lastError,omitempty"`
	Latency   time.Duration `json:"-"`
	LatencyMS float64       `json:"latencyMs"`
	Since     time.Time     `json:"since"`
	CheckedAt time.Time     `json:"checkedAt"`
	Failures  int           `json:"consecutiveFailures"`
}

// Monitor is the state machine of one dependency's health: Record a check's
// outcome and it returns whether the status changed and when to check next.
// It is not safe for concurrent use (its actor owns it).
type Monitor struct {
	status   Status
	interval time.Duration
	backoff  backoff.Policy
}

// NewMonitor returns a monitor that assumes the dependency is up at now.
func NewMonitor(component string, now time.Time, interval time.Duration, policy backoff.Policy) *Monitor {
	return &Monitor{status: Status{Component: component, Up: true, Since: now}, interval: interval, backoff: policy}
}

// Status returns the current status.
func (m *Monitor) Status() Status { return m.status }

// Record folds in a check made at now that took latency and returned err. It
// returns whether Up changed and the delay until the next check: the regular
// interval while up, the backoff while down.
func (m *Monitor) Record(now time.Time, latency time.Duration, err error) (changed bool, next time.Duration) {
	s := &m.status
	s.CheckedAt, s.Latency, s.LatencyMS = now, latency, float64(latency.Microseconds())/1000
	if err == nil {
		changed = !s.Up
		if changed {
			s.Since = now
		}
		s.Up, s.Failures, s.LastError = true, 0, ""
		return changed, m.interval
	}
	changed = s.Up
	if changed {
		s.Since = now
	}
	s.Up = false
	s.Failures++
	s.LastError = err.Error()
	return changed, min(m.backoff.Delay(s.Failures), m.interval)
}
