package httpapi

import "time"

// The bodies the node fills in for GET /, GET /stats and the probes. The
// API owns their shapes (the JSON names are the wire contract, checked
// against openapi.yaml); the node owns what goes in them.

// Info is the body of GET /.
type Info struct {
	Service     string      `json:"service"`
	Version     string      `json:"version"`
	NodeID      string      `json:"nodeId"`
	Mode        string      `json:"mode"`
	Transport   string      `json:"transport"`
	Persistence BackendInfo `json:"persistence"`
	Members     []Member    `json:"members"`
	// View is this member's routing view, which members compare: nil on
	// a standalone node.
	View      *ClusterView  `json:"view,omitempty"`
	StartedAt time.Time     `json:"startedAt"`
	Outbox    OutboxFigures `json:"outbox"`
}

// ClusterView sums up where a member's placement puts actors: members that
// route alike show the same digest.
type ClusterView struct {
	Digest  string `json:"digest"`
	Members int    `json:"members"`
}

// BackendInfo tells an operator what the persistence backend is and how
// durable it is.
type BackendInfo struct {
	Name       string `json:"name"`
	Address    string `json:"address,omitempty"`
	Durability string `json:"durability"`
	// Profile is the durability profile in force: durable, default or none.
	Profile string `json:"profile,omitempty"`
}

// Member is one cluster member as the node sees it.
type Member struct {
	ID      string   `json:"id"`
	NodeID  string   `json:"nodeId,omitempty"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds,omitempty"`
	// Reachability is what this node's probes know of the member over the
	// node-to-node port; nil for this node itself and on a standalone node.
	Reachability *Reachability `json:"reachability,omitempty"`
}

// Reachability is one member's reachability as the answering node's probes
// see it.
type Reachability struct {
	// Reachable: the last probe was answered, directly or through another
	// member.
	Reachable bool `json:"reachable"`
	// Direct: the last direct probe was answered.
	Direct bool `json:"direct"`
	// Suspect: the last direct probes failed; requests to the member's
	// orders fail fast with 503 until it answers or leaves.
	Suspect bool `json:"suspect"`
	// RoundTripMs is the round trip of the last answered direct probe.
	RoundTripMs float64 `json:"roundTripMs"`
	// LastReached is when the member last answered (zero: never).
	LastReached time.Time `json:"lastReached,omitzero"`
	// ViewDigest is the member's view digest in its last answer: it should
	// equal this node's view digest.
	ViewDigest string `json:"viewDigest,omitempty"`
}

// OutboxFigures is where the outboxes stand, in GET /, GET /stats and GET
// /health: one outbox per journal partition. Lag and Partitions are the
// cluster's (read from the persistence backend, the same on every node);
// Published, Failures, DeadLettered and CheckpointReset are this node's
// (counted by the outboxes while this node hosted them). DeadLettered counts
// the events the transport refused for good and the entries of a
// partition's log that are not records, which the outboxes skipped.
type OutboxFigures struct {
	// Lag is how many journaled events are not published yet, in all.
	Lag          uint64 `json:"lag"`
	Published    uint64 `json:"published"`
	Failures     uint64 `json:"failures"`
	DeadLettered uint64 `json:"deadLettered"`
	// CheckpointAhead means an outbox's checkpoint was found ahead of its
	// partition's log: the backend lost data. It stays set on the node
	// whose outbox reset its checkpoint (CheckpointReset, the latest) until
	// that node restarts; other nodes show it while a stored checkpoint is
	// ahead.
	CheckpointAhead bool             `json:"checkpointAhead"`
	CheckpointReset *CheckpointReset `json:"checkpointReset,omitempty"`
	// Partitions are the partitions' outboxes, by partition.
	Partitions []OutboxPartition `json:"partitions"`
}

// OutboxPartition is where one partition's outbox stands.
type OutboxPartition struct {
	Partition int `json:"partition"`
	// Checkpoint is the position in the partition's log published so far,
	// Head the partition's last position, Lag the events between them.
	Checkpoint uint64 `json:"checkpoint"`
	Head       uint64 `json:"head"`
	Lag        uint64 `json:"lag"`
	// CheckpointAhead: the stored checkpoint is past the head.
	CheckpointAhead bool `json:"checkpointAhead,omitempty"`
	// Owner is the member (node-to-node address) that drains it, as this
	// node's placement says; empty while not known.
	Owner string `json:"owner,omitempty"`
}

// CheckpointReset is an outbox's latest reset of its checkpoint after it
// found it ahead of its partition's log.
type CheckpointReset struct {
	Partition int `json:"partition"`
	// Checkpoint is the position the outbox had published to.
	Checkpoint uint64 `json:"checkpoint"`
	// StoredCheckpoint is the checkpoint the backend held (0: lost).
	StoredCheckpoint uint64 `json:"storedCheckpoint"`
	// Head is the log's head then.
	Head uint64    `json:"head"`
	At   time.Time `json:"at"`
}

// ReadModelFigures is how the read side stands, in GET /stats.
type ReadModelFigures struct {
	// Applied is how many events the read model applied.
	Applied uint64 `json:"applied"`
	// Repaired is how many delivered events could not be applied as
	// delivered (a gap, a contradiction) and were read from the journal.
	Repaired uint64 `json:"repaired"`
	// DeadLettered is how many delivered events were skipped: neither
	// applicable nor in the journal, undecodable, or of a quarantined order.
	DeadLettered uint64 `json:"deadLettered"`
	// Quarantined is how many orders are left out because a record of
	// their journal stream cannot be read, plus the entries of the global
	// log that are not records at all, which the rebuild skipped.
	Quarantined int `json:"quarantined"`
	// Scope, when set, says that the lists and figures cover part of the
	// cluster only (an in-memory --peers experiment: this node's orders).
	Scope string `json:"scope,omitempty"`
}

// ReadModelHealth is the read side's section of GET /health and GET
// /health/ready: its figures and the most recent dead letters and
// quarantined orders (bounded lists, newest first). It never makes
// readiness fail: the read model goes on with every other order.
type ReadModelHealth struct {
	ReadModelFigures
	DeadLetters       []DeadLetter       `json:"deadLetters"`
	QuarantinedOrders []QuarantinedOrder `json:"quarantinedOrders"`
	// RebuildError, when set, says why the rebuild at start-up stopped
	// after position RebuildStoppedAt of the journal's global log: the
	// journal answered with an error that is neither an outage nor an entry
	// it can skip (one that breaks the backend's layout is skipped and
	// listed in QuarantinedOrders by position). Orders journaled after it
	// are missing from the read model until they change.
	RebuildError     string `json:"rebuildError,omitempty"`
	RebuildStoppedAt uint64 `json:"rebuildStoppedAt,omitempty"`
}

// DeadLetter is a delivered event the read model skipped.
type DeadLetter struct {
	EventID string `json:"eventId"`
	Type    string `json:"type"`
	// Reason is undecodable, invalid, not_in_journal, quarantined or
	// journal_error (the values of readmodel_dead_lettered_total's label).
	Reason   string    `json:"reason"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"`
}

// QuarantinedOrder is an order whose journal stream holds a record that
// cannot be read: the read model leaves it out and its actor refuses it.
// With an empty OrderID it is an entry of the global log that is not a
// record at all (no order id can be trusted), which the rebuild skipped;
// Position says where it is.
type QuarantinedOrder struct {
	OrderID string `json:"orderId"`
	// Version is the version of the first record that cannot be read.
	Version uint64 `json:"version"`
	// Partition and Position are that record's place in its partition's
	// log, when known.
	Partition int       `json:"partition"`
	Position  uint64    `json:"position,omitempty"`
	Error     string    `json:"error"`
	At        time.Time `json:"at"`
}

// HealthReport is the body of GET /health and GET /health/ready.
type HealthReport struct {
	// Status is "up" or "down".
	Status     string                     `json:"status"`
	NodeID     string                     `json:"nodeId"`
	Components map[string]ComponentHealth `json:"components"`
	// ReadModel, when set, reports what the read side could not apply.
	ReadModel *ReadModelHealth `json:"readModel,omitempty"`
	// Outbox, when set, is where the outbox stands (never a readiness
	// failure, CheckpointAhead included).
	Outbox *OutboxFigures `json:"outbox,omitempty"`
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
