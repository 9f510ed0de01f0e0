package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/netutil"

	"github.com/ordersystem/ordersystem/persistence"

	"github.com/ordersystem/ordersystem/internal/redisconn"
)

// Backend names for --transport and --persistence.
const (
	InMemory = "inmemory"
	Redis    = "redis"
	NATS     = "nats"
)

// Config is everything a node needs; the command line, the environment and
// a YAML file fill it (see cmd/ordersystem).
type Config struct {
	Transport   string `koanf:"transport"`
	Persistence string `koanf:"persistence"`
	Redis       string `koanf:"redis"`

	// RedisMasterName, when set, makes Redis the list of Sentinels that
	// watch the master of that name; without it a comma-separated Redis is
	// the seeds of a Redis Cluster (see redisconn.New).
	RedisMasterName string `koanf:"redis-master-name"`

	NATS    string `koanf:"nats"`
	Cluster bool   `koanf:"cluster"`
	NodeID  string `koanf:"node-id"`
	// HTTPHost is the interface the HTTP API listens on (default all).
	HTTPHost string `koanf:"http-host"`
	Port     int    `koanf:"port"`
	// RemotePort is the node-to-node gRPC port; -1 means Port+1000, 0 any.
	RemotePort    int    `koanf:"remote-port"`
	AdvertiseHost string `koanf:"advertise-host"`
	APIToken      string `koanf:"api-token"`
	// APITokenFile holds the API token instead of APIToken: ReadSecretFiles
	// reads it once at start (cmd/ordersystem calls it), dropping a trailing
	// newline.
	APITokenFile string `koanf:"api-token-file"`
	// ClusterSecret authenticates node-to-node calls (and the --peers
	// membership port): the same on every member, at least 16 bytes.
	// Without it a cluster on Redis or NATS uses the random secret its
	// backend keeps for it; --peers has none.
	ClusterSecret string `koanf:"cluster-secret"`
	// ClusterSecretFile holds the ClusterSecret instead (ReadSecretFiles).
	ClusterSecretFile string `koanf:"cluster-secret-file"`
	// TLS: --tls-cert/--tls-key serve HTTPS; with --tls-ca as well,
	// node-to-node gRPC uses mutual TLS with the same certificate.
	TLSCert string `koanf:"tls-cert"`
	TLSKey  string `koanf:"tls-key"`
	TLSCA   string `koanf:"tls-ca"`
	// MaxInFlight bounds the order writes (POST /orders...) served at once
	// (0: no bound).
	MaxInFlight int `koanf:"max-in-flight"`
	// MaxInFlightReads bounds the order reads (GET /orders...) served at
	// once, a budget apart from the writes' (0: no bound).
	MaxInFlightReads int `koanf:"max-in-flight-reads"`
	// MaxConnections caps the open HTTP connections (0: no cap); past it a
	// new connection waits in the listen backlog until one closes.
	MaxConnections int `koanf:"max-connections"`
	// ReadTimeout bounds reading one HTTP request, headers and body: a
	// client that sends them more slowly is disconnected. The write timeout
	// follows from it (see httpServer).
	ReadTimeout time.Duration `koanf:"read-timeout"`
	// ProtectMetrics requires the API token on /metrics too.
	ProtectMetrics bool   `koanf:"protect-metrics"`
	LogFormat      string `koanf:"log-format"`
	LogLevel       string `koanf:"log-level"`

	IdleTimeout    time.Duration `koanf:"idle-timeout"`
	RequestTimeout time.Duration `koanf:"request-timeout"`
	OutboxInterval time.Duration `koanf:"outbox-interval"`
	// OutboxLinger is how long a partition's outbox waits after its last
	// drain before the next one, so that the appends of a busy moment go
	// out in one batch (0: a drain per nudge).
	OutboxLinger    time.Duration `koanf:"outbox-linger"`
	OutboxBatch     int           `koanf:"outbox-batch"`
	ShutdownTimeout time.Duration `koanf:"shutdown-timeout"`
	HealthInterval  time.Duration `koanf:"health-interval"`
	SnapshotEvery   int           `koanf:"snapshot-every"`
	// ReadModelSnapshotEvery is how many records a journal partition's log
	// must hold past its read-model snapshot for the member that hosts the
	// partition's outbox to write a new one (0: none are written, and a
	// start replays every log from the beginning). Redis and NATS only.
	ReadModelSnapshotEvery int `koanf:"read-model-snapshot-every"`
	// ReadModelSnapshotInterval is how often that is checked.
	ReadModelSnapshotInterval time.Duration `koanf:"read-model-snapshot-interval"`
	// DrainDelay is how long Shutdown keeps serving every route after
	// readiness turns 503, so that load balancers see the 503 and stop
	// sending before the port closes (0: close at once). It counts against
	// ShutdownTimeout, and must be shorter.
	DrainDelay time.Duration `koanf:"drain-delay"`
	// Discovery is where cluster members find each other: auto (the shared
	// persistence/transport backend), redis or nats.
	Discovery   string `koanf:"discovery"`
	ClusterName string `koanf:"cluster-name"`
	// LeaseTTL is the membership lease (0: DefaultLeaseTTL, or
	// ReplicatedNATSLeaseTTL when the membership is on a replicated
	// JetStream bucket; Validate sets it).
	LeaseTTL time.Duration `koanf:"lease-ttl"`
	// Peers are the HTTP addresses (host:port) of the cluster's nodes, for a
	// cluster without a shared backend (in-memory experiments): membership
	// then runs on each node's HTTP port + 2000.
	Peers []string `koanf:"peers"`
	// Partitions is the journal's partition count (0: the stored one, or
	// persistence.DefaultPartitions for a new journal); a journal created
	// with another count is refused.
	Partitions int `koanf:"partitions"`
	// Durability asked of the servers.
	RedisWaitReplicas int    `koanf:"redis-wait-replicas"`
	NATSReplicas      int    `koanf:"nats-replicas"`
	NATSStorage       string `koanf:"nats-storage"`

	// OTLPEndpoint, when set, exports the node's spans to this OTLP/HTTP
	// receiver (host:port, or an http:// or https:// URL; /v1/traces when
	// it has no path) through a batch span processor. Without it the W3C
	// trace context of a request is still continued into the response, the
	// cluster call and the events' metadata, and nothing is recorded.
	OTLPEndpoint string `koanf:"otlp-endpoint"`

	// Logger is set by the caller, not by configuration.
	Logger *slog.Logger `koanf:"-"`
	// Now, set by the caller, is the wall clock that dates what other
	// members read: event timestamps, the member record's start time,
	// node-to-node tokens, checkpoint resets (default time.Now).
	// cmd/ordersystem sets it only for the test hook
	// wallclock.OffsetFileEnv.
	Now func() time.Time `koanf:"-"`
	// TracerProvider, if set by the caller (an embedding program, a test),
	// records the node's spans instead of the OTLP exporter; the caller
	// owns it and shuts it down.
	TracerProvider trace.TracerProvider `koanf:"-"`
}

// Default returns the configuration of `go run ./cmd/ordersystem`: a
// standalone in-memory node on port 5000.
func Default() Config {
	return Config{
		Transport:        InMemory,
		Persistence:      InMemory,
		Redis:            "localhost:6379",
		NATS:             "nats://localhost:4222",
		NodeID:           "auto",
		Port:             5000,
		RemotePort:       -1,
		LogFormat:        "text",
		LogLevel:         "info",
		IdleTimeout:      2 * time.Minute,
		RequestTimeout:   10 * time.Second,
		OutboxInterval:   2 * time.Second,
		OutboxLinger:     20 * time.Millisecond,
		OutboxBatch:      100,
		ShutdownTimeout:  30 * time.Second,
		DrainDelay:       5 * time.Second,
		HealthInterval:   30 * time.Second,
		SnapshotEvery:    100,
		MaxInFlight:      4096,
		MaxInFlightReads: 4096,
		MaxConnections:   4096,
		ReadTimeout:      30 * time.Second,
		Discovery:        "auto",
		ClusterName:      "ordersystem",
		LeaseTTL:         0, // DefaultLeaseTTL or ReplicatedNATSLeaseTTL, by Validate
		NATSReplicas:     1,
		NATSStorage:      "file",
		Partitions:       persistence.DefaultPartitions,

		ReadModelSnapshotEvery:    20000,
		ReadModelSnapshotInterval: 15 * time.Second,
	}
}

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// clusterNamePattern is what a --cluster-name may be. The name becomes a
// Redis key segment before ':', a NATS subject token and, upper-cased, part
// of NATS stream names (see clusterNamespace), so it has no ':' or '.' (one
// cluster's prefix would then start another's: "a" and "a:b") and no upper
// case ("Prod" and "prod" would share NATS streams, and a case-insensitive
// file system would mix their stores).
var clusterNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// validClusterName returns why name cannot be a cluster name, or "".
func validClusterName(name string) string {
	if !clusterNamePattern.MatchString(name) {
		return "must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit " +
			"(it names the cluster's Redis keys and NATS streams, subjects and buckets)"
	}
	if name == reservedClusterName {
		return "is reserved: the default cluster's Redis stream orders:events and NATS subjects orders.> would lie inside its namespace"
	}
	return ""
}

// DefaultLeaseTTL is the membership lease unless --lease-ttl says otherwise.
const DefaultLeaseTTL = 2 * time.Second

// ReplicatedNATSLeaseTTL is the default lease when the membership bucket is
// replicated over a JetStream cluster: when the server that leads the
// bucket dies, nothing can renew a lease until the others elect a new
// leader, which took 5-8 s here (nats-server waits 4-9 s before it calls
// an election), and a 2 s lease fenced every member through it.
const ReplicatedNATSLeaseTTL = 15 * time.Second

// Validate checks every setting and names the flag and the bad value.
func (c *Config) Validate() error {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
		if c.discovery() == NATS && c.NATSReplicas > 1 {
			c.LeaseTTL = ReplicatedNATSLeaseTTL
		}
	}
	var errs []error
	bad := func(flag string, value any, why string) {
		errs = append(errs, fmt.Errorf("--%s=%v: %s", flag, value, why))
	}
	for _, b := range []struct{ flag, v string }{{"transport", c.Transport}, {"persistence", c.Persistence}} {
		switch b.v {
		case InMemory, Redis, NATS:
		default:
			bad(b.flag, b.v, "must be inmemory, redis or nats")
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("port", c.Port, "must be 0-65535")
	}
	if c.RemotePort < -1 || c.RemotePort > 65535 {
		bad("remote-port", c.RemotePort, "must be 0-65535 (0: any free port; default: --port + 1000)")
	}
	if c.RemotePort == -1 && c.Port+1000 > 65535 {
		bad("remote-port", "default", fmt.Sprintf("--port %d + 1000 is not a port; set --remote-port", c.Port))
	}
	if c.NodeID != "auto" && !nodeIDPattern.MatchString(c.NodeID) {
		bad("node-id", c.NodeID, "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if c.HTTPHost != "" && net.ParseIP(c.HTTPHost) == nil && c.HTTPHost != "localhost" {
		bad("http-host", c.HTTPHost, "must be an IP address or localhost")
	}
	if c.OTLPEndpoint != "" {
		if _, err := otlpURL(c.OTLPEndpoint); err != nil {
			bad("otlp-endpoint", c.OTLPEndpoint, err.Error())
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", c.LogFormat, "must be text or json")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", c.LogLevel, "must be debug, info, warn or error")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"idle-timeout", c.IdleTimeout}, {"request-timeout", c.RequestTimeout}, {"read-timeout", c.ReadTimeout}, {"outbox-interval", c.OutboxInterval}, {"shutdown-timeout", c.ShutdownTimeout}, {"health-interval", c.HealthInterval}, {"read-model-snapshot-interval", c.ReadModelSnapshotInterval}} {
		if d.v <= 0 {
			bad(d.flag, d.v, "must be a positive duration such as 500ms, 2s or 2m")
		}
	}
	if c.OutboxLinger < 0 || c.OutboxLinger > time.Second {
		bad("outbox-linger", c.OutboxLinger, "must be between 0 (a drain per write) and 1s, such as 20ms")
	}
	switch c.Discovery {
	case "", "auto", Redis, NATS, "peers":
	default:
		bad("discovery", c.Discovery, "must be auto, redis, nats or peers")
	}
	for _, p := range c.Peers {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			bad("peers", p, "must be a comma-separated list of host:port (the HTTP addresses of the nodes)")
		}
	}
	if c.discovery() == "peers" && len(c.Peers) == 0 {
		bad("discovery", "peers", "needs --peers")
	}
	if why := validClusterName(c.ClusterName); why != "" {
		bad("cluster-name", c.ClusterName, why)
	}
	if c.LeaseTTL < time.Second {
		bad("lease-ttl", c.LeaseTTL, "must be at least 1s")
	}
	if c.Cluster && c.discovery() == InMemory {
		bad("cluster", true, "a cluster needs a shared backend (--persistence redis or nats), or --peers for an in-memory experiment")
	}
	if c.RedisWaitReplicas < 0 {
		bad("redis-wait-replicas", c.RedisWaitReplicas, "must be 0 (do not wait) or the number of replicas an append waits for")
	}
	if c.NATSReplicas < 1 || c.NATSReplicas > 5 {
		bad("nats-replicas", c.NATSReplicas, "must be 1-5")
	}
	if c.NATSStorage != "file" && c.NATSStorage != "memory" {
		bad("nats-storage", c.NATSStorage, "must be file or memory")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert", c.TLSCert, "--tls-cert and --tls-key go together")
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		bad("tls-ca", c.TLSCA, "mutual TLS between nodes also needs --tls-cert and --tls-key")
	}
	if c.MaxInFlight < 0 {
		bad("max-in-flight", c.MaxInFlight, "must be 0 (no bound) or positive")
	}
	if c.MaxInFlightReads < 0 {
		bad("max-in-flight-reads", c.MaxInFlightReads, "must be 0 (no bound) or positive")
	}
	switch {
	case c.DrainDelay < 0:
		bad("drain-delay", c.DrainDelay, "must be 0 (close the HTTP port at once) or a positive duration such as 5s")
	case c.DrainDelay > 0 && c.ShutdownTimeout > 0 && c.DrainDelay >= c.ShutdownTimeout:
		bad("drain-delay", c.DrainDelay, fmt.Sprintf("must be shorter than --shutdown-timeout=%v: the delay counts against it, "+
			"and the requests in flight, the outbox flush and leaving the cluster need the rest", c.ShutdownTimeout))
	}
	if c.MaxConnections < 0 {
		bad("max-connections", c.MaxConnections, "must be 0 (no cap) or positive")
	}
	// The token's value never appears in a message.
	if c.APITokenFile != "" && c.APIToken == "" {
		bad("api-token-file", c.APITokenFile, "was not read (call Config.ReadSecretFiles before starting the node)")
	}
	if strings.IndexFunc(c.APIToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		errs = append(errs, errors.New("--api-token: must not contain spaces or control characters (it travels in the Authorization header)"))
	}
	// Nor does the cluster secret's.
	if c.ClusterSecretFile != "" && c.ClusterSecret == "" {
		bad("cluster-secret-file", c.ClusterSecretFile, "was not read (call Config.ReadSecretFiles before starting the node)")
	}
	if c.ClusterSecret != "" {
		if len(c.ClusterSecret) < 16 {
			errs = append(errs, fmt.Errorf("--cluster-secret: is %d bytes, must be at least 16 (e.g. the output of openssl rand -hex 32)", len(c.ClusterSecret)))
		}
		if strings.IndexFunc(c.ClusterSecret, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			errs = append(errs, errors.New("--cluster-secret: must not contain spaces or control characters"))
		}
	}
	if c.Cluster && c.discovery() == "peers" && c.ClusterSecret == "" && c.AdvertiseHost != "" {
		bad("advertise-host", c.AdvertiseHost, "with --peers the node-to-node and membership ports would listen on every interface without authentication: "+
			"set --cluster-secret, --cluster-secret-file or ORDERSYSTEM_CLUSTER_SECRET (the same on every node)")
	}
	if c.SnapshotEvery < 0 {
		bad("snapshot-every", c.SnapshotEvery, "must be 0 (no snapshots) or a positive number of events")
	}
	if c.ReadModelSnapshotEvery < 0 {
		bad("read-model-snapshot-every", c.ReadModelSnapshotEvery, "must be 0 (no read-model snapshots) or a positive number of log records")
	}
	if c.Partitions < 0 || c.Partitions > persistence.MaxPartitions {
		bad("partitions", c.Partitions, fmt.Sprintf("must be 1-%d, or 0 for the count the journal was created with", persistence.MaxPartitions))
	}
	if c.OutboxBatch < 1 || c.OutboxBatch > 10000 {
		bad("outbox-batch", c.OutboxBatch, "must be 1-10000")
	}
	if c.Redis == "" && (c.Transport == Redis || c.Persistence == Redis) {
		bad("redis", `""`, "is required when a redis backend is used")
	} else if user := c.backendUser(Redis); user != "" {
		if err := (redisconn.Options{Addr: c.Redis, MasterName: c.RedisMasterName}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: --redis: %w", user, err))
		}
	}
	if strings.ContainsAny(c.RedisMasterName, " \t\r\n") {
		bad("redis-master-name", fmt.Sprintf("%q", c.RedisMasterName), "must not contain white space")
	}
	if c.NATS == "" && (c.Transport == NATS || c.Persistence == NATS) {
		bad("nats", `""`, "is required when a nats backend is used")
	}
	return errors.Join(errs...)
}

// Mode is "cluster" or "standalone".
func (c *Config) Mode() string {
	if c.Cluster {
		return "cluster"
	}
	return "standalone"
}

// remotePort resolves the default node-to-node port.
func (c *Config) remotePort() int {
	if c.RemotePort == -1 {
		if !c.Cluster {
			return 0 // standalone: nobody dials us
		}
		return c.Port + 1000
	}
	return c.RemotePort
}

// ReadSecretFiles reads the secrets given as files (--api-token-file,
// --cluster-secret-file) into the configuration. It is called once, at
// start, before Validate; an error names the flag and the file, never the
// secret.
func (c *Config) ReadSecretFiles() error {
	for _, f := range []struct {
		flag, valueFlag, path string
		value                 *string
	}{
		{"api-token-file", "api-token", c.APITokenFile, &c.APIToken},
		{"cluster-secret-file", "cluster-secret", c.ClusterSecretFile, &c.ClusterSecret},
	} {
		if f.path == "" {
			continue
		}
		if *f.value != "" {
			return fmt.Errorf("--%s=%s: --%s is set too; set one of them", f.flag, f.path, f.valueFlag)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("--%s=%s: %w", f.flag, f.path, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return fmt.Errorf("--%s=%s: is empty", f.flag, f.path)
		}
		*f.value = v
	}
	return nil
}

// httpServer is the HTTP server of the API, with every timeout set: the
// headers and the body of a request must arrive within ReadTimeout (the
// headers within 10 s at most), and the answer must be written within
// ReadTimeout + RequestTimeout + 5 s of the headers (the write deadline
// runs from there, and covers reading the body and serving the request).
func (c *Config) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, c.ReadTimeout),
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.ReadTimeout + c.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// httpListener caps the connections ln accepts at MaxConnections.
func (c *Config) httpListener(ln net.Listener) net.Listener {
	if c.MaxConnections <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, c.MaxConnections)
}
