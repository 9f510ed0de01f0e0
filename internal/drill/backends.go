package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
)

// childAttr is the process attributes of every server a drill starts: its
// own process group, and SIGKILL when the drill dies (Pdeathsig fires when
// the OS thread that started the child exits; Go keeps its threads for the
// life of the process unless a goroutine locked to one exits, which the
// drill never does), so that a killed drill leaves no server behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// server is one backend server process of a drill.
type server struct {
	name string // Redis: its address; NATS: its server name
	args []string
	bin  string
	log  string // file its output goes to
	cmd  *exec.Cmd
}

func (s *server) start() error {
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log of %s: %w", s.name, err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	err = cmd.Start()
	f.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("start %s (%s): %w", s.name, s.bin, err)
	}
	s.cmd = cmd
	return nil
}

func (s *server) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func waitDial(addr string, total time.Duration) error {
	deadline := time.Now().Add(total)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing accepted connections on %s within %s: %w", addr, total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RedisCluster is a private Redis Cluster of redis-server processes on free
// loopback ports, every one with appendonly yes and appendfsync always (an
// acknowledged write is on the disk of the server that acknowledged it),
// cluster-node-timeout 1000 ms. Its methods are safe for concurrent use.
type RedisCluster struct {
	cli      string
	replicas int
	mu       sync.Mutex
	servers  []*server
}

// StartRedisCluster starts primaries x (1 + replicas) servers under dir,
// creates the cluster with redis-cli --cluster create and waits until every
// server reports cluster_state:ok and every primary has its replicas online.
func StartRedisCluster(dir string, primaries, replicas int) (*RedisCluster, error) {
	if primaries < 3 || replicas < 0 {
		return nil, fmt.Errorf("redis cluster of %d primaries with %d replicas each: redis-cli wants at least 3 primaries", primaries, replicas)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("the redis backend-failover drill needs redis-server on PATH: %w", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("the redis backend-failover drill needs redis-cli on PATH: %w", err)
	}
	c := &RedisCluster{cli: cli, replicas: replicas}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	for i := range primaries * (1 + replicas) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		bus, err := freePort()
		if err != nil {
			return nil, err
		}
		d := filepath.Join(dir, "redis-"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		s := &server{name: "127.0.0.1:" + strconv.Itoa(port), bin: bin, log: filepath.Join(d, "redis.log"), args: []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "1000",
			"--dir", d, "--appendonly", "yes", "--appendfsync", "always", "--save", ""}}
		c.servers = append(c.servers, s)
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.servers {
		if err := waitDial(s.name, 10*time.Second); err != nil {
			return nil, err
		}
		args = append(args, s.name)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
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

// Seeds is every server's address, comma-separated: the --redis value.
func (c *RedisCluster) Seeds() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.servers {
		out = append(out, s.name)
	}
	return strings.Join(out, ",")
}

func (c *RedisCluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.servers {
		if s.cmd != nil {
			out = append(out, s.name)
		}
	}
	return out
}

// PartitionPrimaries returns, for each of n journal partitions, the address
// of the primary serving its hash tag {p<N>} now, as a live server's
// CLUSTER SLOTS reports it.
func (c *RedisCluster) PartitionPrimaries(ctx context.Context, n int) ([]string, error) {
	var last error
	for _, addr := range c.live() {
		cl := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
		out, err := partitionPrimaries(ctx, cl, n)
		_ = cl.Close()
		if err == nil {
			return out, nil
		}
		last = fmt.Errorf("%s: %w", addr, err)
	}
	if last == nil {
		last = errors.New("no live server")
	}
	return nil, fmt.Errorf("primaries of the journal partitions: %w", last)
}

func partitionPrimaries(ctx context.Context, cl *goredis.Client, n int) ([]string, error) {
	slots, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for p := range n {
		slot, err := cl.ClusterKeySlot(ctx, "{p"+strconv.Itoa(p)+"}").Result()
		if err != nil {
			return nil, err
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				out[p] = s.Nodes[0].Addr
			}
		}
		if out[p] == "" {
			return nil, fmt.Errorf("no primary serves slot %d of partition %d", slot, p)
		}
	}
	return out, nil
}

// Kill sends SIGKILL to the server at addr and waits for it to die.
func (c *RedisCluster) Kill(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s.name == addr {
			s.kill()
			return nil
		}
	}
	return fmt.Errorf("no redis server %s in the drill's cluster", addr)
}

// Restart starts the killed server at addr again with its data and
// nodes.conf: it rejoins as a replica of whichever server was promoted.
func (c *RedisCluster) Restart(addr string) error {
	c.mu.Lock()
	var err error = fmt.Errorf("no redis server %s in the drill's cluster", addr)
	for _, s := range c.servers {
		if s.name == addr {
			err = nil
			if s.cmd == nil {
				err = s.start()
			}
		}
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return waitDial(addr, 10*time.Second)
}

// WaitHealthy waits until every live server reports cluster_state:ok with
// every slot served and, when every server is alive, each primary has all
// its replicas online (so that WAIT can be satisfied).
func (c *RedisCluster) WaitHealthy(total time.Duration) error {
	deadline := time.Now().Add(total)
	for {
		err := c.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis cluster not healthy within %s: %w", total, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *RedisCluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	live := c.live()
	c.mu.Lock()
	all := len(live) == len(c.servers)
	c.mu.Unlock()
	for _, addr := range live {
		cl := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		var repl string
		if err == nil {
			repl, err = cl.Info(ctx, "replication").Result()
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: cluster_state not ok yet", addr)
		}
		if all && strings.Contains(repl, "role:master") && strings.Count(repl, "state=online") != c.replicas {
			return fmt.Errorf("%s: %d of its %d replicas online", addr, strings.Count(repl, "state=online"), c.replicas)
		}
	}
	return nil
}

// Close kills every server; it is idempotent.
func (c *RedisCluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		s.kill()
	}
}

// NATSCluster is a private JetStream cluster of nats-server processes on
// free loopback ports, each with its own store directory and monitoring
// port. Its methods are safe for concurrent use.
type NATSCluster struct {
	mu      sync.Mutex
	servers []*server
	clients []int // client port by server
	monitor []int // monitoring (HTTP) port by server
}

// StartNATSCluster starts n nats-server processes of bin (the drill builds
// it from the nats-server module in go.mod) named nats-0.. in one cluster,
// with JetStream and, when syncAlways, sync_interval: always (every write
// fsynced before it is acknowledged), and waits until every server sees
// its routes and the JetStream meta leader.
func StartNATSCluster(bin, dir string, n int, syncAlways bool) (*NATSCluster, error) {
	c := &NATSCluster{}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	routePorts := make([]int, n)
	for i := range n {
		rp, err := freePort()
		if err != nil {
			return nil, err
		}
		routePorts[i] = rp
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		mp, err := freePort()
		if err != nil {
			return nil, err
		}
		c.clients, c.monitor = append(c.clients, cp), append(c.monitor, mp)
	}
	syncOpt := ""
	if syncAlways {
		syncOpt = "\n  sync_interval: always"
	}
	for i := range n {
		d := filepath.Join(dir, "nats-"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("    nats://127.0.0.1:%d", p))
			}
		}
		conf := fmt.Sprintf("server_name: nats-%d\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 2GB%s\n}\ncluster {\n  name: drill\n  listen: 127.0.0.1:%d\n  routes: [\n%s\n  ]\n}\n",
			i, c.clients[i], c.monitor[i], d, syncOpt, routePorts[i], strings.Join(routes, "\n"))
		path := filepath.Join(d, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		s := &server{name: "nats-" + strconv.Itoa(i), bin: bin, log: filepath.Join(d, "nats.log"), args: []string{"-c", path}}
		c.servers = append(c.servers, s)
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	if err := c.WaitFormed(60 * time.Second); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// URLs is every server's client URL, comma-separated: the --nats value.
func (c *NATSCluster) URLs() string {
	var out []string
	for _, p := range c.clients {
		out = append(out, "nats://127.0.0.1:"+strconv.Itoa(p))
	}
	return strings.Join(out, ",")
}

func (c *NATSCluster) liveIdx() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, s := range c.servers {
		if s.cmd != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitFormed waits until every live server has a route to every other live
// server and knows the JetStream meta leader.
func (c *NATSCluster) WaitFormed(total time.Duration) error {
	deadline := time.Now().Add(total)
	hc := &http.Client{Timeout: time.Second}
	for {
		err := func() error {
			live := c.liveIdx()
			for _, i := range live {
				var routez struct {
					NumRoutes int `json:"num_routes"`
					Routes    []struct {
						RemoteName string `json:"remote_name"`
					} `json:"routes"`
				}
				if err := getJSON(hc, fmt.Sprintf("http://127.0.0.1:%d/routez", c.monitor[i]), &routez); err != nil {
					return err
				}
				peers := map[string]bool{}
				for _, r := range routez.Routes {
					peers[r.RemoteName] = true
				}
				if len(peers) < len(live)-1 {
					return fmt.Errorf("%s routes to %d of the %d other live servers", c.servers[i].name, len(peers), len(live)-1)
				}
				var jsz struct {
					Meta *struct {
						Leader string `json:"leader"`
					} `json:"meta_cluster"`
				}
				if err := getJSON(hc, fmt.Sprintf("http://127.0.0.1:%d/jsz", c.monitor[i]), &jsz); err != nil {
					return err
				}
				if jsz.Meta == nil || jsz.Meta.Leader == "" {
					return fmt.Errorf("%s knows no JetStream meta leader yet", c.servers[i].name)
				}
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats cluster not formed within %s: %w", total, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(hc *http.Client, url string, v any) error {
	res, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// partitionStream matches a partition stream of the journal,
// <base>_P<p>.
var partitionStream = regexp.MustCompile(`^(.+)_P([0-9]+)$`)

// StreamLeaders returns, for each of n journal partitions, the name of the
// server leading its stream <base>_P<p> (JetStream STREAM.INFO,
// cluster.leader). A journal still in one stream named base (the layout
// before partitioned streams) counts as the stream of every partition.
func (c *NATSCluster) StreamLeaders(ctx context.Context, base string, n int) ([]string, error) {
	var urls []string
	for _, i := range c.liveIdx() {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(c.clients[i]))
	}
	nc, err := natsgo.Connect(strings.Join(urls, ","), natsgo.Timeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("stream leaders: connect to %v: %w", urls, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	var single string
	names := js.StreamNames(ctx)
	var found []string
	for name := range names.Name() {
		found = append(found, name)
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("stream leaders: list streams: %w", err)
	}
	for _, name := range found {
		m := partitionStream.FindStringSubmatch(name)
		isPart := m != nil && m[1] == base
		if !isPart && name != base {
			continue
		}
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("stream leaders: STREAM.INFO %s: %w", name, err)
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return nil, fmt.Errorf("stream %s has no leader now", name)
		}
		if !isPart {
			single = info.Cluster.Leader
			continue
		}
		p, _ := strconv.Atoi(m[2])
		if p < n {
			out[p] = info.Cluster.Leader
		}
	}
	for p := range out {
		if out[p] == "" {
			out[p] = single
		}
		if out[p] == "" {
			return nil, fmt.Errorf("no stream %s_P%d (nor %s) among %v", base, p, base, found)
		}
	}
	return out, nil
}

// Kill sends SIGKILL to the server named name and waits for it to die.
func (c *NATSCluster) Kill(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s.name == name {
			s.kill()
			return nil
		}
	}
	return fmt.Errorf("no nats server %q in the drill's cluster", name)
}

// Restart starts the killed server named name again with its store, and
// waits until the cluster is formed again.
func (c *NATSCluster) Restart(name string) error {
	c.mu.Lock()
	var err error = fmt.Errorf("no nats server %q in the drill's cluster", name)
	for _, s := range c.servers {
		if s.name == name {
			err = nil
			if s.cmd == nil {
				err = s.start()
			}
		}
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.WaitFormed(30 * time.Second)
}

// Names returns the servers' names.
func (c *NATSCluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.servers {
		out = append(out, s.name)
	}
	return slices.Clip(out)
}

// Close kills every server; it is idempotent.
func (c *NATSCluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		s.kill()
	}
}

// Leaders returns the primary of each journal partition's slot
// (FailoverBackend).
func (c *RedisCluster) Leaders(ctx context.Context, n int) ([]string, error) {
	return c.PartitionPrimaries(ctx, n)
}

// Whole waits until the cluster is healthy with every server alive
// (FailoverBackend).
func (c *RedisCluster) Whole(timeout time.Duration) error { return c.WaitHealthy(timeout) }

// JournalStream is the base name of the journal's streams of a member with
// the default cluster name (persistence/nats.DefaultStream).
const JournalStream = "ORDERS_JOURNAL"

// Leaders returns the leader of each journal partition's stream
// (FailoverBackend).
func (c *NATSCluster) Leaders(ctx context.Context, n int) ([]string, error) {
	return c.StreamLeaders(ctx, JournalStream, n)
}

// Whole waits until the cluster is formed again and every replica of every
// stream is current (FailoverBackend).
func (c *NATSCluster) Whole(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := c.WaitFormed(timeout); err != nil {
		return err
	}
	for {
		err := c.streamsCurrent()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats streams not caught up within %s: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *NATSCluster) streamsCurrent() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := natsgo.Connect(c.URLs(), natsgo.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader", info.Config.Name)
		}
		if len(info.Cluster.Replicas) < info.Config.Replicas-1 {
			return fmt.Errorf("stream %s: %d of %d followers known", info.Config.Name, len(info.Cluster.Replicas), info.Config.Replicas-1)
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return fmt.Errorf("stream %s: replica %s not current", info.Config.Name, p.Name)
			}
		}
	}
	return streams.Err()
}
