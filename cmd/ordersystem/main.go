// Command ordersystem runs one OrderSystem node: standalone and in memory by
// default (`go run ./cmd/ordersystem`), or with Redis/NATS backends and in a
// cluster. `ordersystem --help` lists every flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/ordersystem/ordersystem/internal/gcdefaults"
	"github.com/ordersystem/ordersystem/internal/wallclock"
	"github.com/ordersystem/ordersystem/node"
)

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Environ(), os.Stderr)
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ordersystem:", err)
		os.Exit(2)
	}
	cfg.Logger = newLogger(cfg, os.Stderr)
	gcdefaults.Apply().Log(cfg.Logger)
	if path := clockHook(os.Environ()); path != "" {
		cfg.Logger.Warn("TEST HOOK: this node's wall clock (event timestamps, member record, node-to-node tokens) is moved by the offset in a file; never set it in production",
			slog.String("variable", wallclock.OffsetFileEnv), slog.String("file", path))
	}
	// go-redis prints its own lines (dial failures) to stderr: route them
	// through our logger at debug level, where the node's own error says it.
	goredis.SetLogger(redisLog{cfg.Logger})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "ordersystem:", err)
		os.Exit(1)
	}
}

// run starts the node and serves until ctx ends (SIGTERM/SIGINT), then shuts
// down within the shutdown timeout. After the first signal, stop restores
// the default handling, so a second signal kills the process at once.
func run(ctx context.Context, stop context.CancelFunc, cfg node.Config) error {
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-n.Done():
		_ = n.Shutdown(context.Background())
		return fmt.Errorf("HTTP server stopped: %w", err)
	}
	stop()
	cfg.Logger.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	cfg.Logger.Info("stopped", slog.Duration("took", time.Since(start)))
	return nil
}

// loadConfig reads defaults < YAML file (--config) < ORDERSYSTEM_* env < flags.
func loadConfig(args, environ []string, out io.Writer) (node.Config, error) {
	def := node.Default()
	fs := pflag.NewFlagSet("ordersystem", pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.String("config", "", "YAML configuration file (flags and ORDERSYSTEM_* variables override it)")
	fs.String("transport", def.Transport, "event transport: inmemory, redis or nats")
	fs.String("persistence", def.Persistence, "persistence backend: inmemory, redis or nats")
	fs.String("redis", def.Redis, "Redis address: host:port or redis://[user:password@]host:port[/db], rediss:// for TLS; a comma-separated list is the seeds of a Redis Cluster, or the Sentinels with --redis-master-name")
	fs.String("redis-master-name", def.RedisMasterName, "Redis Sentinel: the name of the master the --redis Sentinels watch (empty: no Sentinel)")
	fs.String("nats", def.NATS, "NATS server URL (nats://[user:password@]host:port), or several separated by commas (the servers of a JetStream cluster; with --nats-replicas 3 any one may be down)")
	fs.Bool("cluster", def.Cluster, "run as a member of a cluster")
	fs.String("node-id", def.NodeID, "node name in the cluster (auto: hostname-port)")
	fs.String("http-host", def.HTTPHost, "interface the HTTP API listens on (default: all)")
	fs.Int("port", def.Port, "HTTP port")
	fs.Int("remote-port", def.RemotePort, "node-to-node gRPC port (default: --port + 1000 in cluster mode; 0: any free port)")
	fs.String("advertise-host", def.AdvertiseHost, "host (or host:port) other nodes use to reach this one, e.g. in containers")
	fs.String("api-token", def.APIToken, "require 'Authorization: Bearer <token>' on every route but the health probes")
	fs.String("api-token-file", "", "file holding the --api-token (read once at start, a trailing newline dropped)")
	fs.String("cluster-secret", "", "secret every node-to-node call authenticates with, the same on every node, at least 16 bytes (default: a random one kept in the Redis/NATS backend; required for --peers with --advertise-host); prefer the file or ORDERSYSTEM_CLUSTER_SECRET, a flag shows in ps")
	fs.String("cluster-secret-file", "", "file holding the --cluster-secret (read once at start, a trailing newline dropped)")
	fs.String("tls-cert", "", "PEM certificate: serve HTTPS (and, with --tls-ca, present it to the other nodes)")
	fs.String("tls-key", "", "PEM private key of --tls-cert")
	fs.String("tls-ca", "", "PEM CA: node-to-node gRPC uses mutual TLS, accepting only peers whose certificate this CA signed")
	fs.Int("max-in-flight", def.MaxInFlight, "order writes (POST /orders...) served at once; past it they get 503 at once instead of queueing (0: no bound)")
	fs.Int("max-in-flight-reads", def.MaxInFlightReads, "order reads (GET /orders, /orders/{id}, history) served at once, a budget apart from the writes: a flood of writes never refuses a read (0: no bound)")
	fs.Int("max-connections", def.MaxConnections, "open HTTP connections at most; past it new ones wait in the listen backlog (0: no cap)")
	fs.Duration("read-timeout", def.ReadTimeout, "bound of reading one HTTP request, headers and body (slower clients are disconnected); answers get read-timeout + request-timeout + 5s")
	fs.Bool("protect-metrics", false, "require the --api-token on /metrics too (it is open by default, like the probes)")
	fs.String("log-format", def.LogFormat, "log format: text or json")
	fs.String("log-level", def.LogLevel, "log level: debug, info, warn or error")
	fs.String("otlp-endpoint", "", "export OpenTelemetry spans to this OTLP/HTTP receiver, host:port or an http(s):// URL (/v1/traces when it has no path); without it an incoming W3C traceparent is still continued into the response and the events, and nothing is recorded")
	fs.Duration("idle-timeout", def.IdleTimeout, "passivate an order actor after this long without messages (5 s while the live heap is near the soft memory limit)")
	fs.Duration("request-timeout", def.RequestTimeout, "bound of one HTTP request's call to an order actor")
	fs.Duration("outbox-interval", def.OutboxInterval, "outbox scan interval (it is also nudged after every write)")
	fs.Duration("outbox-linger", def.OutboxLinger, "under load, a partition's outbox drains at most once per this long, publishing the writes of that moment in one batch (0: a drain per write; an idle partition drains a write at once)")
	fs.Int("outbox-batch", def.OutboxBatch, "events published per outbox batch")
	fs.Int("snapshot-every", def.SnapshotEvery, "store an order's state every N events (0: never); activation reads the snapshot plus the tail")
	fs.Int("read-model-snapshot-every", def.ReadModelSnapshotEvery, "Redis/NATS: snapshot a journal partition's read model once its log holds N records past the last snapshot (written by the member that drains the partition's outbox); a start loads the snapshots and replays only the tail (0: never, replay everything)")
	fs.Duration("read-model-snapshot-interval", def.ReadModelSnapshotInterval, "how often the read-model snapshots are checked (see --read-model-snapshot-every)")
	fs.Duration("shutdown-timeout", def.ShutdownTimeout, "bound of a graceful shutdown, the drain delay included")
	fs.Duration("drain-delay", def.DrainDelay, "on SIGTERM, keep serving every route this long with readiness 503, so load balancers stop sending before the port closes (0: close at once; must be shorter than --shutdown-timeout)")
	fs.String("discovery", def.Discovery, "where cluster members find each other: auto (the redis/nats backend in use, else --peers), redis, nats or peers")
	fs.StringSlice("peers", nil, "HTTP addresses host:port of every node, for a cluster without a shared backend (in-memory experiments; membership on HTTP port + 2000)")
	fs.String("cluster-name", def.ClusterName, "cluster name: nodes with the same name and backend form one cluster; it namespaces every key, stream, subject and bucket the cluster keeps in the backend")
	fs.Duration("lease-ttl", def.LeaseTTL, "membership lease: a node that cannot renew it for this long is dropped by the others and fences itself (default 2s; 15s on a replicated JetStream cluster, --nats-replicas > 1, whose bucket leader elections outlast a 2s lease)")
	fs.Int("partitions", def.Partitions, "journal partitions, each with its own log and outbox, spread over the members and the backend's shards; stored with the journal at first start, and a node with another count is refused (0: the stored count)")
	fs.Int("redis-wait-replicas", def.RedisWaitReplicas, "Redis: every append waits until this many replicas acknowledged it (WAIT); 0 = do not wait (a failover of the Redis primary can lose acknowledged writes)")
	fs.Int("nats-replicas", def.NATSReplicas, "NATS: replicas of the journal stream and buckets (a JetStream cluster of at least this many servers)")
	fs.String("nats-storage", def.NATSStorage, "NATS: journal storage, file or memory (memory loses everything when the server restarts)")
	fs.Duration("health-interval", def.HealthInterval, "interval of the supervisor's dependency checks (failures are re-checked with backoff)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: ordersystem [flags]\n\nRuns one OrderSystem node. Every flag can also be set as ORDERSYSTEM_<NAME>\n(e.g. ORDERSYSTEM_PORT=5001, ORDERSYSTEM_NODE_ID=node1) or in the --config file.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return def, err
	}
	if fs.NArg() > 0 {
		return def, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}

	k := koanf.New(".")
	if err := k.Load(posflag.Provider(fs, ".", k), nil); err != nil { // defaults
		return def, err
	}
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "ORDERSYSTEM_CONFIG="); ok {
				path = v
			}
		}
	}
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	// Each source is read on its own first, so that an unknown key or a bad
	// value names its source and key.
	check := func(src string, kk *koanf.Koanf) error {
		probe := def
		if err := kk.UnmarshalWithConf("", &probe, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
			msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):\n\n")
			return fmt.Errorf("%s: %s", src, strings.ReplaceAll(msg, "\n", "; "))
		}
		return nil
	}
	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return def, fmt.Errorf("--config=%s: %w", path, err)
		}
		var unknown []string
		for _, key := range fk.Keys() {
			if !known[key] {
				unknown = append(unknown, key)
			}
		}
		if len(unknown) > 0 {
			return def, fmt.Errorf("--config=%s: unknown setting(s) %s (each key is a flag name without the dashes, e.g. node-id)", path, strings.Join(unknown, ", "))
		}
		if fk.Exists("config") {
			return def, fmt.Errorf("--config=%s: a config file cannot name another (config)", path)
		}
		if err := check("--config="+path, fk); err != nil {
			return def, err
		}
		if err := k.Merge(fk); err != nil {
			return def, err
		}
	}
	var envErr error
	ek := koanf.New(".")
	if err := ek.Load(env.Provider(".", env.Opt{
		Prefix: "ORDERSYSTEM_",
		TransformFunc: func(key, value string) (string, any) {
			name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(key, "ORDERSYSTEM_")), "_", "-")
			if key == wallclock.OffsetFileEnv {
				return "", nil // the test hook, no setting (clockHook)
			}
			if !known[name] {
				envErr = errors.Join(envErr, fmt.Errorf("%s: no such setting (flag --%s does not exist)", key, name))
				return "", nil
			}
			return name, value
		},
		EnvironFunc: func() []string { return environ },
	}), nil); err != nil {
		return def, err
	}
	if envErr != nil {
		return def, envErr
	}
	if err := check("environment (ORDERSYSTEM_*)", ek); err != nil {
		return def, err
	}
	if err := k.Merge(ek); err != nil {
		return def, err
	}
	// Flags the user set win over everything.
	if err := k.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		if !f.Changed {
			return "", nil
		}
		return f.Name, posflag.FlagVal(fs, f)
	}), nil); err != nil {
		return def, err
	}
	cfg := def
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return def, fmt.Errorf("configuration: %w", err)
	}
	if err := cfg.ReadSecretFiles(); err != nil {
		return def, err
	}
	if err := cfg.Validate(); err != nil {
		return def, err
	}
	if path := clockHook(environ); path != "" {
		cfg.Now = wallclock.OffsetFile(path)
	}
	return cfg, nil
}

// clockHook returns the file named by the test hook
// wallclock.OffsetFileEnv, "" when it is not set. The hook is no setting:
// no flag, no --help line, no YAML key; a node that has it logs a WARN.
func clockHook(environ []string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, wallclock.OffsetFileEnv+"="); ok {
			return v
		}
	}
	return ""
}

type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.Debug(fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
}

// durationText writes durations as Go durations ("1.5s"), which the JSON
// handler would write as integer nanoseconds.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func newLogger(cfg node.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
