package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	httpapi "github.com/ordersystem/ordersystem/http"
)

// serveAPI serves the API (without backends: only what needs none is asked)
// with the node's HTTP server and listener built from cfg.
func serveAPI(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := cfg.httpServer(httpapi.New(httpapi.Config{}))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(cfg.httpListener(ln)) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// readUntilClosed reads conn until the server closes it and returns what
// it sent and how long that took; it fails after limit.
func readUntilClosed(t *testing.T, conn net.Conn, limit time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection within %s (read %q)", limit, b)
	}
	return string(b), time.Since(start)
}

func TestSlowClientsAreDisconnected(t *testing.T) {
	cfg := Default()
	cfg.ReadTimeout = 300 * time.Millisecond
	addr := serveAPI(t, cfg)
	cases := []struct {
		name, sent, answer string
	}{
		{"headers never end", "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", ""},
		{"body never ends", "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"customerId\":", "HTTP/1.1 408 Request Timeout"},
		{"nothing sent", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.sent); err != nil {
				t.Fatal(err)
			}
			got, took := readUntilClosed(t, conn, 10*time.Second)
			if !strings.HasPrefix(got, c.answer) {
				t.Fatalf("answer %q, want %q", got, c.answer)
			}
			t.Logf("closed after %s", took)
		})
	}
}

func TestServerTimeouts(t *testing.T) {
	cfg := Default()
	srv := cfg.httpServer(http.NotFoundHandler())
	if srv.ReadTimeout != 30*time.Second || srv.ReadHeaderTimeout != 10*time.Second || srv.IdleTimeout == 0 {
		t.Fatalf("read %s, header %s, idle %s", srv.ReadTimeout, srv.ReadHeaderTimeout, srv.IdleTimeout)
	}
	// The write deadline runs from the end of the headers: it must leave
	// time to read the body and to call the actor.
	if srv.WriteTimeout <= cfg.ReadTimeout+cfg.RequestTimeout {
		t.Fatalf("write timeout %s, read %s, request %s", srv.WriteTimeout, cfg.ReadTimeout, cfg.RequestTimeout)
	}
	cfg.ReadTimeout = time.Second
	if srv := cfg.httpServer(http.NotFoundHandler()); srv.ReadHeaderTimeout != time.Second {
		t.Fatalf("header timeout %s above the read timeout", srv.ReadHeaderTimeout)
	}
}

func TestMaxConnections(t *testing.T) {
	cfg := Default()
	cfg.MaxConnections, cfg.ReadTimeout = 2, time.Minute
	addr := serveAPI(t, cfg)
	// Two connections hold the cap: each has sent part of its headers.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr) // the kernel's backlog takes it
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if _, err := io.WriteString(third, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(third)
	_ = third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if res, err := http.ReadResponse(rd, nil); err == nil {
		t.Fatalf("a third connection was served past the cap: %s", res.Status)
	}
	held[0].Close()
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("once a connection closed: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", res.Status)
	}
}

func TestReadSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file, token, want, err string
	}{
		{"newline dropped", write("nl", "s3cret-token\n"), "", "s3cret-token", ""},
		{"CRLF dropped", write("crlf", "s3cret-token\r\n"), "", "s3cret-token", ""},
		{"no newline", write("plain", "s3cret-token"), "", "s3cret-token", ""},
		{"empty", write("empty", "\n"), "", "", "is empty"},
		{"missing", filepath.Join(dir, "nope"), "", "", "no such file"},
		{"both set", write("both", "s3cret-token"), "other", "", "--api-token is set too"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			cfg.APIToken, cfg.APITokenFile = c.token, c.file
			err := cfg.ReadSecretFiles()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "--api-token-file="+c.file) {
					t.Fatalf("error %v, want one naming the flag and %q", err, c.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || cfg.APIToken != c.want {
				t.Fatalf("token %q, %v; want %q", cfg.APIToken, err, c.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A file that was not read refuses to start rather than serve unprotected.
	cfg := Default()
	cfg.APITokenFile = filepath.Join(dir, "plain")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--api-token-file") {
		t.Fatalf("Validate of an unread token file: %v", err)
	}
	cfg = Default()
	cfg.APIToken = "two words"
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "two words") {
		t.Fatalf("Validate of a token with a space: %v", err)
	}
}
