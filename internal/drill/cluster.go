package drill

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is one ordersystem process of the drill cluster.
type Node struct {
	ID       string
	HTTPPort int
	// Host is where the HTTP API answers (default 127.0.0.1).
	Host string
	args []string
	bin  string
	// Env is added to the drill's environment for the process (set before
	// Start).
	Env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer // the running (or last) process's output
	past []string      // the output of the processes before it
	done chan struct{}
}

// URL is the node's base URL.
func (n *Node) URL() string {
	host := n.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(n.HTTPPort))
}

// Start starts the process (again) with the same node id and ports.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s already running", n.ID)
	}
	cmd := exec.Command(n.bin, n.args...)
	if len(n.Env) > 0 {
		cmd.Env = append(os.Environ(), n.Env...)
	}
	if n.logs != nil {
		n.past = append(n.past, n.logs.String())
	}
	n.logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.cmd, n.done = cmd, done
	return nil
}

// WaitReady polls /health/ready until 200.
func (n *Node) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		res, err := http.Get(n.URL() + "/health/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s; logs:\n%s", n.ID, timeout, n.Logs())
}

// Kill sends SIGKILL and waits for the process to die.
func (n *Node) Kill() { n.signal(syscall.SIGKILL, true) }

// Term sends SIGTERM and waits for a clean exit.
func (n *Node) Term() { n.signal(syscall.SIGTERM, true) }

// Stop and Cont pause and resume the process (SIGSTOP / SIGCONT).
func (n *Node) Stop() { n.signal(syscall.SIGSTOP, false) }
func (n *Node) Cont() { n.signal(syscall.SIGCONT, false) }

func (n *Node) signal(sig syscall.Signal, wait bool) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if wait {
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
	}
}

// AllLogs returns what every process of the node printed, the earlier ones
// first, each after a line naming it.
func (n *Node) AllLogs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	all := n.past
	if n.logs != nil {
		all = append(all[:len(all):len(all)], n.logs.String())
	}
	for i, l := range all {
		fmt.Fprintf(&b, "--- %s, process %d of %d\n%s", n.ID, i+1, len(all), l)
	}
	return b.String()
}

// Logs returns what the node's current (or last) process printed.
func (n *Node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logs == nil {
		return ""
	}
	return n.logs.String()
}

// Cluster is a set of nodes sharing one backend.
type Cluster struct {
	Nodes []*Node
}

// NewCluster prepares n nodes of the binary with backend flags (not started).
func NewCluster(bin string, n int, backendArgs []string) (*Cluster, error) {
	c := &Cluster{}
	for i := 1; i <= n; i++ {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		rp, err := freePort()
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("node%d", i)
		args := append([]string{"--cluster", "--node-id", id, "--port", strconv.Itoa(hp), "--http-host", "127.0.0.1",
			"--remote-port", strconv.Itoa(rp), "--advertise-host", "127.0.0.1", "--log-level", "info", "--shutdown-timeout", "20s"}, backendArgs...)
		c.Nodes = append(c.Nodes, &Node{ID: id, HTTPPort: hp, args: args, bin: bin})
	}
	return c, nil
}

// Start starts every node and waits until all are ready.
func (c *Cluster) Start(timeout time.Duration) error {
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := n.WaitReady(timeout); err != nil {
			return err
		}
	}
	return nil
}

// Close kills every node.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Cont()
		n.Kill()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartRedis starts a private redis-server on a free port with an
// append-only file, for drills; stop it with the returned function.
func StartRedis(dir string) (addr string, stop func(), err error) {
	return StartRedisOn(dir, "127.0.0.1")
}

// StartRedisOn is StartRedis listening on the addresses host and bind
// (protected mode off: a private server on private addresses); addr is on
// host.
func StartRedisOn(dir, host string, bind ...string) (addr string, stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", strings.Join(append([]string{host}, bind...), " "),
		"--protected-mode", "no", "--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	addr = net.JoinHostPort(host, strconv.Itoa(port))
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", nil, fmt.Errorf("redis-server on %s did not answer", addr)
}
