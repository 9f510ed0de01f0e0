// Command drill runs the cluster failure drills against real ordersystem
// processes on loopback, on a private Redis (or NATS) server it starts:
//
//	go run ./cmd/drill -drill failover
//	go run ./cmd/drill -drill all -backend nats
//	go run ./cmd/drill -drill backend-failover -backend redis
//	go run ./cmd/drill -drill failover-distribution -kills 50
//	go run ./cmd/drill -drill rolling -drain-delay 0   # behind a load balancer probing readiness
//	go run ./cmd/drill -drill backend-restart -backend nats
//	go run ./cmd/drill -drill slow-backend -backend redis
//	go run ./cmd/drill -drill clock-step
//	go run ./cmd/drill -drill partition -cuts 10s,40s   # as root
//
// Each drill records every client operation and checks the histories for
// linearizability (porcupine) and the journals for gaps; it prints its
// figures and exits non-zero if a check failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ordersystem/ordersystem/internal/drill"
)

func main() {
	var (
		which   = flag.String("drill", "all", "failover, pause, rolling, cutoff, failover-distribution, backend-failover, backend-restart, slow-backend, clock-step, partition (root), or all (the first four)")
		backend = flag.String("backend", "redis", "shared backend of the cluster: redis or nats")
		bin     = flag.String("bin", "", "ordersystem binary (default: go build ./cmd/ordersystem)")
		nodes   = flag.Int("nodes", 3, "cluster size")
		workers = flag.Int("workers", 16, "concurrent clients")
		load    = flag.Duration("load", 5*time.Second, "load before and after each fault")
		pause   = flag.Duration("pause", 8*time.Second, "SIGSTOP length of the pause drill (longer than the lease)")
		kills   = flag.Int("kills", 50, "failover-distribution: kill -9s, each member in turn, restarted after each")
		probes  = flag.Int("probes", 8, "failover-distribution: orders of the victim written to right after each kill")
		drain   = flag.Duration("drain-delay", 5*time.Second, "failover, pause, rolling, cutoff, failover-distribution: the members' --drain-delay (5s is the node's default; 0: the HTTP port closes at SIGTERM)")
		every   = flag.Duration("probe-every", 200*time.Millisecond, "rolling: the clients sit behind a load balancer that probes each member's readiness this often and sends only to the ready ones; refused connections fail the drill when -drain-delay is at least twice this (0: no balancer, the drill takes each member out of the clients' list before its SIGTERM)")
		bound   = flag.Duration("p99-bound", time.Second, "failover-distribution: the drill fails if the p99 from kill -9 until all probed orders answered is above this (with 50 kills or fewer, p99 is the slowest kill)")
		bf      backendFailover
		mb      membershipDrill
	)
	flag.IntVar(&bf.redisWait, "redis-wait", 1, "backend-failover on redis: the members' --redis-wait-replicas (1: the durable profile, where losing an acknowledged write fails the drill; 0: the default profile, where the loss is measured)")
	flag.IntVar(&bf.redisReplicas, "redis-replicas", 2, "backend-failover on redis: replicas per primary of the 3-primary Redis Cluster (with 1, a promoted replica has none left and WAIT 1 fails on its shard until the killed server returns)")
	flag.StringVar(&bf.kill, "kill", "journal", "backend-failover: the server to kill: journal (the leader of journal partition 0) or members (nats: the leader of the membership bucket, which every member renews its lease on)")
	flag.BoolVar(&bf.natsSync, "nats-sync", true, "backend-failover on nats: the servers fsync every write before acknowledging it (jetstream sync_interval: always)")
	flag.StringVar(&bf.natsServer, "nats-server", "", "backend-failover on nats: nats-server binary (default: go build the nats-server module of go.mod)")
	flag.DurationVar(&mb.down, "down", 5*time.Second, "backend-restart: how long the server stays down in each round (kill -9, then SIGTERM)")
	flag.StringVar(&mb.steps, "steps", "0,100,200,300,400,500,600,800", "slow-backend: added round trips to the backend in ms, one step each")
	flag.DurationVar(&mb.hold, "hold", 5*time.Second, "slow-backend: how long each step lasts; clock-step: how long each clock phase lasts")
	flag.DurationVar(&mb.carry, "carry", 500*time.Millisecond, "slow-backend: a fence or a failed write at an added round trip up to and including this (TTL/4 at the default lease) fails the drill (0: report only)")
	flag.DurationVar(&mb.step, "step", 30*time.Second, "clock-step: the wall-clock step of the first member (+step, then -step)")
	flag.StringVar(&mb.logs, "logs", "", "write each node's output into this directory at the end (every drill but partition)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if mb.logs != "" {
		if err := os.MkdirAll(mb.logs, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "drill:", err)
			os.Exit(1)
		}
	}
	if *which == "partition" { // see partition.go
		if err := partition(*backend, *bin, drill.Options{Nodes: *nodes, Workers: *workers, Load: *load, Logger: log}); err != nil {
			fmt.Fprintln(os.Stderr, "drill:", err)
			os.Exit(1)
		}
		return
	}
	switch *which {
	case "backend-restart", "slow-backend", "clock-step":
		if err := mb.run(*which, *backend, *bin, bf.natsServer, drill.Options{Nodes: *nodes, Workers: *workers, Load: *load, LogDir: mb.logs, Logger: log}); err != nil {
			fmt.Fprintln(os.Stderr, "drill:", err)
			os.Exit(1)
		}
		return
	}
	if *which == "backend-failover" {
		if err := bf.run(*backend, *bin, drill.Options{Nodes: *nodes, Workers: *workers, Load: *load, LogDir: mb.logs, Logger: log}); err != nil {
			fmt.Fprintln(os.Stderr, "drill:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*which, *backend, *bin, drill.Options{Nodes: *nodes, Workers: *workers, Load: *load, Pause: *pause,
		Kills: *kills, Probes: *probes, FailoverBound: *bound, DrainDelay: drain, ProbeEvery: *every, LogDir: mb.logs, Logger: log}); err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
}

// goBuild builds pkg into dir/name unless bin names a binary already.
func goBuild(bin, dir, name, pkg string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s %s: %v\n%s", bin, pkg, err, out)
	}
	return bin, nil
}

func run(which, backend, bin string, opts drill.Options) error {
	dir, err := os.MkdirTemp("", "ordersystem-drill")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if opts.Binary, err = goBuild(bin, dir, "ordersystem", "./cmd/ordersystem"); err != nil {
		return err
	}
	drills := map[string]func(drill.Options) (drill.Report, error){
		"failover": drill.Failover, "pause": drill.Pause, "rolling": drill.Rolling, "cutoff": drill.Cutoff,
		"failover-distribution": drill.FailoverDistribution,
	}
	names := []string{which}
	if which == "all" {
		names = []string{"failover", "pause", "rolling", "cutoff"}
	}
	failed := false
	for _, name := range names {
		f, ok := drills[name]
		if !ok {
			return fmt.Errorf("-drill=%s: must be failover, pause, rolling, cutoff, failover-distribution or all", name)
		}
		args, stop, err := startBackend(backend, filepath.Join(dir, name))
		if err != nil {
			return err
		}
		opts.Backend = args
		rep, err := f(opts)
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		printReport(rep)
		failed = failed || !rep.OK()
	}
	if failed {
		return fmt.Errorf("a drill failed")
	}
	return nil
}

// startBackend starts a private server for one drill.
func startBackend(kind, dir string) ([]string, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	switch kind {
	case "redis":
		addr, stop, err := drill.StartRedis(dir)
		if err != nil {
			return nil, nil, err
		}
		return []string{"--persistence", "redis", "--transport", "redis", "--redis", addr}, stop, nil
	case "nats":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		path, err := exec.LookPath("nats-server")
		if err != nil {
			return nil, nil, fmt.Errorf("-backend=nats needs nats-server on PATH: %w", err)
		}
		cmd := exec.Command(path, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		url := "nats://127.0.0.1:" + strconv.Itoa(port)
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://")); err == nil {
				c.Close()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		return []string{"--persistence", "nats", "--transport", "nats", "--nats", url}, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
	}
	return nil, nil, fmt.Errorf("-backend=%s: must be redis or nats", kind)
}

// backendFailover is the configuration of the backend-failover drill.
type backendFailover struct {
	kill                     string
	redisWait, redisReplicas int
	natsSync                 bool
	natsServer               string
}

// run starts the replicated backend (a 3-primary Redis Cluster or a
// three-server JetStream cluster), runs the drill on it and stops it.
func (bf backendFailover) run(backend, bin string, opts drill.Options) error {
	dir, err := os.MkdirTemp("", "ordersystem-drill")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if opts.Binary, err = goBuild(bin, dir, "ordersystem", "./cmd/ordersystem"); err != nil {
		return err
	}
	var (
		b       drill.FailoverBackend
		durable bool
	)
	if bf.kill != "journal" && (bf.kill != "members" || backend != "nats") {
		return fmt.Errorf("-kill=%s: must be journal, or members on nats", bf.kill)
	}
	switch backend {
	case "redis":
		if bf.redisWait < 0 || bf.redisWait > bf.redisReplicas {
			return fmt.Errorf("-redis-wait=%d: must be 0 to -redis-replicas (%d)", bf.redisWait, bf.redisReplicas)
		}
		c, err := drill.StartRedisCluster(dir, 3, bf.redisReplicas)
		if err != nil {
			return err
		}
		defer c.Close()
		b, durable = c, bf.redisWait > 0
		opts.Backend = []string{"--persistence", "redis", "--transport", "redis", "--redis", c.Seeds(),
			"--redis-wait-replicas", strconv.Itoa(bf.redisWait)}
		fmt.Printf("redis cluster: 3 primaries x %d replicas, appendfsync always, members with --redis-wait-replicas %d\n", bf.redisReplicas, bf.redisWait)
	case "nats":
		ns, err := goBuild(bf.natsServer, dir, "nats-server", "github.com/nats-io/nats-server/v2")
		if err != nil {
			return err
		}
		c, err := drill.StartNATSCluster(ns, dir, 3, bf.natsSync)
		if err != nil {
			return err
		}
		defer c.Close()
		// R3: JetStream acknowledges a write once a majority stored it;
		// without sync_interval always (-nats-sync=false) a majority may
		// hold it in memory only, which is not the durable profile: losses
		// are then measured, not refused.
		b, durable = c, bf.natsSync
		if bf.kill == "members" {
			opts.Victim = func(ctx context.Context) (string, error) {
				return c.StreamLeader(ctx, drill.MembersStream)
			}
			opts.NoFences = true
		}
		opts.Backend = []string{"--persistence", "nats", "--transport", "nats", "--nats", c.URLs(), "--nats-replicas", "3"}
		fmt.Printf("nats cluster: 3 servers, R3 streams, sync_interval always=%v\n", bf.natsSync)
	default:
		return fmt.Errorf("-backend=%s: must be redis or nats", backend)
	}
	rep, err := drill.BackendFailover(opts, b, durable)
	if err != nil {
		return fmt.Errorf("backend-failover: %w", err)
	}
	printReport(rep)
	if !rep.OK() {
		return fmt.Errorf("the backend-failover drill failed")
	}
	return nil
}

// membershipDrill is the configuration of the backend-restart,
// slow-backend and clock-step drills.
type membershipDrill struct {
	down, hold, carry, step time.Duration
	steps, logs             string
}

// run starts the drill's private backend server (clock-step: Redis) and
// runs the drill on it.
func (m membershipDrill) run(which, backend, bin, natsServer string, opts drill.Options) error {
	dir, err := os.MkdirTemp("", "ordersystem-drill")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if opts.Binary, err = goBuild(bin, dir, "ordersystem", "./cmd/ordersystem"); err != nil {
		return err
	}
	if which == "clock-step" {
		backend = "redis"
	}
	var b *drill.BackendServer
	switch backend {
	case "redis":
		b, err = drill.StartRedisServer(dir)
	case "nats":
		var ns string
		if ns, err = goBuild(natsServer, dir, "nats-server", "github.com/nats-io/nats-server/v2"); err != nil {
			return err
		}
		b, err = drill.StartNATSServer(ns, dir)
	default:
		return fmt.Errorf("-backend=%s: must be redis or nats", backend)
	}
	if err != nil {
		return err
	}
	defer b.Close()
	var rep drill.Report
	switch which {
	case "backend-restart":
		rep, err = drill.BackendRestart(opts, b, m.down)
	case "slow-backend":
		var steps []time.Duration
		for _, s := range strings.Split(m.steps, ",") {
			ms, perr := strconv.Atoi(strings.TrimSpace(s))
			if perr != nil || ms < 0 {
				return fmt.Errorf("-steps=%s: %q is not a number of milliseconds", m.steps, s)
			}
			steps = append(steps, time.Duration(ms)*time.Millisecond)
		}
		opts.ClientTimeout = 15 * time.Second // measure slow writes, do not time them out
		rep, err = drill.SlowBackend(opts, b, steps, m.hold, m.carry)
	case "clock-step":
		rep, err = drill.ClockStep(opts, b, dir, m.step, m.hold)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", which, err)
	}
	printReport(rep)
	if !rep.OK() {
		return fmt.Errorf("the %s drill failed", which)
	}
	return nil
}

// printReport prints a drill's report and, when it failed, the last
// warnings and errors of each node.
func printReport(rep drill.Report) {
	fmt.Println(rep)
	if l := rep.FailureLog(60); l != "" {
		fmt.Print(l)
	}
}
