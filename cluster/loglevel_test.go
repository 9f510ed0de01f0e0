package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// protoactor's errors about a peer that went away (every planned stop or
// restart of a member) are not errors here; its other errors stay errors.
func TestPeerChurnIsNoError(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(minLevel{h: slog.NewTextHandler(&out, nil), min: slog.LevelWarn})
	log.Error("EndpointWriter lost connection", slog.String("address", "127.0.0.1:1"))
	log.Error("EndpointWriter failed to connect", slog.String("address", "127.0.0.1:1"))
	log.Info("Started Activator")
	log.Error("EndpointReader failed to deserialize")
	got := out.String()
	if strings.Contains(got, "lost connection") || strings.Contains(got, "failed to connect") || strings.Contains(got, "Activator") {
		t.Fatalf("peer churn or info logged: %s", got)
	}
	if !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "failed to deserialize") {
		t.Fatalf("a real protoactor error was dropped: %q", got)
	}
}
