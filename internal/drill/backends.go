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

	"github.com/ordersystem/ordersystem/internal/testservers"
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
// loopback ports (internal/testservers), every one with appendonly yes and
// appendfsync always (an acknowledged write is on the disk of the server
// that acknowledged it), cluster-node-timeout 1000 ms, killed by the kernel
// if the drill dies. Its methods are safe for concurrent use.
type RedisCluster struct {
	*testservers.RedisCluster
}

// StartRedisCluster starts primaries x (1 + replicas) servers under dir,
// creates the cluster with redis-cli --cluster create and waits until every
// server reports cluster_state:ok and every primary has its replicas online.
func StartRedisCluster(dir string, primaries, replicas int) (*RedisCluster, error) {
	c, err := testservers.NewRedisClusterWith(dir, testservers.RedisClusterConfig{Primaries: primaries, Replicas: replicas, AppendFsync: "always"})
	if errors.Is(err, testservers.ErrNoRedisBinaries) {
		return nil, fmt.Errorf("the redis backend-failover drill: %w", err)
	}
	if err != nil {
		return nil, err
	}
	return &RedisCluster{c}, nil
}

// PartitionPrimaries returns, for each of n journal partitions, the address
// of the primary serving its hash tag {p<N>} now, as the first server that
// answers reports it in CLUSTER SLOTS (a killed one does not).
func (c *RedisCluster) PartitionPrimaries(ctx context.Context, n int) ([]string, error) {
	var last error
	for _, addr := range c.Addrs() {
		cl := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
		out, err := partitionPrimaries(ctx, cl, n)
		_ = cl.Close()
		if err == nil {
			return out, nil
		}
		last = fmt.Errorf("%s: %w", addr, err)
	}
	if last == nil {
		last = errors.New("no server")
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
// its routes and the JetStream meta leader. The ports are free when
// chosen, not reserved: another process may bind one before its server
// does, so a start in which a server found its port taken is tried again
// on new ports (three times at most).
func StartNATSCluster(bin, dir string, n int, syncAlways bool) (*NATSCluster, error) {
	return startNATSClusterOn(bin, dir, n, syncAlways, freePort)
}

// startNATSClusterOn is StartNATSCluster with the ports chosen by pick.
func startNATSClusterOn(bin, dir string, n int, syncAlways bool, pick func() (int, error)) (*NATSCluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startNATSCluster(bin, filepath.Join(dir, "try-"+strconv.Itoa(attempt)), n, syncAlways, pick)
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return c, err
		}
	}
}

// errPortTaken is a server that exited because one of its ports was bound
// by another process between the choice and the server's start.
var errPortTaken = errors.New("a nats-server found its port taken")

func startNATSCluster(bin, dir string, n int, syncAlways bool, pick func() (int, error)) (*NATSCluster, error) {
	c := &NATSCluster{}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	routePorts := make([]int, n)
	for i := range n {
		rp, err := pick()
		if err != nil {
			return nil, err
		}
		routePorts[i] = rp
		cp, err := pick()
		if err != nil {
			return nil, err
		}
		mp, err := pick()
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
		if name := c.portTaken(); name != "" {
			return fmt.Errorf("%w: %s: %v", errPortTaken, name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats cluster not formed within %s: %w%s", total, err, c.logTails())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// portTaken returns the name of a live server whose log says that a port
// it was to listen on is in use, or "".
func (c *NATSCluster) portTaken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s.cmd == nil {
			continue
		}
		if log, err := os.ReadFile(s.log); err == nil && strings.Contains(string(log), "address already in use") {
			return s.name
		}
	}
	return ""
}

// logTails is the last lines of every server's log, for an error that
// says the cluster did not form.
func (c *NATSCluster) logTails() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, s := range c.servers {
		log, _ := os.ReadFile(s.log)
		lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
		b.WriteString("\n" + s.name + " log (last lines):\n" + strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
	return b.String()
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
// Right after a server died the others may not answer the JetStream API,
// or a stream may have no leader yet: it asks again, each attempt bounded
// by 5 s, for at most 30 s and never past ctx.
func (c *NATSCluster) StreamLeaders(ctx context.Context, base string, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := c.streamLeaders(actx, base, n)
		acancel()
		if err == nil {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// liveJetStream connects to the servers that are up (the caller closes
// the connection).
func (c *NATSCluster) liveJetStream() (*natsgo.Conn, jetstream.JetStream, error) {
	var urls []string
	for _, i := range c.liveIdx() {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(c.clients[i]))
	}
	nc, err := natsgo.Connect(strings.Join(urls, ","), natsgo.Timeout(2*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %v: %w", urls, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// streamLeaders is one attempt of StreamLeaders.
func (c *NATSCluster) streamLeaders(ctx context.Context, base string, n int) ([]string, error) {
	nc, js, err := c.liveJetStream()
	if err != nil {
		return nil, fmt.Errorf("stream leaders: %w", err)
	}
	defer nc.Close()
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

// MembersStream is the stream of the membership bucket of members with the
// default cluster name (cluster/natsreg.BucketFor("ordersystem")).
const MembersStream = "KV_ordersystem_members"

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

// StreamLeader returns the server that leads the stream name now (e.g.
// KV_ordersystem_members, the membership bucket), retried for up to 30 s
// while it has none.
func (c *NATSCluster) StreamLeader(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		leader, err := c.streamLeader(ctx, name)
		if err == nil {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *NATSCluster) streamLeader(ctx context.Context, name string) (string, error) {
	nc, js, err := c.liveJetStream()
	if err != nil {
		return "", fmt.Errorf("stream leader: %w", err)
	}
	defer nc.Close()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	s, err := js.Stream(actx, name)
	if err != nil {
		return "", fmt.Errorf("stream leader: STREAM.INFO %s: %w", name, err)
	}
	if info := s.CachedInfo(); info.Cluster != nil && info.Cluster.Leader != "" {
		return info.Cluster.Leader, nil
	}
	return "", fmt.Errorf("stream %s has no leader now", name)
}
