package testservers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ErrNoRedisBinaries is matched by the error of NewRedisCluster when
// redis-server or redis-cli is not on PATH.
var ErrNoRedisBinaries = errors.New("no redis-server or redis-cli binary on PATH to start a private Redis Cluster (install redis-server and redis-tools)")

// RedisClusterNodeTimeout is the cluster-node-timeout of the private
// clusters: a killed primary is marked failed, and its replica promoted,
// within about two to three times this.
const RedisClusterNodeTimeout = 1000 * time.Millisecond

// RedisCluster is a private Redis Cluster: redis-server processes on free
// ports (cluster-enabled, appendonly yes, appendfsync everysec unless
// configured otherwise), each with a data directory of its own, killed by
// the kernel if the process that started them dies. Its methods are safe
// for concurrent use.
type RedisCluster struct {
	bin, cli string
	dir      string
	fsync    string
	replicas int // per primary, as created
	mu       sync.Mutex
	nodes    []*clusterNode // in creation order: primaries first
}

type clusterNode struct {
	port, busPort int
	dir           string
	cmd           *exec.Cmd // nil while killed
}

func (n *clusterNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// StartRedisCluster starts a Redis Cluster of primaries primaries (at least
// 3, which redis-cli requires) with replicasPerPrimary replicas each, waits
// until every node reports cluster_state:ok, and stops it when the test
// ends. Without the binaries it skips the test (fails it under CI).
func StartRedisCluster(t testing.TB, primaries, replicasPerPrimary int) *RedisCluster {
	t.Helper()
	c, err := NewRedisCluster(t.TempDir(), primaries, replicasPerPrimary)
	if errors.Is(err, ErrNoRedisBinaries) {
		unavailable(t, "%v", err)
	}
	if err != nil {
		t.Fatalf("start a Redis Cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// RedisClusterOnce starts one private cluster for a whole test binary, on
// the first Get; TestMain calls Close after m.Run.
type RedisClusterOnce struct {
	Primaries, ReplicasPerPrimary int

	once sync.Once
	dir  string
	c    *RedisCluster
	err  error
}

// Get returns the shared cluster, starting it on the first call. When it
// cannot be started it skips t (fails it under CI) if the binaries are
// missing, and fails t otherwise; later calls report the same.
func (o *RedisClusterOnce) Get(t testing.TB) *RedisCluster {
	t.Helper()
	o.once.Do(func() {
		o.dir, o.err = os.MkdirTemp("", "ordersystem-rediscluster-")
		if o.err == nil {
			o.c, o.err = NewRedisCluster(o.dir, o.Primaries, o.ReplicasPerPrimary)
		}
	})
	if errors.Is(o.err, ErrNoRedisBinaries) {
		unavailable(t, "%v", o.err)
	}
	if o.err != nil {
		t.Fatalf("start the shared Redis Cluster: %v", o.err)
	}
	return o.c
}

// Close stops the cluster if Get started it and removes its data.
func (o *RedisClusterOnce) Close() {
	if o.c != nil {
		o.c.Close()
	}
	if o.dir != "" {
		_ = os.RemoveAll(o.dir)
	}
}

// NewRedisCluster starts a cluster as StartRedisCluster does, with its
// data under dir, without a test: the caller must Close it.
func NewRedisCluster(dir string, primaries, replicasPerPrimary int) (*RedisCluster, error) {
	return NewRedisClusterWith(dir, RedisClusterConfig{Primaries: primaries, Replicas: replicasPerPrimary})
}

// RedisClusterConfig shapes a cluster of NewRedisClusterWith.
type RedisClusterConfig struct {
	Primaries, Replicas int // replicas per primary
	// AppendFsync is every server's appendfsync: everysec (the default) or
	// always (an acknowledged write is on the disk of the server that
	// acknowledged it: the durable profile).
	AppendFsync string
}

// NewRedisClusterWith is NewRedisCluster with every setting named.
func NewRedisClusterWith(dir string, cfg RedisClusterConfig) (*RedisCluster, error) {
	primaries, replicasPerPrimary := cfg.Primaries, cfg.Replicas
	if cfg.AppendFsync == "" {
		cfg.AppendFsync = "everysec"
	}
	if primaries < 3 || replicasPerPrimary < 0 {
		return nil, fmt.Errorf("redis cluster of %d primaries with %d replicas each: want at least 3 primaries and no negative replicas", primaries, replicasPerPrimary)
	}
	bin, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		return nil, ErrNoRedisBinaries
	}
	c := &RedisCluster{bin: bin, cli: cli, dir: dir, fsync: cfg.AppendFsync, replicas: replicasPerPrimary}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	total := primaries * (1 + replicasPerPrimary)
	for i := range total {
		n := &clusterNode{dir: filepath.Join(dir, "node-"+strconv.Itoa(i))}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		if err := c.startFresh(n); err != nil {
			return nil, err
		}
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerPrimary), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	if err := c.WaitHealthy(60 * time.Second); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// startFresh starts a new node on free ports and waits until it accepts
// connections. A free port can be taken by another process before
// redis-server binds it (tests run in parallel packages), and the server
// then exits at once: after a short wait it tries again on other ports.
func (c *RedisCluster) startFresh(n *clusterNode) error {
	var err error
	for range 4 {
		if n.port, err = freePort(); err != nil {
			return err
		}
		if n.busPort, err = freePort(); err != nil {
			return err
		}
		if err = c.start(n); err != nil {
			return err
		}
		if err = waitReachable(n.addr(), 3*time.Second); err == nil {
			return nil
		}
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
		// A fresh start: no nodes.conf naming the ports given up.
		if rerr := os.RemoveAll(n.dir); rerr != nil {
			return rerr
		}
		if rerr := os.MkdirAll(n.dir, 0o755); rerr != nil {
			return rerr
		}
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReachable(addr string, total time.Duration) error {
	deadline := time.Now().Add(total)
	for !reachable(addr) {
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not accept connections within %s", addr, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// start starts node n's process (its nodes.conf keeps its identity across
// restarts). Call with c.mu held or before c is shared.
func (c *RedisCluster) start(n *clusterNode) error {
	cmd := exec.Command(c.bin, "--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(n.dir, "nodes.conf"),
		"--cluster-port", strconv.Itoa(n.busPort),
		"--cluster-node-timeout", strconv.FormatInt(RedisClusterNodeTimeout.Milliseconds(), 10),
		"--cluster-replica-validity-factor", "0",
		"--dir", n.dir, "--appendonly", "yes", "--appendfsync", c.fsync, "--save", "",
		"--protected-mode", "no")
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on %s: %w", n.addr(), err)
	}
	n.cmd = cmd
	return nil
}

// Addrs returns the addresses (host:port) of every node, killed ones
// included, in creation order: seeds for a cluster client.
func (c *RedisCluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr()
	}
	return out
}

// Seeds is Addrs joined with commas: the --redis value of a cluster.
func (c *RedisCluster) Seeds() string { return strings.Join(c.Addrs(), ",") }

// Client returns a new cluster client for the nodes; the caller closes it.
func (c *RedisCluster) Client() *goredis.ClusterClient {
	return goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), DialTimeout: 2 * time.Second})
}

// PrimaryForKey returns the address of the primary that serves key's slot
// now, as a live node reports it (CLUSTER SLOTS).
func (c *RedisCluster) PrimaryForKey(ctx context.Context, key string) (string, error) {
	primary, _, err := c.NodesForKey(ctx, key)
	return primary, err
}

// NodesForKey returns the addresses of the primary and the replicas that
// serve key's slot now, as a live node reports them (CLUSTER SLOTS).
func (c *RedisCluster) NodesForKey(ctx context.Context, key string) (primary string, replicas []string, err error) {
	var lastErr error
	for _, addr := range c.liveAddrs() {
		cl := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		var slots []goredis.ClusterSlot
		if err == nil {
			slots, err = cl.ClusterSlots(ctx).Result()
		}
		_ = cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				replicas, err := replicasOf(ctx, s.Nodes[0].Addr)
				return s.Nodes[0].Addr, replicas, err
			}
		}
		lastErr = fmt.Errorf("node %s reports no owner of slot %d (of key %q)", addr, slot, key)
	}
	if lastErr == nil {
		lastErr = errors.New("no live node")
	}
	return "", nil, lastErr
}

// replicasOf lists the replicas a primary reports (INFO replication:
// CLUSTER SLOTS on another node may not list them yet).
func replicasOf(ctx context.Context, primary string) ([]string, error) {
	cl := goredis.NewClient(&goredis.Options{Addr: primary, DialTimeout: time.Second, MaxRetries: -1})
	defer cl.Close()
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return nil, fmt.Errorf("%s: INFO replication: %w", primary, err)
	}
	var out []string
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "slave") || !strings.Contains(line, "ip=") {
			continue
		}
		var ip, port string
		for _, f := range strings.Split(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]), ",") {
			if v, ok := strings.CutPrefix(f, "ip="); ok {
				ip = v
			}
			if v, ok := strings.CutPrefix(f, "port="); ok {
				port = v
			}
		}
		out = append(out, net.JoinHostPort(ip, port))
	}
	return out, nil
}

func (c *RedisCluster) liveAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.nodes {
		if n.cmd != nil {
			out = append(out, n.addr())
		}
	}
	return out
}

func (c *RedisCluster) node(addr string) (*clusterNode, error) {
	for _, n := range c.nodes {
		if n.addr() == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %s in the cluster", addr)
}

// Kill kills the node at addr with SIGKILL (nothing is flushed beyond what
// fsync did). Killing a killed node does nothing.
func (c *RedisCluster) Kill(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(addr)
	if err != nil {
		return err
	}
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
	return nil
}

// Restart starts the node at addr again (after Kill) with its data and
// identity: it rejoins, as a replica if its slots failed over meanwhile.
// It returns once the node accepts connections.
func (c *RedisCluster) Restart(addr string) error {
	c.mu.Lock()
	n, err := c.node(addr)
	if err == nil && n.cmd == nil {
		err = c.start(n)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return waitReachable(addr, 10*time.Second)
}

// WaitHealthy waits until every live node reports cluster_state:ok, every
// slot is served, and (while every node is alive) each primary has its
// replicas online, so that WAIT can succeed.
func (c *RedisCluster) WaitHealthy(total time.Duration) error {
	deadline := time.Now().Add(total)
	var last error
	for {
		last = c.healthy()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis cluster not healthy within %s: %w", total, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *RedisCluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, addr := range c.liveAddrs() {
		cl := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: cluster not ok yet", addr)
		}
	}
	if len(c.liveAddrs()) < len(c.Addrs()) {
		return nil
	}
	for _, addr := range c.liveAddrs() {
		cl := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
		info, err := cl.Info(ctx, "replication").Result()
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", addr, err)
		}
		if strings.Contains(info, "role:master") &&
			(!strings.Contains(info, fmt.Sprintf("connected_slaves:%d", c.replicas)) || strings.Count(info, "state=online") != c.replicas) {
			return fmt.Errorf("%s: replicas not online yet", addr)
		}
	}
	return nil
}

// Close kills every node. It is idempotent.
func (c *RedisCluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.cmd != nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
			n.cmd = nil
		}
	}
}

// StartRedisSentinel starts one redis-server in Sentinel mode on a free
// port that monitors the primary at primaryAddr under masterName (quorum
// 1), waits until it reports that master, and stops it when the test ends.
// It returns the Sentinel's address.
func StartRedisSentinel(t testing.TB, primaryAddr, masterName string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "no redis-server binary on PATH to start a Redis Sentinel")
	}
	host, port, err := net.SplitHostPort(primaryAddr)
	if err != nil {
		t.Fatalf("sentinel: primary address %q: %v", primaryAddr, err)
	}
	dir := t.TempDir()
	sport := FreePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n",
		sport, dir, masterName, host, port, masterName)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatalf("sentinel config: %v", err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis sentinel: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(sport)
	if err := waitReachable(addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: addr})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := sc.GetMasterAddrByName(ctx, masterName).Result()
	if err != nil || len(got) != 2 || net.JoinHostPort(got[0], got[1]) != primaryAddr {
		t.Fatalf("sentinel on %s reports master %q as %v, %v; want %s", addr, masterName, got, err, primaryAddr)
	}
	return addr
}
