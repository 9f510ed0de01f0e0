package node_test

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

type outboxReport struct {
	Lag, Published  uint64
	CheckpointAhead bool
	CheckpointReset *struct{ Checkpoint, StoredCheckpoint, Head uint64 }
	Partitions      []struct {
		Partition             int
		Checkpoint, Head, Lag uint64
		Owner                 string
	}
	// Checkpoint and Head are the sums over the partitions (positions are
	// dense on Redis, so Head is the number of records journaled).
	Checkpoint, Head uint64 `json:"-"`
}

func (r *outboxReport) sum(t *testing.T) {
	t.Helper()
	var lag uint64
	for i, p := range r.Partitions {
		if p.Partition != i {
			t.Fatalf("partition %d listed at %d", p.Partition, i)
		}
		r.Checkpoint += p.Checkpoint
		r.Head += p.Head
		lag += p.Lag
	}
	if lag != r.Lag {
		t.Fatalf("outbox lag %d, the partitions' lags add up to %d", r.Lag, lag)
	}
}

// outboxOf reads the outbox figures of GET /stats, GET / and GET /health,
// and the outbox_lag_events gauge, and fails unless the three lags and the
// gauge agree (within one cache period they read the same figures).
func outboxOf(t *testing.T, tn *testNode) (stats, health outboxReport, gauge uint64) {
	t.Helper()
	var s, i, h struct{ Outbox outboxReport }
	tn.expect(tn.do("GET", "/stats", ""), http.StatusOK).json(t, &s)
	tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &i)
	tn.do("GET", "/health", "").json(t, &h)
	m := tn.expect(tn.do("GET", "/metrics", ""), http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(m.body))
	found := false
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "outbox_lag_events "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("outbox_lag_events %q: %v", v, err)
			}
			gauge, found = uint64(f), true
		}
	}
	if !found {
		t.Fatalf("no outbox_lag_events in /metrics")
	}
	s.Outbox.sum(t)
	h.Outbox.sum(t)
	return s.Outbox, h.Outbox, gauge
}
