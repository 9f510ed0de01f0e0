package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ordersystem/ordersystem/internal/wallclock"
	"github.com/ordersystem/ordersystem/node"
)

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(file, []byte("port: 6001\nnode-id: from-file\ntransport: redis\nidle-timeout: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		env     []string
		port    int
		nodeID  string
		trans   string
		idle    time.Duration
		cluster bool
	}{
		{"defaults", nil, nil, 5000, "auto", "inmemory", 2 * time.Minute, false},
		{"file", []string{"--config", file}, nil, 6001, "from-file", "redis", 30 * time.Second, false},
		{"env beats file", []string{"--config", file}, []string{"ORDERSYSTEM_PORT=6002", "ORDERSYSTEM_CLUSTER=true"}, 6002, "from-file", "redis", 30 * time.Second, true},
		{"flag beats env", []string{"--config", file, "--port", "6003", "--node-id", "n9"}, []string{"ORDERSYSTEM_PORT=6002", "ORDERSYSTEM_NODE_ID=env"}, 6003, "n9", "redis", 30 * time.Second, false},
		{"config from env", nil, []string{"ORDERSYSTEM_CONFIG=" + file}, 6001, "from-file", "redis", 30 * time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(c.args, c.env, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Port != c.port || cfg.NodeID != c.nodeID || cfg.Transport != c.trans || cfg.IdleTimeout != c.idle || cfg.Cluster != c.cluster {
				t.Fatalf("got port=%d node=%s transport=%s idle=%s cluster=%v", cfg.Port, cfg.NodeID, cfg.Transport, cfg.IdleTimeout, cfg.Cluster)
			}
		})
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--transport", "kafka"}, nil, "--transport=kafka: must be inmemory, redis or nats"},
		{[]string{"--persistence", "mysql"}, nil, "--persistence=mysql"},
		{[]string{"--port", "70000"}, nil, "--port=70000"},
		{[]string{"--node-id", "bad id"}, nil, `--node-id=bad id`},
		{[]string{"--log-format", "xml"}, nil, "--log-format=xml"},
		{[]string{"--idle-timeout", "0s"}, nil, "--idle-timeout=0s"},
		{nil, []string{"ORDERSYSTEM_PORTT=1"}, "ORDERSYSTEM_PORTT: no such setting"},
		{[]string{"--port", "abc"}, nil, "abc"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
		{[]string{"--config", "/does/not/exist.yaml"}, nil, "--config=/does/not/exist.yaml"},
		{[]string{"--api-token-file", "/does/not/exist"}, nil, "--api-token-file=/does/not/exist: open"},
		{nil, []string{"ORDERSYSTEM_API_TOKEN_FILE=/does/not/exist"}, "--api-token-file=/does/not/exist: open"},
		{[]string{"--max-connections", "-1"}, nil, "--max-connections=-1"},
		{[]string{"--read-timeout", "0s"}, nil, "--read-timeout=0s"},
		{[]string{"--max-in-flight-reads", "-1"}, nil, "--max-in-flight-reads=-1"},
		{[]string{"--drain-delay", "-1s"}, nil, "--drain-delay=-1s: must be 0"},
		{[]string{"--drain-delay", "30s"}, nil, "--drain-delay=30s: must be shorter than --shutdown-timeout=30s"},
		{[]string{"--drain-delay", "5s", "--shutdown-timeout", "3s"}, nil, "--drain-delay=5s: must be shorter than --shutdown-timeout=3s"},
		{nil, []string{"ORDERSYSTEM_DRAIN_DELAY=1m"}, "--drain-delay=1m0s: must be shorter"},
	}
	for _, c := range cases {
		_, err := loadConfig(c.args, c.env, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("args %v env %v: error %v, want it to contain %q", c.args, c.env, err, c.want)
		}
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"--help"}, nil, &out)
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"--transport", "--persistence", "--redis", "--nats", "--cluster", "--node-id", "--port", "--remote-port", "--advertise-host", "--config", "--log-format", "--api-token", "--api-token-file", "--max-connections", "--read-timeout", "--max-in-flight", "--max-in-flight-reads", "--drain-delay", "--shutdown-timeout", "ORDERSYSTEM_"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
	if !strings.Contains(out.String(), `(default "inmemory")`) {
		t.Errorf("--help does not show defaults:\n%s", out.String())
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) < 4 {
		t.Fatalf("configs/ holds %d YAML files, want standalone + 3 nodes", len(files))
	}
	for _, f := range files {
		cfg, err := loadConfig([]string{"--config", f}, nil, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if strings.Contains(f, "node") && (!cfg.Cluster || cfg.NodeID == "auto") {
			t.Errorf("%s: cluster=%v node-id=%s", f, cfg.Cluster, cfg.NodeID)
		}
	}
}

// The API token comes from the flag, ORDERSYSTEM_API_TOKEN, or a file
// named by --api-token-file or ORDERSYSTEM_API_TOKEN_FILE.
func TestAPITokenSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		args, env []string
		want, err string
	}{
		{"flag", []string{"--api-token", "from-flag"}, nil, "from-flag", ""},
		{"environment", nil, []string{"ORDERSYSTEM_API_TOKEN=from-env"}, "from-env", ""},
		{"file flag", []string{"--api-token-file", file}, nil, "from-file", ""},
		{"file from the environment", nil, []string{"ORDERSYSTEM_API_TOKEN_FILE=" + file}, "from-file", ""},
		{"empty file", []string{"--api-token-file", empty}, nil, "", "--api-token-file=" + empty + ": is empty"},
		{"file and token", []string{"--api-token-file", file}, []string{"ORDERSYSTEM_API_TOKEN=from-env"}, "", "set one of them"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(c.args, c.env, &bytes.Buffer{})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "from-") {
					t.Fatalf("error %v, want %q (and no token in it)", err, c.err)
				}
				return
			}
			if err != nil || cfg.APIToken != c.want {
				t.Fatalf("token %q, %v; want %q", cfg.APIToken, err, c.want)
			}
		})
	}
}

func TestDrainDelayAndReadBudgetFlags(t *testing.T) {
	cfg, err := loadConfig(nil, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DrainDelay != 5*time.Second || cfg.MaxInFlightReads != 4096 || cfg.MaxInFlight != 4096 {
		t.Fatalf("defaults: drain delay %s, reads %d, writes %d", cfg.DrainDelay, cfg.MaxInFlightReads, cfg.MaxInFlight)
	}
	cfg, err = loadConfig([]string{"--drain-delay", "0", "--max-in-flight", "8", "--max-in-flight-reads", "64"}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DrainDelay != 0 || cfg.MaxInFlight != 8 || cfg.MaxInFlightReads != 64 {
		t.Fatalf("flags: drain delay %s, writes %d, reads %d", cfg.DrainDelay, cfg.MaxInFlight, cfg.MaxInFlightReads)
	}
	cfg, err = loadConfig(nil, []string{"ORDERSYSTEM_DRAIN_DELAY=2s", "ORDERSYSTEM_SHUTDOWN_TIMEOUT=3s"}, &bytes.Buffer{})
	if err != nil || cfg.DrainDelay != 2*time.Second || cfg.ShutdownTimeout != 3*time.Second {
		t.Fatalf("env: %v, drain delay %s, shutdown timeout %s", err, cfg.DrainDelay, cfg.ShutdownTimeout)
	}
}

// A config file's unknown key is refused like an unknown flag, and a bad
// value names its source and key.
func TestConfigSourcesNamed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"unknown file key", []string{"--config", write("a.yaml", "port: 6001\nnod-id: x\n")}, nil, []string{"a.yaml", "unknown setting", "nod-id"}},
		{"nested file key", []string{"--config", write("b.yaml", "redis:\n  addr: x\n")}, nil, []string{"b.yaml", "redis.addr"}},
		{"bad file value", []string{"--config", write("c.yaml", "port: abc\n")}, nil, []string{"c.yaml", "'port'"}},
		{"bad env value", nil, []string{"ORDERSYSTEM_IDLE_TIMEOUT=forever"}, []string{"environment", "'idle-timeout'"}},
		{"unknown env key", nil, []string{"ORDERSYSTEM_NOPE=1"}, []string{"ORDERSYSTEM_NOPE", "no such setting"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(c.args, c.env, &bytes.Buffer{})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

// JSON logs write durations as durations, not integer nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	var out bytes.Buffer
	cfg := node.Default()
	cfg.LogFormat, cfg.LogLevel = "json", "info"
	newLogger(cfg, &out).Info("x", "ttl", 1500*time.Millisecond)
	if !strings.Contains(out.String(), `"ttl":"1.5s"`) {
		t.Fatalf("log line %s", out.String())
	}
}

// TestClockHookIsNoSetting: the test hook's variable is accepted (no "no
// such setting"), moves the clock the node gets, is not in --help, and
// without it the node keeps the real clock.
func TestClockHookIsNoSetting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	if err := os.WriteFile(path, []byte("30s"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(nil, []string{wallclock.OffsetFileEnv + "=" + path}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Now == nil {
		t.Fatal("the hook did not set the node's clock")
	}
	if d := cfg.Now().Sub(time.Now()); d < 29*time.Second || d > 31*time.Second {
		t.Fatalf("hooked clock is %v ahead, want 30s", d)
	}
	if cfg, err := loadConfig(nil, nil, &bytes.Buffer{}); err != nil || cfg.Now != nil {
		t.Fatalf("without the hook: clock set %v, err %v", cfg.Now != nil, err)
	}
	var out bytes.Buffer
	_, _ = loadConfig([]string{"--help"}, nil, &out)
	if strings.Contains(out.String(), "CLOCK") || strings.Contains(out.String(), "clock-offset") {
		t.Fatal("--help shows the clock test hook")
	}
}
