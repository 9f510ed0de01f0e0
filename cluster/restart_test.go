package cluster_test

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

// process is a backend server run as a child process, so that a test can
// kill -9 it and start it again on the same port.
type process struct {
	t    *testing.T
	bin  string
	args func(port int, dir string) []string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startProcess(t *testing.T, bin string, args func(port int, dir string) []string) *process {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("no %s on PATH", bin)
	}
	p := &process{t: t, bin: path, args: args, port: testservers.FreePort(t), dir: t.TempDir()}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *process) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *process) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, p.args(p.port, p.dir)...)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.bin, err)
	}
	waitUntil(p.t, 10*time.Second, p.bin+" listening", func() bool {
		c, err := net.DialTimeout("tcp", p.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// kill is kill -9.
func (p *process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// restartMember runs a member over reg (lease TTL 2 s), kills the backend
// with kill -9, keeps it down past the TTL (so the member fences), runs
// wipe, starts the backend again and waits until the member serves again
// as a new incarnation; it returns how long that took after the start.
func restartMember(t *testing.T, reg registry.Registry, srv *process, wipe func()) time.Duration {
	t.Helper()
	const ttl = 2 * time.Second
	var newest *cluster.LeaseProvider
	m := cluster.NewMember(cluster.MemberConfig{
		Node: cluster.Config{NodeID: "n1", Kinds: []*pcluster.Kind{
			pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return echo{} })),
		}},
		NewProvider: func(_ context.Context, fenced func(string)) (pcluster.ClusterProvider, error) {
			newest = cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "n1", TTL: ttl, Poll: 100 * time.Millisecond, OnFenced: fenced})
			return newest, nil
		},
		Backoff: backoff.Policy{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(false)
	echoVia(t, m, "before")
	before := m.Members()[0].ID

	srv.kill()
	waitUntil(t, 2*ttl, "member stops serving with the backend gone", func() bool { return m.Ready() != nil })
	time.Sleep(ttl) // down for longer than the lease
	wipe()
	restarted := time.Now()
	srv.start()
	waitUntil(t, 20*time.Second, "member serves again", func() bool {
		if m.Ready() != nil {
			return false
		}
		ms := m.Members()
		return len(ms) == 1 && ms[0].ID != before
	})
	took := time.Since(restarted)
	echoVia(t, m, "after")
	return took
}

// A member on NATS survives kill -9 of nats-server and its restart, with
// an empty store (the bucket is created again) and with its store (file
// storage: the bucket is still there), serving again within seconds.
func TestMemberSurvivesNATSRestart(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := map[bool]string{false: "EmptyStore", true: "KeptStore"}[keep]
		t.Run(name, func(t *testing.T) {
			srv := startProcess(t, "nats-server", func(port int, dir string) []string {
				return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "js")}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reg, err := natsreg.New(ctx, natsreg.Options{URL: "nats://" + srv.addr(), Bucket: "ostest_" + registrytest.NewID("b"), TTL: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			took := restartMember(t, reg, srv, func() {
				if !keep {
					srv.dir = t.TempDir()
				}
			})
			t.Logf("nats-server restarted (%s): the member served again %v later", name, took.Round(time.Millisecond))
		})
	}
}

// A member on Redis survives kill -9 of a redis-server without persistence
// (every key is lost) and its restart.
func TestMemberSurvivesRedisRestart(t *testing.T) {
	srv := startProcess(t, "redis-server", func(port int, dir string) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "no"}
	})
	reg, err := redisreg.New(redisreg.Options{Addr: srv.addr(), Cluster: "c" + registrytest.NewID("r")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	took := restartMember(t, reg, srv, func() {})
	t.Logf("redis-server restarted without its keys: the member served again %v later", took.Round(time.Millisecond))
}
