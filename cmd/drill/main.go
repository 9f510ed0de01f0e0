// Command drill runs the cluster failure drills against real ordersystem
// processes on loopback, on a private Redis (or NATS) server it starts:
//
//	go run ./cmd/drill -drill failover
//	go run ./cmd/drill -drill all -backend nats
//
// Each drill records every client operation and checks the histories for
// linearizability (porcupine) and the journals for gaps; it prints its
// figures and exits non-zero if a check failed.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ordersystem/ordersystem/internal/drill"
)

func main() {
	var (
		which   = flag.String("drill", "all", "failover, pause, rolling, cutoff or all")
		backend = flag.String("backend", "redis", "shared backend of the cluster: redis or nats")
		bin     = flag.String("bin", "", "ordersystem binary (default: go build ./cmd/ordersystem)")
		nodes   = flag.Int("nodes", 3, "cluster size")
		workers = flag.Int("workers", 16, "concurrent clients")
		load    = flag.Duration("load", 5*time.Second, "load before and after each fault")
		pause   = flag.Duration("pause", 8*time.Second, "SIGSTOP length of the pause drill (longer than the lease)")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*which, *backend, *bin, drill.Options{Nodes: *nodes, Workers: *workers, Load: *load, Pause: *pause, Logger: log}); err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
}

func run(which, backend, bin string, opts drill.Options) error {
	dir, err := os.MkdirTemp("", "ordersystem-drill")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "ordersystem")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ordersystem").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	opts.Binary = bin
	drills := map[string]func(drill.Options) (drill.Report, error){
		"failover": drill.Failover, "pause": drill.Pause, "rolling": drill.Rolling, "cutoff": drill.Cutoff,
	}
	names := []string{which}
	if which == "all" {
		names = []string{"failover", "pause", "rolling", "cutoff"}
	}
	failed := false
	for _, name := range names {
		f, ok := drills[name]
		if !ok {
			return fmt.Errorf("-drill=%s: must be failover, pause, rolling, cutoff or all", name)
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
		fmt.Println(rep)
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
