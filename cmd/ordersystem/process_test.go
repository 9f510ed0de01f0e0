package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

// These tests run the real binary as a process, kill it, signal it and start
// it again, against private backends.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("process tests build the binary; skipped with -short")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ordersystem-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ordersystem")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
	mu   *sync.Mutex // guards logs
	done chan error
}

// logText returns what the process printed so far.
func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProcOn(t, testservers.FreePort(t), args...)
}

func startProcOn(t *testing.T, port int, args ...string) *proc {
	t.Helper()
	args = append([]string{"--port", strconv.Itoa(port), "--http-host", "127.0.0.1", "--log-level", "info"}, args...)
	cmd := exec.Command(binary(t), args...)
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, logs}
	cmd.Stderr = lockedWriter{&mu, logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), logs: logs, mu: &mu, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			mu.Lock()
			t.Logf("node %v logs:\n%s", args, logs.String())
			mu.Unlock()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(p.base + "/health/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("node exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) post(path, body string) (int, []byte, error) {
	res, err := http.Post(p.base+path, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, nil
}

func (p *proc) get(path string) (int, []byte) {
	p.t.Helper()
	res, err := http.Get(p.base + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (p *proc) wait(timeout time.Duration) (int, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("still running after %s", timeout)
	}
}

const order1 = `{"customerId":"c-1","items":[{"productId":"p-1","name":"Laptop","quantity":1,"price":999.99},{"productId":"p-2","name":"Mouse","quantity":2,"price":29.99}]}`

// backendArgs returns the flags of a node on private backends of kind.
func backendArgs(t *testing.T, kind string) []string {
	switch kind {
	case "redis":
		return []string{"--persistence", "redis", "--transport", "redis", "--redis", testservers.StartRedis(t).Addr()}
	case "nats":
		return []string{"--persistence", "nats", "--transport", "nats", "--nats", testservers.StartNATS(t).URL()}
	}
	t.Fatalf("unknown backend %s", kind)
	return nil
}

// TestKill9LosesNothing: orders acknowledged before kill -9 are all there,
// with identical histories, after a restart on the same backend.
func TestKill9LosesNothing(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			args := backendArgs(t, kind)
			p := startProc(t, args...)
			var ids []string
			for i := range 30 {
				status, body, err := p.post("/orders", order1)
				if err != nil || status != 201 {
					t.Fatalf("create: %d %s %v", status, body, err)
				}
				var c struct{ OrderID string }
				_ = json.Unmarshal(body, &c)
				ids = append(ids, c.OrderID)
				if i%2 == 0 {
					if status, body, _ := p.post("/orders/"+c.OrderID+"/pay", `{"paymentMethod":"card"}`); status != 200 {
						t.Fatalf("pay: %d %s", status, body)
					}
				}
			}
			before := map[string]string{}
			for _, id := range ids {
				_, h := p.get("/orders/" + id + "/history")
				before[id] = string(h)
			}
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_, _ = p.wait(10 * time.Second)

			q := startProc(t, args...)
			for _, id := range ids {
				status, h := q.get("/orders/" + id + "/history")
				if status != 200 || string(h) != before[id] {
					t.Fatalf("order %s after kill -9: %d %s, want %s", id, status, h, before[id])
				}
			}
			// The read model is rebuilt before the node reports ready.
			var st struct {
				TotalOrders int
				ByStatus    map[string]int
			}
			_, b := q.get("/stats")
			_ = json.Unmarshal(b, &st)
			if st.TotalOrders != 30 || st.ByStatus["Paid"] != 15 || st.ByStatus["Pending"] != 15 {
				t.Fatalf("stats after restart: %s", b)
			}
		})
	}
}

// TestSIGTERMUnderLoadLosesNothing: every request that got 201 before or
// during a SIGTERM is found after a restart; no 500s; exit code 0.
func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	args := backendArgs(t, "redis")
	p := startProc(t, append(args, "--drain-delay", "1s")...) // load goes on through the drain
	var (
		mu       sync.Mutex
		created  []string
		statuses = map[int]int{}
		refused  atomic.Int64
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				status, body, err := p.post("/orders", order1)
				if err != nil {
					refused.Add(1) // connection refused after the listener closed
					time.Sleep(5 * time.Millisecond)
					continue
				}
				mu.Lock()
				statuses[status]++
				if status == 201 {
					var c struct{ OrderID string }
					_ = json.Unmarshal(body, &c)
					created = append(created, c.OrderID)
				}
				mu.Unlock()
			}
		}()
	}
	// Let load run, then SIGTERM in the middle of it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(created)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.wait(30 * time.Second)
	stopTime := time.Since(start)
	cancel()
	wg.Wait()
	if err != nil || code != 0 {
		t.Fatalf("exit code %d (%v) after SIGTERM", code, err)
	}
	for s, n := range statuses {
		if s >= 500 && s != 503 {
			t.Fatalf("%d requests answered %d during shutdown (statuses %v)", n, s, statuses)
		}
	}
	q := startProc(t, args...)
	for _, id := range created {
		if status, b := q.get("/orders/" + id); status != 200 {
			t.Fatalf("acknowledged order %s lost after SIGTERM: %d %s", id, status, b)
		}
	}
	t.Logf("SIGTERM under load: %d created (all found after restart), statuses %v, %d refused at the socket, exit 0 after %s",
		len(created), statuses, refused.Load(), stopTime)
}

// TestPeersCluster: two in-memory nodes that find each other through --peers
// route every order to its owner, whichever node the request reaches.
func TestPeersCluster(t *testing.T) { testPeersCluster(t) }

// TestPeersClusterWithSecret: the same with a cluster secret from a file:
// node-to-node calls and the membership port authenticate with it, and it
// appears in no log line.
func TestPeersClusterWithSecret(t *testing.T) {
	const secret = "peers-secret-0123456789abcdef"
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := testPeersCluster(t, "--cluster-secret-file", file)
	for _, p := range []*proc{a, b} {
		if strings.Contains(p.logText(), secret) {
			t.Error("a log line shows the cluster secret")
		}
		if strings.Contains(p.logText(), "without authentication") || strings.Contains(p.logText(), "without --cluster-secret") {
			t.Error("a node with a secret warns that it runs without one")
		}
	}
}

func testPeersCluster(t *testing.T, extra ...string) (a, b *proc) {
	p1, p2 := testservers.FreePort(t), testservers.FreePort(t)
	peers := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", p1, p2)
	a = startProcOn(t, p1, append([]string{"--cluster", "--node-id", "n1", "--peers", peers, "--remote-port", "0"}, extra...)...)
	b = startProcOn(t, p2, append([]string{"--cluster", "--node-id", "n2", "--peers", peers, "--remote-port", "0"}, extra...)...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := a.get("/")
		var info struct{ Members []struct{ ID string } }
		_ = json.Unmarshal(body, &info)
		if len(info.Members) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members never reached 2: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	owners := map[string]bool{}
	for range 12 {
		res, err := http.Post(a.base+"/orders", "application/json", bytes.NewBufferString(order1))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			t.Fatalf("create: %d %s", res.StatusCode, body)
		}
		owners[res.Header.Get("X-Order-Owner")] = true
		var c struct{ OrderID string }
		_ = json.Unmarshal(body, &c)
		if status, got := b.get("/orders/" + c.OrderID); status != 200 {
			t.Fatalf("order %s through the other node: %d %s", c.OrderID, status, got)
		}
	}
	if !owners["n1"] || !owners["n2"] {
		t.Fatalf("owners %v: orders should spread over both nodes", owners)
	}
	if !strings.Contains(a.logText(), "IN-MEMORY CLUSTER") || !strings.Contains(a.logText(), "show only the orders it journaled") {
		t.Error("no loud warning that an in-memory cluster loses orders and lists a node's own only")
	}
	// /stats says its figures are this node's share.
	if _, body := a.get("/stats"); !strings.Contains(string(body), `"scope":"this node only`) {
		t.Errorf("/stats of a --peers node does not say it covers this node only: %s", body)
	}
	return a, b
}

// TestStartupErrorsAreOneLine: a newcomer's mistakes end the process with one
// error line that names the problem and the fix (after any progress lines),
// a non-zero code, no stack trace.
func TestStartupErrorsAreOneLine(t *testing.T) {
	busy := startProc(t)
	busyPort := strings.TrimPrefix(busy.base, "http://127.0.0.1:")
	closed := testservers.FreePort(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--port", busyPort}, "choose another with --port"},
		{[]string{"--port", "0", "--persistence", "redis", "--redis", fmt.Sprintf("127.0.0.1:%d", closed)}, "is Redis running at --redis="},
		{[]string{"--port", "0", "--transport", "nats", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", closed)}, "is NATS with JetStream running"},
		{[]string{"--transport", "kafka"}, "--transport=kafka: must be inmemory, redis or nats"},
		{[]string{"--cluster", "--peers", "127.0.0.1:5001,127.0.0.1:5002", "--advertise-host", "10.0.0.1"}, "set --cluster-secret, --cluster-secret-file or ORDERSYSTEM_CLUSTER_SECRET"},
	}
	for _, c := range cases {
		out, err := exec.Command(binary(t), c.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%v: exit %v, want non-zero", c.args, err)
		}
		text := strings.TrimSpace(string(out))
		lines := strings.Split(text, "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "ordersystem: ") || !strings.Contains(last, c.want) || strings.Contains(text, "goroutine") || strings.Contains(text, "panic") {
			t.Errorf("%v: printed %q, want it to end with one error line containing %q and no stack trace", c.args, text, c.want)
		}
	}
}

// lbFigures are what a load-balancer-like client saw during a SIGTERM.
type lbFigures struct {
	created, refused, otherStatus int64
	sawNotReady                   bool
}

// drainAsALoadBalancer SIGTERMs p while a client behaves like a load
// balancer in front of it: workers create orders as long as a prober, which
// polls /health/ready every 200 ms, last saw 200; the first 503 or refused
// probe takes the node out. It returns what the workers saw (until 400 ms
// after the exit) and the exit code.
func drainAsALoadBalancer(t *testing.T, p *proc) (lbFigures, int) {
	t.Helper()
	var (
		inService             atomic.Bool
		created, refused, bad atomic.Int64
		sawNotReady           atomic.Bool
		wg                    sync.WaitGroup
	)
	inService.Store(true)
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the prober
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			res, err := http.Get(p.base + "/health/ready")
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusServiceUnavailable {
					sawNotReady.Store(true)
				}
			}
			if err != nil || res.StatusCode != http.StatusOK {
				inService.Store(false)
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !inService.Load() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				status, _, err := p.post("/orders", order1)
				switch {
				case err != nil:
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				case status == http.StatusCreated:
					created.Add(1)
				default:
					bad.Add(1)
				}
			}
		}()
	}
	waitForCount(t, &created, 100)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.wait(30 * time.Second)
	// Keep the client on for two probe intervals after the exit, as a load
	// balancer goes on until its prober notices.
	<-time.After(400 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return lbFigures{created: created.Load(), refused: refused.Load(), otherStatus: bad.Load(), sawNotReady: sawNotReady.Load()}, code
}

func waitForCount(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	poll.Eventually(t, 10*time.Second, func() error {
		if got := n.Load(); got < want {
			return fmt.Errorf("only %d of %d", got, want)
		}
		return nil
	})
}

// TestSIGTERMDrainDelayLetsLoadBalancersLeave: with --drain-delay, a load
// balancer polling readiness sees the 503 and stops sending before the port
// closes: no create is refused at the socket. Without it, the figure of
// refused connections is logged for comparison.
func TestSIGTERMDrainDelayLetsLoadBalancersLeave(t *testing.T) {
	for _, c := range []struct {
		delay string
		want0 bool
	}{{"0", false}, {"2s", true}} {
		t.Run("drain-delay="+c.delay, func(t *testing.T) {
			p := startProc(t, "--drain-delay", c.delay)
			f, code := drainAsALoadBalancer(t, p)
			if code != 0 {
				t.Fatalf("exit code %d after SIGTERM", code)
			}
			t.Logf("--drain-delay %s: %d created, %d refused at the socket, %d other statuses, readiness 503 seen: %v",
				c.delay, f.created, f.refused, f.otherStatus, f.sawNotReady)
			if f.otherStatus != 0 {
				t.Fatalf("%d creates answered neither 201 nor a refused connection", f.otherStatus)
			}
			if c.want0 && (f.refused != 0 || !f.sawNotReady) {
				t.Fatalf("with a drain delay: %d creates refused at the socket, readiness 503 seen: %v; want 0 and true", f.refused, f.sawNotReady)
			}
		})
	}
}

// TestSIGTERMDrainServesThenCloses: during the drain delay readiness answers
// 503 and creates still answer 201; after it the port refuses connections
// and the process exits 0.
func TestSIGTERMDrainServesThenCloses(t *testing.T) {
	p := startProc(t, "--drain-delay", "3s")
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if status, _ := p.get("/health/ready"); status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness not 503 within 2 s of SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	status, body, err := p.post("/orders", order1)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create during the drain delay: %d %s %v", status, body, err)
	}
	if since := time.Since(start); since >= 3*time.Second {
		t.Fatalf("the checks took %s, past the drain delay", since)
	}
	code, err := p.wait(30 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit code %d (%v)", code, err)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Fatalf("exited %s after SIGTERM, before the drain delay of 3s", took)
	}
	if _, _, err := p.post("/orders", order1); err == nil {
		t.Fatal("a create after the drain reached the node")
	}
}

// TestSecondSignalKillsDuringDrain: a second SIGTERM during the drain delay
// kills the process at once.
func TestSecondSignalKillsDuringDrain(t *testing.T) {
	p := startProc(t, "--drain-delay", "20s", "--shutdown-timeout", "30s")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if status, _ := p.get("/health/ready"); status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness not 503 within 2 s of SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := p.wait(5 * time.Second); err != nil {
		t.Fatalf("second SIGTERM during the drain: %v", err)
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("process state %v after the second SIGTERM, want killed by it", p.cmd.ProcessState)
	}
	t.Logf("killed %s after the second SIGTERM", time.Since(start))
}
