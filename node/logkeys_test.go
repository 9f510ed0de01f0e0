package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// lockedBuffer is a bytes.Buffer safe for the node's concurrent loggers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// duplicateKey returns a key that one JSON object line holds twice ("" if
// none), looking at its top level.
func duplicateKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return "", err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		k := fmt.Sprint(tok)
		if seen[k] {
			return k, nil
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", err
		}
	}
	return "", nil
}

// No JSON log line of a cluster member repeats a key (membership lines
// named node_id twice).
func TestLogLinesRepeatNoKey(t *testing.T) {
	redis := testservers.Redis(t)
	var out lockedBuffer
	name := randomClusterName(t, "logs")
	tn := startNode(t, clusterOn(node.Redis, redis, name), func(c *node.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tn.create(seedOrder)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d log lines", len(lines))
	}
	membership := 0
	for _, l := range lines {
		k, err := duplicateKey(l)
		if err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		if k != "" {
			t.Errorf("key %q twice in %s", k, l)
		}
		if strings.Contains(l, `"component":"membership"`) {
			membership++
		}
	}
	if membership == 0 {
		t.Fatal("no membership line was checked")
	}
}
