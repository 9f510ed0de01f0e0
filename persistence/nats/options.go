package nats

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults applied by Options.setDefaults.
const (
	DefaultURL                  = "nats://127.0.0.1:4222"
	DefaultStream               = "ORDERS_JOURNAL"
	DefaultSubjectPrefix        = "orders.journal"
	DefaultDialTimeout          = 2 * time.Second
	DefaultTimeout              = 5 * time.Second
	DefaultIdempotencyRetention = 24 * time.Hour
	DefaultCacheSize            = 10_000
	DefaultCacheRecords         = 100_000
)

// Options configures a Backend. The zero value is usable: New fills in the
// defaults.
type Options struct {
	// URL is the server URL, or several separated by commas. It may carry
	// credentials (nats://user:pass@host:4222 or nats://token@host:4222).
	// Default nats://127.0.0.1:4222.
	URL string

	// CredsFile is an optional NATS credentials file (JWT and nkey seed).
	CredsFile string

	// Stream is the JetStream stream of the journal (default ORDERS_JOURNAL);
	// it also names the key-value buckets. Letters, digits, _ and - only.
	Stream string

	// SubjectPrefix is the subject prefix of the journal (default
	// orders.journal): order <id> is journaled on <SubjectPrefix>.<id>.
	SubjectPrefix string

	// Replicas is the stream's and the buckets' replica count (default 1).
	Replicas int

	// Storage is the stream's and the buckets' storage (default file).
	Storage jetstream.StorageType

	// DialTimeout bounds connecting (default 2 s); Timeout bounds every
	// operation whose context has no earlier deadline (default 5 s).
	DialTimeout time.Duration
	Timeout     time.Duration

	// IdempotencyRetention is the idempotency bucket's MaxAge on servers
	// without per-message TTL (before 2.11): records are removed after it
	// whatever their ttl. Default 24 h.
	IdempotencyRetention time.Duration

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
	if o.URL == "" {
		o.URL = DefaultURL
	}
	// Accept host:port as nats://host:port.
	parts := strings.Split(o.URL, ",")
	for i, u := range parts {
		if u = strings.TrimSpace(u); !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		parts[i] = u
	}
	o.URL = strings.Join(parts, ",")
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
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.IdempotencyRetention == 0 {
		o.IdempotencyRetention = DefaultIdempotencyRetention
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

// Validate reports the first option that cannot work, naming it and its value.
func (o *Options) Validate() error {
	for _, u := range strings.Split(o.URL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" {
			return fmt.Errorf("nats option URL=%s: want nats://[user:pass@]host:port[,...]", redactURLs(o.URL))
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("nats option URL=%s: scheme %q, want nats, tls, ws or wss", redactURLs(o.URL), p.Scheme)
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
	case o.Storage != jetstream.FileStorage && o.Storage != jetstream.MemoryStorage:
		return fmt.Errorf("nats option Storage=%d: want file or memory", o.Storage)
	case o.DialTimeout < 0:
		return fmt.Errorf("nats option DialTimeout=%s: must not be negative", o.DialTimeout)
	case o.Timeout < 0:
		return fmt.Errorf("nats option Timeout=%s: must not be negative", o.Timeout)
	case o.IdempotencyRetention < time.Second:
		return fmt.Errorf("nats option IdempotencyRetention=%s: must be at least 1s", o.IdempotencyRetention)
	}
	return nil
}

// redactURLs returns the server URL(s) without credentials.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			parts[i] = "(unparsable URL)"
			continue
		}
		p.User = nil
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// bucket names derived from the stream name.
func (o *Options) checkpointBucket() string  { return o.Stream + "_checkpoints" }
func (o *Options) snapshotBucket() string    { return o.Stream + "_snapshots" }
func (o *Options) idempotencyBucket() string { return o.Stream + "_idempotency" }
