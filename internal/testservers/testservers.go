package testservers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/poll"
)

// Shared server addresses, overridable with ORDERSYSTEM_TEST_REDIS and
// ORDERSYSTEM_TEST_NATS.
var (
	SharedRedisAddr = envOr("ORDERSYSTEM_TEST_REDIS", "127.0.0.1:6379")
	SharedNATSURL   = envOr("ORDERSYSTEM_TEST_NATS", "nats://127.0.0.1:4222")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skip(msg)
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis returns the address of a Redis server for tests that do not break it:
// the shared one if it answers, else a private one.
func Redis(t testing.TB) string {
	t.Helper()
	if reachable(SharedRedisAddr) {
		return SharedRedisAddr
	}
	return StartRedis(t).Addr()
}

// RedisServer is a private redis-server process on a free port.
type RedisServer struct {
	t         testing.TB
	bin       string
	port      int
	dir       string
	replicaOf string // host:port of its primary, or "" for a primary
	cmd       *exec.Cmd
}

// StartRedis starts a private redis-server (with an append-only file, so a
// restart keeps data) and stops it when the test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "no redis-server binary on PATH to start a private Redis (install redis-server)")
	}
	s := &RedisServer{t: t, bin: bin, port: FreePort(t), dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// StartRedisReplica starts a private redis-server like StartRedis that
// replicates the server at primaryAddr (--replicaof), waits until its
// replication link is up (master_link_status:up), and stops it when the
// test ends. A Sentinel that promotes it (REPLICAOF NO ONE) makes it a
// primary until it is restarted, when it replicates primaryAddr again.
func StartRedisReplica(t testing.TB, primaryAddr string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "no redis-server binary on PATH to start a private Redis replica (install redis-server)")
	}
	s := &RedisServer{t: t, bin: bin, port: FreePort(t), dir: t.TempDir(), replicaOf: primaryAddr}
	s.Start()
	t.Cleanup(s.Stop)
	rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	defer rdb.Close()
	poll.Eventually(t, 10*time.Second, func() error {
		info, err := rdb.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica %s of %s: link not up yet", s.Addr(), primaryAddr)
		}
		return nil
	})
	return s
}

// Addr is host:port of the server.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start (re)starts the server on its port with its data directory.
func (s *RedisServer) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--protected-mode", "no")
	if s.replicaOf != "" {
		host, port, err := net.SplitHostPort(s.replicaOf)
		if err != nil {
			s.t.Fatalf("redis replica: primary address %q: %v", s.replicaOf, err)
		}
		cmd.Args = append(cmd.Args, "--replicaof", host, port)
	}
	cmd.Stdout, cmd.Stderr = nil, nil
	killWithParent(cmd) // a test that panics runs no Cleanup
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	poll.Eventually(s.t, 10*time.Second, poll.True("redis-server on "+s.Addr(), func() bool { return reachable(s.Addr()) }))
}

// Stop kills the server (SIGKILL: nothing is flushed beyond what fsync did).
func (s *RedisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the server and starts it again on the same port and data.
func (s *RedisServer) Restart() {
	s.Stop()
	s.Start()
}

// RestartEmpty kills the server, deletes its data and starts it again on
// the same port: a Redis that lost everything under its clients.
func (s *RedisServer) RestartEmpty() {
	s.t.Helper()
	s.Stop()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.t.Fatalf("read the redis data directory: %v", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			s.t.Fatalf("delete redis data: %v", err)
		}
	}
	s.Start()
}

// NATS returns the URL of a NATS server with JetStream for tests that do not
// break it: the shared one if it answers, else an embedded one.
func NATS(t testing.TB) string {
	t.Helper()
	if u := SharedNATSURL; reachable(hostPort(u)) {
		pinStoreDir(t, u)
		return u
	}
	return StartNATS(t).URL()
}

// pinStoreDir makes sure the server keeps one file-storage stream that tests
// never delete. nats-server removes an account's streams directory in a
// goroutine once its last stream is deleted, and a stream created at that
// moment fails with "error creating store for stream" (its MkdirAll loses
// the race). Tests create and delete many streams, so they would hit it.
func pinStoreDir(t testing.TB, url string) {
	t.Helper()
	nc, err := natsgo.Connect(url, natsgo.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("nats at %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("nats at %s: %v", url, err)
	}
	// On a fresh cluster the request may reach a server before the cluster
	// has a meta leader, or its reply may be lost: nats.go sends it once
	// and waits for ctx. So ask in attempts of 3 s, for at most 30 s (the
	// same configuration again is answered with the stream).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:     "OSTEST_KEEP",
			Subjects: []string{"ostest-keep"},
			Storage:  jetstream.FileStorage,
			MaxMsgs:  1,
		})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats at %s: pin stream OSTEST_KEEP: %v", url, err)
		}
		t.Logf("nats at %s: pin stream OSTEST_KEEP: %v; asking again", url, err)
		time.Sleep(200 * time.Millisecond)
	}
}

func hostPort(url string) string {
	if i := len("nats://"); len(url) > i && url[:i] == "nats://" {
		return url[i:]
	}
	return url
}

// NATSServer is an embedded nats-server with JetStream on a free port.
type NATSServer struct {
	t    testing.TB
	port int
	dir  string
	srv  *natsserver.Server
}

// StartNATS starts an embedded JetStream server (file storage in a temp dir)
// and shuts it down when the test ends.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	s := &NATSServer{t: t, port: FreePort(t), dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	pinStoreDir(t, s.URL())
	return s
}

// URL is the server's client URL.
func (s *NATSServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Start (re)starts the server on its port with its store directory.
func (s *NATSServer) Start() {
	s.t.Helper()
	if s.srv != nil {
		return
	}
	opts := &natsserver.Options{
		Host:      "127.0.0.1",
		Port:      s.port,
		JetStream: true,
		StoreDir:  filepath.Join(s.dir, "js"),
		NoLog:     true,
		NoSigs:    true,
	}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		s.t.Fatalf("embedded nats-server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatalf("embedded nats-server on %d not ready", s.port)
	}
	s.srv = srv
}

// Stop shuts the server down.
func (s *NATSServer) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart stops the server and starts it again on the same port and store.
func (s *NATSServer) Restart() {
	s.Stop()
	s.Start()
}
