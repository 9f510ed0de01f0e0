package nats

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/persistence"
)

// Defaults applied by Options.setDefaults.
const (
	DefaultURL           = "nats://127.0.0.1:4222"
	DefaultStream        = "ORDERS_JOURNAL"
	DefaultSubjectPrefix = "orders.journal"
	DefaultDialTimeout   = 2 * time.Second
	DefaultTimeout       = 5 * time.Second
	DefaultSetupTimeout  = 30 * time.Second
	DefaultCacheSize     = 10_000
	DefaultCacheRecords  = 100_000
)

// Options configures a Backend. The zero value is usable: New fills in the
// defaults.
type Options struct {
	// Conn is an existing connection to use, made by natsconn.Connect (a
	// node shares one between its journal, transport and membership); the
	// backend never closes it. URL then only names the server in messages
	// (default: the server Conn is connected to), and CredsFile,
	// DialTimeout and Logger are unused. Without a Conn, New connects to
	// URL.
	Conn *natsgo.Conn

	// URL is the server URL, or several separated by commas. It may carry
	// credentials (nats://user:pass@host:4222 or nats://token@host:4222).
	// Default nats://127.0.0.1:4222.
	URL string

	// CredsFile is an optional NATS credentials file (JWT and nkey seed).
	CredsFile string

	// Stream is the base name of the journal (default ORDERS_JOURNAL):
	// partition p's stream is <Stream>_P<p>, and it names the key-value
	// buckets <Stream>_meta, <Stream>_checkpoints and <Stream>_snapshots.
	// Letters, digits, _ and - only.
	Stream string

	// SubjectPrefix is the subject prefix of the journal (default
	// orders.journal): order <id> of partition <p> is journaled on
	// <SubjectPrefix>.p<p>.<id>.
	SubjectPrefix string

	// Replicas is the replica count of the partition streams and of the
	// buckets (default 1). With 3 (on a cluster of at least 3 servers) the
	// journal keeps working while any one server is down.
	Replicas int

	// Partitions is the journal's partition count: 0 takes the count stored
	// with the journal (persistence.DefaultPartitions for a new one);
	// anything else must match the stored count (see
	// persistence.ResolvePartitions) and be at most persistence.MaxPartitions.
	Partitions int

	// Storage is the stream's and the buckets' storage (default file).
	Storage jetstream.StorageType

	// DialTimeout bounds connecting (default 2 s); Timeout bounds every
	// operation whose context has no earlier deadline (default 5 s).
	DialTimeout time.Duration
	Timeout     time.Duration
	// SetupTimeout bounds New's creation of the streams and buckets,
	// retried while the servers answer that they are not ready (a
	// JetStream cluster electing leaders, several nodes creating the same
	// R3 streams at once; default 30 s, and never past New's context).
	SetupTimeout time.Duration

	// CacheSize is the number of orders whose last (version, sequence) the
	// backend remembers (default 10,000); negative turns the cache off, so
	// that every append first looks the order's last message up and every
	// Load reads the whole order.
	CacheSize int

	// CacheRecords bounds the records (events) the cache keeps over all
	// orders (default 100,000), so that Load reads only what is newer.
	CacheRecords int

	// Logger receives connection events (disconnect, reconnect, async
	// errors). Default: discard.
	Logger *slog.Logger
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	subjectRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func (o *Options) setDefaults() {
	if o.URL == "" && o.Conn != nil {
		o.URL = o.Conn.ConnectedUrlRedacted()
	}
	if o.URL == "" && o.Conn == nil {
		o.URL = DefaultURL
	}
	// Accept host:port as nats://host:port.
	if o.URL != "" {
		parts := strings.Split(o.URL, ",")
		for i, u := range parts {
			if u = strings.TrimSpace(u); !strings.Contains(u, "://") {
				u = "nats://" + u
			}
			parts[i] = u
		}
		o.URL = strings.Join(parts, ",")
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultSubjectPrefix
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.SetupTimeout == 0 {
		o.SetupTimeout = DefaultSetupTimeout
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.CacheRecords == 0 {
		o.CacheRecords = DefaultCacheRecords
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first option that cannot work, naming it and its
// value. With a Conn, URL is not checked (it only names the server).
func (o *Options) Validate() error {
	for _, u := range strings.Split(o.URL, ",") {
		if o.Conn != nil {
			break
		}
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" {
			return fmt.Errorf("nats option URL=%s: want nats://[user:pass@]host:port[,...]", redact.URL(o.URL))
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("nats option URL=%s: scheme %q, want nats, tls, ws or wss", redact.URL(o.URL), p.Scheme)
		}
	}
	switch {
	case !nameRE.MatchString(o.Stream):
		return fmt.Errorf("nats option Stream=%q: letters, digits, _ and - only", o.Stream)
	case !subjectRE.MatchString(o.SubjectPrefix):
		return fmt.Errorf("nats option SubjectPrefix=%q: dot-separated tokens of letters, digits, _ and - (no wildcards)", o.SubjectPrefix)
	case strings.HasPrefix(o.SubjectPrefix, "$"):
		return fmt.Errorf("nats option SubjectPrefix=%q: must not start with $", o.SubjectPrefix)
	case o.Replicas < 1 || o.Replicas > 5:
		return fmt.Errorf("nats option Replicas=%d: must be 1..5", o.Replicas)
	case o.Partitions < 0 || o.Partitions > persistence.MaxPartitions:
		return fmt.Errorf("nats option Partitions=%d: want 1 to %d, or 0 for the stored count", o.Partitions, persistence.MaxPartitions)
	case o.Storage != jetstream.FileStorage && o.Storage != jetstream.MemoryStorage:
		return fmt.Errorf("nats option Storage=%d: want file or memory", o.Storage)
	case o.DialTimeout < 0:
		return fmt.Errorf("nats option DialTimeout=%s: must not be negative", o.DialTimeout)
	case o.SetupTimeout < 0:
		return fmt.Errorf("nats option SetupTimeout=%s: must not be negative", o.SetupTimeout)
	case o.Timeout < 0:
		return fmt.Errorf("nats option Timeout=%s: must not be negative", o.Timeout)
	}
	return nil
}

// bucket names derived from the stream name.
func (o *Options) checkpointBucket() string { return o.Stream + "_checkpoints" }
func (o *Options) snapshotBucket() string   { return o.Stream + "_snapshots" }
func (o *Options) metaBucket() string       { return o.Stream + "_meta" }
func (o *Options) rmsnapBucket() string     { return o.Stream + "_rmsnap" }

// partitionStream is the stream of partition p.
func (o *Options) partitionStream(p int) string { return o.Stream + "_P" + strconv.Itoa(p) }

// partitionSubjects is the subject prefix of partition p: order <id> is on
// <partitionSubjects(p)>.<id>.
func (o *Options) partitionSubjects(p int) string {
	return o.SubjectPrefix + ".p" + strconv.Itoa(p)
}
