package httpapi_test

import (
	"encoding/json"
	"testing"
	"time"

	httpapi "github.com/ordersystem/ordersystem/http"
)

// The node fills these bodies in; their JSON names are the wire contract
// of GET /, GET /stats and the probes (the node's JSON before the types
// moved here, field for field).
func TestPortBodiesJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 6, 25, 25, 0, time.UTC)
	outbox := httpapi.OutboxFigures{Lag: 1, Published: 4, Failures: 5, DeadLettered: 6,
		Partitions: []httpapi.OutboxPartition{{Partition: 0, Checkpoint: 2, Head: 3, Lag: 1, Owner: "h:1"}}}
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"info", httpapi.Info{Service: "ordersystem", Version: "v", NodeID: "n1", Mode: "cluster", Transport: "nats",
			Persistence: httpapi.BackendInfo{Name: "nats", Address: "nats://h:4222", Durability: "d"},
			Members:     []httpapi.Member{{ID: "m1", NodeID: "n1", Address: "h:1", Kinds: []string{"order"}}, {ID: "m2", Address: "h:2"}},
			StartedAt:   at, Outbox: outbox},
			`{"service":"ordersystem","version":"v","nodeId":"n1","mode":"cluster","transport":"nats",` +
				`"persistence":{"name":"nats","address":"nats://h:4222","durability":"d"},` +
				`"members":[{"id":"m1","nodeId":"n1","address":"h:1","kinds":["order"]},{"id":"m2","address":"h:2"}],` +
				`"startedAt":"2026-11-25T06:25:25Z","outbox":{"lag":1,"published":4,"failures":5,"deadLettered":6,"checkpointAhead":false,` +
				`"partitions":[{"partition":0,"checkpoint":2,"head":3,"lag":1,"owner":"h:1"}]}}`},
		{"info without members", httpapi.Info{Persistence: httpapi.BackendInfo{Name: "inmemory"}},
			`{"service":"","version":"","nodeId":"","mode":"","transport":"","persistence":{"name":"inmemory","durability":""},` +
				`"members":null,"startedAt":"0001-01-01T00:00:00Z","outbox":{"lag":0,"published":0,"failures":0,"deadLettered":0,"checkpointAhead":false,"partitions":null}}`},
		{"health", httpapi.HealthReport{Status: "down", NodeID: "n1", Components: map[string]httpapi.ComponentHealth{
			"node":        {Status: "down", Error: "shutting down"},
			"persistence": {Status: "up", LatencyMS: 0.5, Monitor: &httpapi.Monitor{Up: true, LatencyMS: 0.25, Since: at, CheckedAt: at}},
			"transport": {Status: "down", LatencyMS: 1, Error: "refused",
				Monitor: &httpapi.Monitor{LastError: "refused", LatencyMS: 1, Since: at, CheckedAt: at, Failures: 3}},
		}},
			`{"status":"down","nodeId":"n1","components":{"node":{"status":"down","latencyMs":0,"error":"shutting down"},` +
				`"persistence":{"status":"up","latencyMs":0.5,"monitor":{"up":true,"latencyMs":0.25,"since":"2026-11-25T06:25:25Z","checkedAt":"2026-11-25T06:25:25Z","consecutiveFailures":0}},` +
				`"transport":{"status":"down","latencyMs":1,"error":"refused","monitor":{"up":false,"lastError":"refused","latencyMs":1,"since":"2026-11-25T06:25:25Z","checkedAt":"2026-11-25T06:25:25Z","consecutiveFailures":3}}}}`},
		{"health with a checkpoint reset", httpapi.HealthReport{Status: "up", NodeID: "n1", Components: map[string]httpapi.ComponentHealth{},
			Outbox: &httpapi.OutboxFigures{Lag: 0, Published: 4, CheckpointAhead: true,
				CheckpointReset: &httpapi.CheckpointReset{Partition: 2, Checkpoint: 3, StoredCheckpoint: 0, Head: 0, At: at},
				Partitions:      []httpapi.OutboxPartition{{Partition: 2, Checkpoint: 1, Head: 1, CheckpointAhead: true}}}},
			`{"status":"up","nodeId":"n1","components":{},"outbox":{"lag":0,"published":4,"failures":0,"deadLettered":0,` +
				`"checkpointAhead":true,"checkpointReset":{"partition":2,"checkpoint":3,"storedCheckpoint":0,"head":0,"at":"2026-11-25T06:25:25Z"},` +
				`"partitions":[{"partition":2,"checkpoint":1,"head":1,"lag":0,"checkpointAhead":true}]}}`},
		{"read model figures", httpapi.ReadModelFigures{Applied: 7, Repaired: 2, DeadLettered: 1, Quarantined: 3},
			`{"applied":7,"repaired":2,"deadLettered":1,"quarantined":3}`},
		{"health with the read model", httpapi.HealthReport{Status: "up", NodeID: "n1", Components: map[string]httpapi.ComponentHealth{},
			ReadModel: &httpapi.ReadModelHealth{ReadModelFigures: httpapi.ReadModelFigures{DeadLettered: 1, Quarantined: 1},
				DeadLetters:       []httpapi.DeadLetter{{EventID: "x:2", Type: "OrderPaid", Reason: "not_in_journal", Error: "e", Attempts: 4, At: at}},
				QuarantinedOrders: []httpapi.QuarantinedOrder{{OrderID: "o", Version: 2, Error: "bad", At: at}}}},
			`{"status":"up","nodeId":"n1","components":{},"readModel":{"applied":0,"repaired":0,"deadLettered":1,"quarantined":1,` +
				`"deadLetters":[{"eventId":"x:2","type":"OrderPaid","reason":"not_in_journal","error":"e","attempts":4,"at":"2026-11-25T06:25:25Z"}],` +
				`"quarantinedOrders":[{"orderId":"o","version":2,"partition":0,"error":"bad","at":"2026-11-25T06:25:25Z"}]}}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.name, b, err, c.want)
		}
	}
}
