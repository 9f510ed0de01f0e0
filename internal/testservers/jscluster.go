package testservers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/poll"
)

// JSCluster is a private JetStream cluster of nats-server processes on free
// ports (client, route), each with file storage in a temp directory. The
// servers are real processes, so Kill is a true SIGKILL: no leadership
// hand-over, no flush, no shutdown event, the way a crashed host looks to
// the others. The cluster is killed when the test that started it ends.
type JSCluster struct {
	t       testing.TB
	bin     string
	name    string
	servers []*jsServer
}

type jsServer struct {
	name       string
	port, cprt int
	dir        string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// StartJetStreamCluster starts n (at least 1) nats-server processes routed
// into one JetStream cluster and waits until a meta leader exists and every
// server answers JetStream requests. The binary is
// $ORDERSYSTEM_TEST_NATS_SERVER if set, else the nats-server of go.mod's
// github.com/nats-io/nats-server/v2, built once per machine (go build
// caches it) into the temp directory as ordersystem-test-nats-server-<version>. When neither can be had the test is
// skipped, or fails under CI.
func StartJetStreamCluster(t testing.TB, n int) *JSCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartJetStreamCluster: %d servers, want at least 1", n)
	}
	bin, err := natsServerBinary()
	if err != nil {
		unavailable(t, "no nats-server binary for a private JetStream cluster: %v", err)
	}
	c := &JSCluster{t: t, bin: bin, name: "OSTEST_JSC"}
	// The first TempDir registers the removal of the test's temp
	// directories; made before c.Stop is registered, it runs after the
	// servers are gone (a live server still writing its store made the
	// removal fail: "directory not empty").
	root := t.TempDir()
	t.Cleanup(c.Stop)
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			root = t.TempDir()
		}
		c.servers = nil
		for i := range n {
			c.servers = append(c.servers, &jsServer{
				name: "n" + strconv.Itoa(i), port: FreePort(t), cprt: FreePort(t),
				dir: filepath.Join(root, "n"+strconv.Itoa(i)),
			})
		}
		for i := range c.servers {
			c.start(i)
		}
		// A free port can be taken by another process (tests of other
		// packages run at the same time) before the server binds it; the
		// server then exits at once. Start the cluster again on other
		// ports instead of failing the test.
		if attempt < 3 && c.portTaken(500*time.Millisecond) {
			t.Logf("nats cluster: a port was taken before a server bound it; starting again on other ports")
			c.Stop()
			continue
		}
		break
	}
	for i := range c.servers {
		c.waitReady(i, 30*time.Second)
	}
	pinStoreDir(t, c.URLs()) // see pinStoreDir: tests delete many streams
	return c
}

// URLs is every server's client URL, comma-separated (what --nats takes).
func (c *JSCluster) URLs() string {
	urls := make([]string, len(c.servers))
	for i := range c.servers {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// URL is server i's client URL.
func (c *JSCluster) URL(i int) string { return "nats://127.0.0.1:" + strconv.Itoa(c.servers[i].port) }

// Name is server i's server name (what StreamInfo.Cluster.Leader says).
func (c *JSCluster) Name(i int) string { return c.servers[i].name }

// Size is the number of servers.
func (c *JSCluster) Size() int { return len(c.servers) }

// Kill kills server i with SIGKILL and waits until the process is gone.
func (c *JSCluster) Kill(i int) {
	s := c.servers[i]
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts server i again (after Kill) on its ports and store, and
// waits until it answers JetStream requests. Its streams may still be
// catching up when it returns.
func (c *JSCluster) Restart(i int) {
	c.t.Helper()
	c.Kill(i)
	c.start(i)
	c.waitReady(i, 30*time.Second)
}

// Stop kills every server. It is idempotent.
func (c *JSCluster) Stop() {
	for i := range c.servers {
		c.Kill(i)
	}
}

// StreamLeader returns the index of the server that leads stream, asking
// any live server, polling up to 20 s until a leader is known.
func (c *JSCluster) StreamLeader(stream string) int {
	c.t.Helper()
	leader := -1
	poll.Eventually(c.t, 20*time.Second, func() error {
		for i, s := range c.servers {
			if s.cmd == nil {
				continue
			}
			info, err := c.streamInfo(i, stream)
			if err != nil {
				continue
			}
			if info.Cluster == nil || info.Cluster.Leader == "" {
				return fmt.Errorf("stream %s has no leader", stream)
			}
			for j, s := range c.servers {
				if s.name == info.Cluster.Leader {
					leader = j
					return nil
				}
			}
			return fmt.Errorf("stream %s is led by %q, not a server of this cluster", stream, info.Cluster.Leader)
		}
		return fmt.Errorf("no live server answers stream info of %s", stream)
	})
	return leader
}

func (c *JSCluster) streamInfo(i int, stream string) (*jetstream.StreamInfo, error) {
	nc, err := natsgo.Connect(c.URL(i), natsgo.Timeout(time.Second), natsgo.NoReconnect())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

func (c *JSCluster) start(i int) {
	c.t.Helper()
	s := c.servers[i]
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		c.t.Fatalf("nats cluster: %v", err)
	}
	var routes []string
	for j, o := range c.servers {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.cprt))
		}
	}
	conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 256MB, max_file_store: 2GB }
cluster {
  name: %s
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, s.name, s.port, filepath.Join(s.dir, "js"), c.name, s.cprt, strings.Join(routes, ", "))
	if len(c.servers) == 1 {
		conf = fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q }\n", s.name, s.port, filepath.Join(s.dir, "js"))
	}
	confFile := filepath.Join(s.dir, "server.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		c.t.Fatalf("nats cluster: %v", err)
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("nats cluster: %v", err)
	}
	cmd := exec.Command(c.bin, "-c", confFile)
	killWithParent(cmd) // a test binary killed by -timeout leaves no server behind
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		unavailable(c.t, "start %s: %v", c.bin, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(s.exited)
	}()
}

// portTaken waits up to d and reports whether a server exited because one
// of its ports was in use.
func (c *JSCluster) portTaken(d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		for _, s := range c.servers {
			select {
			case <-s.exited:
				log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
				if strings.Contains(string(log), "address already in use") {
					return true
				}
			default:
			}
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// waitReady waits until server i accepts clients and answers a JetStream
// account info request, which needs a meta leader.
func (c *JSCluster) waitReady(i int, total time.Duration) {
	c.t.Helper()
	s := c.servers[i]
	poll.Eventually(c.t, total, func() error {
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			c.t.Fatalf("nats-server %s exited at start; its log:\n%s", s.name, log)
		default:
		}
		nc, err := natsgo.Connect(c.URL(i), natsgo.Timeout(time.Second), natsgo.NoReconnect())
		if err != nil {
			return fmt.Errorf("nats-server %s: %w", s.name, err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err != nil {
			return fmt.Errorf("nats-server %s: jetstream not ready: %w", s.name, err)
		}
		return nil
	})
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// natsServerBinary returns the nats-server to run: the environment's, or
// the go.mod version built into the temp directory (once per machine; the
// go build cache makes a rebuild cheap).
func natsServerBinary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("ORDERSYSTEM_TEST_NATS_SERVER"); p != "" {
			binPath = p
			return
		}
		// The test binary's build info lists no dependencies; ask the go
		// tool which version go.mod requires.
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2").Output()
		if err != nil {
			binErr = fmt.Errorf("go list -m github.com/nats-io/nats-server/v2: %w", err)
			return
		}
		version := strings.TrimSpace(string(out))
		binPath = filepath.Join(os.TempDir(), "ordersystem-test-nats-server-"+version)
		if _, err := os.Stat(binPath); err == nil {
			return
		}
		tmp := fmt.Sprintf("%s.%d.tmp", binPath, os.Getpid())
		out, err = exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build github.com/nats-io/nats-server/v2: %w: %s", err, out)
			return
		}
		// Rename is atomic: concurrent test binaries never run a half-written file.
		binErr = os.Rename(tmp, binPath)
	})
	if binErr == nil {
		if _, err := os.Stat(binPath); err != nil {
			return "", errors.Join(binErr, err)
		}
	}
	return binPath, binErr
}
