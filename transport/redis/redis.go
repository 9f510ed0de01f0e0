package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/transport"
)

// Defaults for Options.
const (
	// DefaultKey is the stream other services read.
	DefaultKey = "orders:events"
	// DefaultMaxLen is the approximate length the stream is trimmed to on
	// every XADD (MAXLEN ~): about a million events of history.
	DefaultMaxLen = 1_000_000
	// DefaultDialTimeout bounds connecting, so New fails fast.
	DefaultDialTimeout = 2 * time.Second
	// DefaultCommandTimeout bounds reading and writing one reply.
	DefaultCommandTimeout = 3 * time.Second
	// DefaultBlock is how long one blocking read waits at most; Close does
	// not wait for it (it closes the connection).
	DefaultBlock = 5 * time.Second
	// DefaultClaimIdle is how long an entry must stay unacknowledged before
	// another member takes it over.
	DefaultClaimIdle = 30 * time.Second
	// DefaultBatchSize is the largest batch a handler receives (XREADGROUP COUNT).
	DefaultBatchSize = 256
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// redeliveries of a batch whose handler failed, and between reads after
	// a server error.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
)

// Options configures a Transport. Only Addr (or Client) is required.
type Options struct {
	// Client is an existing client to use (a node shares one between its
	// journal, transport and membership); the transport never closes it.
	// DialTimeout, CommandTimeout and PoolSize are then the client's
	// business. Without a Client, New makes one for Addr.
	Client goredis.UniversalClient
	// Addr is host:port, or a redis:// or rediss:// URL (with user,
	// password, database; see goredis.ParseURL). With a Client it only
	// names the server in messages (default: the client's address).
	Addr string
	// Key is the stream key (default DefaultKey).
	Key string
	// MaxLen trims the stream to about this many entries on every XADD
	// (default DefaultMaxLen); negative disables trimming.
	MaxLen int64
	// DialTimeout bounds connecting (default DefaultDialTimeout).
	DialTimeout time.Duration
	// CommandTimeout bounds reading or writing one reply (default
	// DefaultCommandTimeout).
	CommandTimeout time.Duration
	// PoolSize is the connection pool size (default go-redis's: 10 per CPU).
	PoolSize int
	// Block is the longest single blocking read (default DefaultBlock).
	Block time.Duration
	// Consumer is the consumer name of this process in every group (default
	// "<hostname>-<pid>-<random>"). A stable name (a node id) lets a
	// restarted process pick up its own pending entries at once instead of
	// after ClaimIdle.
	Consumer string
	// ClaimIdle is the idle time after which an unacknowledged entry is
	// taken over by another member (default DefaultClaimIdle).
	ClaimIdle time.Duration
	// ClaimInterval is how often a member looks for such entries (default
	// ClaimIdle/2).
	ClaimInterval time.Duration
	// BatchSize is the largest batch a handler receives (default DefaultBatchSize).
	BatchSize int
	// RetryMin and RetryMax bound redelivery and reconnection backoff.
	RetryMin, RetryMax time.Duration
	// Logger receives warnings; default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Addr == "" && o.Client != nil {
		o.Addr = redisconn.ServerAddr(o.Client)
	}
	if o.Key == "" {
		o.Key = DefaultKey
	}
	if o.MaxLen == 0 {
		o.MaxLen = DefaultMaxLen
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Block == 0 {
		o.Block = DefaultBlock
	}
	if o.Consumer == "" {
		o.Consumer = defaultConsumer()
	}
	if o.ClaimIdle == 0 {
		o.ClaimIdle = DefaultClaimIdle
	}
	if o.ClaimInterval == 0 {
		o.ClaimInterval = o.ClaimIdle / 2
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first option that is out of range (after defaults).
func (o Options) Validate() error {
	switch {
	case o.Addr == "" && o.Client == nil:
		return errors.New("redis transport: Addr is empty: want host:port or a redis:// URL")
	case o.DialTimeout < 0 || o.CommandTimeout < 0:
		return fmt.Errorf("redis transport: DialTimeout %v, CommandTimeout %v: must not be negative", o.DialTimeout, o.CommandTimeout)
	case o.Block < time.Millisecond:
		return fmt.Errorf("redis transport: Block %v: must be at least 1ms", o.Block)
	case o.ClaimIdle < time.Millisecond || o.ClaimInterval < time.Millisecond:
		return fmt.Errorf("redis transport: ClaimIdle %v, ClaimInterval %v: must be at least 1ms", o.ClaimIdle, o.ClaimInterval)
	case o.BatchSize < 1:
		return fmt.Errorf("redis transport: BatchSize %d: must be at least 1", o.BatchSize)
	case o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("redis transport: RetryMin %v, RetryMax %v: need 0 < RetryMin <= RetryMax", o.RetryMin, o.RetryMax)
	case o.PoolSize < 0:
		return fmt.Errorf("redis transport: PoolSize %d: must not be negative", o.PoolSize)
	}
	return nil
}

func defaultConsumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Transport publishes to and subscribes on one Redis stream. It is safe for
// concurrent use; Close stops every subscription and closes the connections
// it opened.
type Transport struct {
	opts      Options
	addr      string // for messages (never the password)
	client    goredis.UniversalClient
	ownClient bool // made by New (no Options.Client): Close closes it
	// readOpts are the options of a subscription's own reader, nil when
	// blocking reads go through client (see newReader).
	readOpts *goredis.Options

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	slots  map[string]map[int]bool // group -> consumer slots in use
}

var _ transport.Transport = (*Transport)(nil)

// New checks that the Redis server answers (through opts.Client, or a
// client of its own for opts.Addr). An unreachable server fails within about
// DialTimeout with an error that matches transport.ErrUnavailable and names
// the address.
func New(ctx context.Context, opts Options) (*Transport, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		opts:   opts,
		addr:   redact.URL(opts.Addr),
		client: opts.Client,
		subs:   make(map[*subscription]struct{}),
		slots:  make(map[string]map[int]bool),
	}
	if t.client == nil {
		c, err := redisconn.New(redisconn.Options{
			Addr:         opts.Addr,
			Name:         "ordersystem-transport",
			DialTimeout:  opts.DialTimeout,
			ReadTimeout:  opts.CommandTimeout,
			WriteTimeout: opts.CommandTimeout,
			PoolSize:     opts.PoolSize,
		})
		if err != nil {
			return nil, fmt.Errorf("redis transport: Addr: %w", err)
		}
		t.client, t.ownClient = c, true
	}
	if c, ok := t.client.(interface{ Options() *goredis.Options }); ok {
		ro := *c.Options()
		ro.PoolSize, ro.MinIdleConns, ro.MaxRetries, ro.PipelinePoolSize = 1, 0, -1, -1
		t.readOpts = &ro
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+opts.CommandTimeout)
	defer cancel()
	if err := t.client.Ping(pctx).Err(); err != nil {
		if t.ownClient {
			_ = t.client.Close()
		}
		return nil, fmt.Errorf("redis transport: server at %s: %w", t.addr, transport.Unavailable("ping", err))
	}
	return t, nil
}

// sharedBlock bounds one blocking read that goes through the transport's
// client (no reader of its own): Close waits for it to end.
const sharedBlock = 500 * time.Millisecond

// newReader returns the client a subscription's blocking reads run on, and
// whether Close must close it. A blocking XREAD cannot be cut short by its
// context, only by closing its connection, so each subscription gets a
// one-connection client of its own, made with the options of the
// transport's client. Clients of another kind (a cluster client) have no
// such options: their blocking reads go through the client itself, in
// slices of at most sharedBlock.
func (t *Transport) newReader() (goredis.UniversalClient, bool) {
	if t.readOpts == nil {
		return t.client, false
	}
	ro := *t.readOpts
	return goredis.NewClient(&ro), true
}

// Name implements transport.Transport; it is "redis".
func (t *Transport) Name() string { return "redis" }

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Ping implements transport.Transport.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	if err := t.client.Ping(ctx).Err(); err != nil {
		return t.wrap("ping", err)
	}
	return nil
}

// wrap turns a client error into the transport's: ErrClosed after Close, a
// plain error for a server reply that retrying cannot fix (WRONGTYPE, ...;
// the outbox dead-letters what is refused so), ErrUnavailable for what
// redisconn.Transient calls "retry later" (network, timeouts, a server that
// is loading, read-only or out of memory, ...).
func (t *Transport) wrap(op string, err error) error {
	if t.isClosed() {
		return fmt.Errorf("redis %s: %w", op, transport.ErrClosed)
	}
	if !redisconn.Transient(err) {
		return fmt.Errorf("redis %s on %s key %q: %w", op, t.addr, t.opts.Key, err)
	}
	if cc, ok := t.client.(*goredis.ClusterClient); ok {
		// go-redis 9.23 does not reload its slot map when the primary it
		// knows cannot be dialed: ask it to, so a promoted replica is found.
		cc.ReloadState(context.Background())
	}
	return transport.Unavailable(fmt.Sprintf("redis %s on %s", op, t.addr), err)
}

// Publish implements transport.Transport with one pipeline of XADD commands.
func (t *Transport) Publish(ctx context.Context, batch []transport.Message) error {
	if err := transport.ValidateBatch(batch); err != nil {
		return err
	}
	if t.isClosed() {
		return transport.ErrClosed
	}
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return transport.Unavailable("redis publish", err)
	}
	pipe := t.client.Pipeline()
	for _, m := range batch {
		pipe.XAdd(ctx, t.xaddArgs(m))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return t.wrap(fmt.Sprintf("publish of %d messages (XADD)", len(batch)), err)
	}
	return nil
}

func (t *Transport) xaddArgs(m transport.Message) *goredis.XAddArgs {
	a := &goredis.XAddArgs{
		Stream: t.opts.Key,
		ID:     "*",
		Values: []any{
			"eventId", m.ID(),
			"type", m.Type,
			"payload", m.Payload,
			"orderId", m.OrderID,
			"version", strconv.FormatUint(m.Version, 10),
		},
	}
	if t.opts.MaxLen > 0 {
		a.MaxLen, a.Approx = t.opts.MaxLen, true
	}
	return a
}

// Subscribe implements transport.Transport. It creates the group (at "$")
// or, for an ephemeral subscription, notes the stream's last entry before
// returning, so nothing published after it returns is missed. ctx bounds
// that setup only; the subscription runs until it or the Transport is closed.
func (t *Transport) Subscribe(ctx context.Context, opts transport.SubscribeOptions, h transport.Handler) (transport.Subscription, error) {
	if err := transport.ValidateGroup(opts.Group); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("redis subscribe: nil handler: %w", transport.ErrInvalidArgument)
	}
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, transport.Unavailable("redis subscribe", err)
	}
	s := &subscription{t: t, h: h, group: opts.Group, done: make(chan struct{})}
	if opts.Group != "" {
		if err := t.createGroup(ctx, opts.Group, "$"); err != nil {
			return nil, err
		}
	} else {
		last, err := t.client.XRevRangeN(ctx, t.opts.Key, "+", "-", 1).Result()
		if err != nil {
			return nil, t.wrap("subscribe (XREVRANGE)", err)
		}
		s.lastID = "0-0"
		if len(last) > 0 {
			s.lastID = last[0].ID
		}
	}
	s.read, s.ownRead = t.newReader()

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		s.closeReader()
		return nil, transport.ErrClosed
	}
	if opts.Group != "" {
		s.slot = t.takeSlot(opts.Group)
		s.consumer = t.opts.Consumer
		if s.slot > 1 {
			s.consumer += "-" + strconv.Itoa(s.slot)
		}
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(runCtx)
	return s, nil
}

// createGroup creates group at start unless it exists.
func (t *Transport) createGroup(ctx context.Context, group, start string) error {
	err := t.client.XGroupCreateMkStream(ctx, t.opts.Key, group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return t.wrap(fmt.Sprintf("create group %q (XGROUP CREATE)", group), err)
	}
	return nil
}

// takeSlot returns the lowest consumer slot of group not in use. Call with t.mu held.
func (t *Transport) takeSlot(group string) int {
	used := t.slots[group]
	if used == nil {
		used = make(map[int]bool)
		t.slots[group] = used
	}
	n := 1
	for used[n] {
		n++
	}
	used[n] = true
	return n
}

// Close implements transport.Transport: it stops every subscription (waiting
// for running handler calls) and closes the client if New made it (a client
// from Options.Client stays open). Idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	if !t.ownClient {
		return nil
	}
	return t.client.Close()
}
