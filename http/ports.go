package httpapi

import "time"

// The bodies the node fills in for GET /, GET /stats and the probes. The
// API owns their shapes (the JSON names are the wire contract, checked
// against openapi.yaml); the node owns what goes in them.

// Info is the body of GET /.
type Info struct {
	Service     string        `json:"service"`
	Version     string        `json:"version"`
	NodeID      string        `json:"nodeId"`
	Mode        string        `json:"mode"`
	Transport   string        `json:"transport"`
	Persistence BackendInfo   `json:"persistence"`
	Members     []Member      `json:"members"`
	StartedAt   time.Time     `json:"startedAt"`
	Outbox      OutboxFigures `json:"outbox"`
}

// BackendInfo tells an operator what the persistence backend is and how
// durable it is.
type BackendInfo struct {
	Name       string `json:"name"`
	Address    string `json:"address,omitempty"`
	Durability string `json:"durability"`
}

// Member is one cluster member as the node sees it.
type Member struct {
	ID      string   `json:"id"`
	NodeID  string   `json:"nodeId,omitempty"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds,omitempty"`
}

// OutboxFigures is where the outbox stands, in GET / and GET /stats.
type OutboxFigures struct {
	// Lag is how many journaled events are not published yet.
	Lag uint64 `json:"lag"`
	// Checkpoint and Head are positions in the journal's global log.
	Checkpoint   uint64 `json:"checkpoint"`
	Head         uint64 `json:"head"`
	Published    uint64 `json:"published"`
	Failures     uint64 `json:"failures"`
	DeadLettered uint64 `json:"deadLettered"`
}

// HealthReport is the body of GET /health and GET /health/ready.
type HealthReport struct {
	// Status is "up" or "down".
	Status     string                     `json:"status"`
	NodeID     string                     `json:"nodeId"`
	Components map[string]ComponentHealth `json:"components"`
}

// ComponentHealth is the state of one dependency (persistence, transport,
// membership) or of the node itself.
type ComponentHealth struct {
	// Status is "up" or "down".
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
	// Monitor is the supervisor's view of the component, if it watches it.
	Monitor *Monitor `json:"monitor,omitempty"`
}

// Monitor is what the supervisor last saw of a component.
type Monitor struct {
	Up        bool      `json:"up"`
	LastError string    `json:"lastError,omitempty"`
	LatencyMS float64   `json:"latencyMs"`
	Since     time.Time `json:"since"`
	CheckedAt time.Time `json:"checkedAt"`
	Failures  int       `json:"consecutiveFailures"`
}
