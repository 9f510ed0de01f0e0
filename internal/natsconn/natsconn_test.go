package natsconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log sink for handlers called from nats.go's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	poll.Eventually(t, 10*time.Second, poll.True(what, ok))
}

// TestReconnects stops and restarts a private server under a connection:
// the events are logged (without the password), publishes fail at once
// while it is down, and it reconnects by itself.
func TestReconnects(t *testing.T) {
	srv := testservers.StartNATS(t)
	var logs syncBuffer
	url := strings.Replace(srv.URL(), "nats://", "nats://ignored:s3cret@", 1)
	nc, err := Connect(context.Background(), Options{
		URL: url, Name: "natsconn-test",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if nc.Opts.Name != "natsconn-test" || nc.Opts.MaxReconnect != -1 || nc.Opts.ReconnectBufSize != -1 {
		t.Fatalf("options: name %q, max reconnect %d, reconnect buffer %d", nc.Opts.Name, nc.Opts.MaxReconnect, nc.Opts.ReconnectBufSize)
	}
	srv.Stop()
	waitFor(t, "the disconnect", func() bool { return !nc.IsConnected() })
	start := time.Now()
	if err := nc.Publish("x", []byte("y")); !errors.Is(err, natsgo.ErrReconnectBufExceeded) {
		t.Fatalf("publish while disconnected: %v, want ErrReconnectBufExceeded at once", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("publish while disconnected took %v", d)
	}
	srv.Start()
	waitFor(t, "the reconnect", nc.IsConnected)
	waitFor(t, "the reconnect log", func() bool { return strings.Contains(logs.String(), "nats: reconnected") })
	text := logs.String()
	if !strings.Contains(text, "nats: disconnected") || !strings.Contains(text, "connection=natsconn-test") {
		t.Fatalf("logs lack the disconnect or the connection name:\n%s", text)
	}
	if strings.Contains(text, "s3cret") {
		t.Fatalf("logs show the password:\n%s", text)
	}
}

func TestConnectUnreachable(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", testservers.FreePort(t))
	start := time.Now()
	if nc, err := Connect(context.Background(), Options{URL: url}); err == nil {
		nc.Close()
		t.Fatal("connected to a closed port")
	}
	if d := time.Since(start); d > DefaultTimeout+time.Second {
		t.Fatalf("failing took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if nc, err := Connect(ctx, Options{URL: testservers.NATS(t)}); !errors.Is(err, context.Canceled) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("Connect with a canceled context: %v", err)
	}
}

// TestConnectURLList: a comma-separated list (what --nats takes for a
// JetStream cluster), spaces and credentials included, connects while its
// first server is down.
func TestConnectURLList(t *testing.T) {
	dead := fmt.Sprintf("nats://user:s3cret@127.0.0.1:%d", testservers.FreePort(t))
	live := testservers.NATS(t)
	nc, err := Connect(context.Background(), Options{URL: dead + ", " + live})
	if err != nil {
		t.Fatalf("connect to %q: %v", dead+","+live, err)
	}
	defer nc.Close()
	if !nc.IsConnected() || !strings.Contains(live, strings.TrimPrefix(nc.ConnectedUrlRedacted(), "nats://")) {
		t.Fatalf("connected to %q, want %s", nc.ConnectedUrlRedacted(), live)
	}
}

func TestTransient(t *testing.T) {
	api := func(code, errCode int) error {
		return fmt.Errorf("create bucket: %w", &jetstream.APIError{Code: code, ErrorCode: jetstream.ErrorCode(errCode), Description: "x"})
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"no suitable peers (a server down or starting)", api(400, 10005), true},
		{"no meta leader", api(500, 10009), true},
		{"stream offline", api(500, 10118), true},
		{"temporarily unavailable", api(503, 10008), true},
		{"timeout", api(408, 0), true},
		{"replicas without a cluster", api(500, 10074), false},
		{"bad request", api(400, 10003), false},
		{"name in use", api(400, 10058), false},
		{"not an API error", errors.New("nats: timeout"), false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("%s: Transient = %v, want %v", c.name, got, c.want)
		}
	}
}
