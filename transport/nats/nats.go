package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/transport"
)

// Header names carried by every message besides Nats-Msg-Id.
const (
	HeaderOrderID = "Ordersystem-Order-Id"
	HeaderVersion = "Ordersystem-Version"
	HeaderType    = "Ordersystem-Type"
)

// Defaults for Options.
const (
	DefaultStream        = "ORDER_EVENTS"
	DefaultSubjectPrefix = "orders.events"
	// DefaultDuplicateWindow is how long the stream remembers event ids
	// to drop repeated publishes.
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultMaxMsgs bounds the stream: the oldest events are discarded
	// beyond about a million.
	DefaultMaxMsgs = 1_000_000
	// DefaultConnectTimeout bounds connecting, so New fails fast.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultReconnectWait is the first pause between reconnection
	// attempts (it doubles up to natsconn.DefaultReconnectMax).
	DefaultReconnectWait = natsconn.DefaultReconnectWait
	// DefaultRequestTimeout bounds JetStream API requests (stream and
	// consumer management, Ping).
	DefaultRequestTimeout = 5 * time.Second
	// DefaultAckTimeout bounds the wait for one publish acknowledgement.
	DefaultAckTimeout = 5 * time.Second
	// DefaultMaxPending is how many publishes may await their
	// acknowledgement at once, over all concurrent Publish calls.
	DefaultMaxPending = 8192
	// DefaultAckWait is how long a group member may hold a message before
	// the server redelivers it.
	DefaultAckWait = 30 * time.Second
	// DefaultMaxAckPending bounds the unacknowledged messages of a group.
	DefaultMaxAckPending = 4096
	// DefaultBatchSize is the largest batch a handler receives.
	DefaultBatchSize = 256
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// redeliveries of a batch whose handler failed.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
)

// Options configures a Transport. Only URL (or Conn) is required.
type Options struct {
	// Conn is an existing connection to use, made by natsconn.Connect (a
	// node shares one between its journal, transport and membership); the
	// transport never closes it. URL then only names the server in
	// messages (default: the server Conn is connected to), and
	// ConnectTimeout, ReconnectWait and Name are unused. Without a Conn,
	// New connects to URL.
	Conn *natsgo.Conn
	// URL is the server URL, or several separated by commas.
	URL string
	// Stream is the JetStream stream name (default DefaultStream).
	Stream string
	// SubjectPrefix is the subject prefix (default DefaultSubjectPrefix);
	// the stream holds "<SubjectPrefix>.*". Two streams cannot share
	// subjects, so a second stream needs a second prefix.
	SubjectPrefix string
	// DuplicateWindow is the stream's duplicate window (default
	// DefaultDuplicateWindow).
	DuplicateWindow time.Duration
	// MaxMsgs bounds the stream (default DefaultMaxMsgs); negative means
	// no bound.
	MaxMsgs int64
	// Replicas is the stream's replica count (default 1).
	Replicas int
	// ConnectTimeout, ReconnectWait, RequestTimeout and AckTimeout: see
	// the defaults of the same names.
	ConnectTimeout, ReconnectWait, RequestTimeout, AckTimeout time.Duration
	// MaxPending bounds publishes awaiting acknowledgement (default
	// DefaultMaxPending); a Publish beyond it waits for room.
	MaxPending int
	// AckWait and MaxAckPending configure every group's consumer.
	AckWait       time.Duration
	MaxAckPending int
	// BatchSize is the largest batch a handler receives (default DefaultBatchSize).
	BatchSize int
	// RetryMin and RetryMax bound redelivery backoff.
	RetryMin, RetryMax time.Duration
	// Name is the connection name the server shows (default
	// "ordersystem-transport").
	Name string
	// Logger receives warnings; default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.URL == "" && o.Conn != nil {
		o.URL = o.Conn.ConnectedUrlRedacted()
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultSubjectPrefix
	}
	set(&o.DuplicateWindow, DefaultDuplicateWindow)
	if o.MaxMsgs == 0 {
		o.MaxMsgs = DefaultMaxMsgs
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	set(&o.ConnectTimeout, DefaultConnectTimeout)
	set(&o.ReconnectWait, DefaultReconnectWait)
	set(&o.RequestTimeout, DefaultRequestTimeout)
	set(&o.AckTimeout, DefaultAckTimeout)
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	set(&o.AckWait, DefaultAckWait)
	if o.MaxAckPending == 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	set(&o.RetryMin, DefaultRetryMin)
	set(&o.RetryMax, DefaultRetryMax)
	if o.Name == "" {
		o.Name = "ordersystem-transport"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first option that is out of range (after defaults).
func (o Options) Validate() error {
	switch {
	case o.URL == "" && o.Conn == nil:
		return errors.New("nats transport: URL is empty: want nats://host:port")
	case strings.ContainsAny(o.Stream, ". *>/\\\t\r\n"):
		return fmt.Errorf("nats transport: Stream %q: must not contain '.', '*', '>', slashes or spaces", o.Stream)
	case !validPrefix(o.SubjectPrefix):
		return fmt.Errorf("nats transport: SubjectPrefix %q: want dot-separated tokens without wildcards or spaces", o.SubjectPrefix)
	case o.DuplicateWindow < 0 || o.ConnectTimeout < 0 || o.ReconnectWait < 0 || o.RequestTimeout < 0 || o.AckTimeout < 0:
		return errors.New("nats transport: DuplicateWindow, ConnectTimeout, ReconnectWait, RequestTimeout and AckTimeout must not be negative")
	case o.AckWait < time.Millisecond:
		return fmt.Errorf("nats transport: AckWait %v: must be at least 1ms", o.AckWait)
	case o.Replicas < 1 || o.MaxPending < 1 || o.MaxAckPending < 1 || o.BatchSize < 1:
		return fmt.Errorf("nats transport: Replicas %d, MaxPending %d, MaxAckPending %d, BatchSize %d: each must be at least 1",
			o.Replicas, o.MaxPending, o.MaxAckPending, o.BatchSize)
	case o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("nats transport: RetryMin %v, RetryMax %v: need 0 < RetryMin <= RetryMax", o.RetryMin, o.RetryMax)
	}
	return nil
}

func validPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}

// Transport publishes to and subscribes on one JetStream stream. It is safe
// for concurrent use; Close stops every subscription and closes the
// connection if New opened it.
type Transport struct {
	opts    Options
	addr    string // URL without credentials, for messages
	nc      *natsgo.Conn
	ownConn bool // connected by New (no Options.Conn): Close closes it
	js      jetstream.JetStream

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

var _ transport.Transport = (*Transport)(nil)

// setupBudget bounds New's retries of creating the stream.
const setupBudget = 30 * time.Second

// New connects to opts.URL (unless opts.Conn is set) and creates or updates
// the stream, retrying for up to 30 s while the servers are not ready. An
// unreachable server fails within about ConnectTimeout with an error that
// matches transport.ErrUnavailable and names the address; after that the
// connection reconnects by itself forever.

func New(ctx context.Context, opts Options) (*Transport, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{opts: opts, addr: redact.URL(opts.URL), nc: opts.Conn, subs: make(map[*subscription]struct{})}
	if t.nc == nil {
		nc, err := natsconn.Connect(ctx, natsconn.Options{
			URL:           opts.URL,
			Name:          opts.Name,
			Timeout:       opts.ConnectTimeout,
			ReconnectWait: opts.ReconnectWait,
			Logger:        opts.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("nats transport: server at %s: %w", t.addr, transport.Unavailable("connect", err))
		}
		t.nc, t.ownConn = nc, true
	}
	fail := func(err error) (*Transport, error) {
		if t.ownConn {
			t.nc.Close()
		}
		return nil, err
	}
	var err error
	t.js, err = jetstream.New(t.nc,
		jetstream.WithPublishAsyncMaxPending(opts.MaxPending),
		jetstream.WithPublishAsyncTimeout(opts.AckTimeout),
		jetstream.WithDefaultTimeout(opts.RequestTimeout),
	)
	if err != nil {
		return fail(fmt.Errorf("nats transport: %w", err))
	}
	maxMsgs := opts.MaxMsgs
	if maxMsgs < 0 {
		maxMsgs = -1
	}
	cfg := jetstream.StreamConfig{
		Name:        opts.Stream,
		Description: "OrderSystem order events",
		Subjects:    []string{opts.SubjectPrefix + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     maxMsgs,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  opts.DuplicateWindow,
	}
	// A JetStream cluster that is electing leaders, or busy creating the
	// same R3 stream for the other nodes starting with this one, times out
	// or answers that it is not ready: try again, with backoff, for at most
	// setupBudget (and never past ctx).
	deadline := time.Now().Add(setupBudget)
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, opts.RequestTimeout)
		_, err = t.js.CreateOrUpdateStream(sctx, cfg)
		cancel()
		if err == nil {
			break
		}
		werr := t.wrap(fmt.Sprintf("create or update stream %s", opts.Stream), err)
		wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}.Delay(attempt)
		if !errors.Is(werr, transport.ErrUnavailable) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return fail(werr)
		}
		opts.Logger.Warn("nats transport setup failed; retrying", slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", werr))
		time.Sleep(wait)
	}
	return t, nil
}

// Name implements transport.Transport; it is "nats".
func (t *Transport) Name() string { return "nats" }

// subject returns the subject events of type typ are published on.
func (t *Transport) subject(typ string) string { return t.opts.SubjectPrefix + "." + typ }

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Ping implements transport.Transport: it fails at once while the
// connection is down (reconnecting), and otherwise asks JetStream for the
// stream's info, so it fails when the server, JetStream or the stream is
// missing.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	if !t.nc.IsConnected() {
		return transport.Unavailable("nats ping on "+t.addr, fmt.Errorf("connection %s", strings.ToLower(t.nc.Status().String())))
	}
	if _, err := t.js.Stream(ctx, t.opts.Stream); err != nil {
		return t.wrap("ping (stream info)", err)
	}
	return nil
}

// wrap turns a client error into the transport's: ErrClosed after Close, a
// plain error for a JetStream API error retrying cannot fix (bad
// configuration), ErrUnavailable for everything else.
func (t *Transport) wrap(op string, err error) error {
	if t.isClosed() {
		return fmt.Errorf("nats %s: %w", op, transport.ErrClosed)
	}
	var jerr jetstream.JetStreamError
	if errors.As(err, &jerr) && jerr.APIError() != nil && !natsconn.Transient(err) {
		return fmt.Errorf("nats %s on %s: %w", op, t.addr, err)
	}
	return transport.Unavailable(fmt.Sprintf("nats %s on %s", op, t.addr), err)
}

// Publish implements transport.Transport: an asynchronous publish per
// message, then a wait for every acknowledgement.
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
		return transport.Unavailable("nats publish", err)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, m := range batch {
		f, err := t.js.PublishMsgAsync(t.natsMsg(m),
			jetstream.WithExpectStream(t.opts.Stream), jetstream.WithStallWait(t.opts.AckTimeout))
		if err != nil {
			return t.wrap(fmt.Sprintf("publish of %s", m.ID()), err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return t.wrap(fmt.Sprintf("publish of %s (%d of %d)", batch[i].ID(), i+1, len(batch)), err)
		case <-ctx.Done():
			return transport.Unavailable(fmt.Sprintf("nats publish: waiting for %d acknowledgements", len(futures)-i), ctx.Err())
		}
	}
	return nil
}

func (t *Transport) natsMsg(m transport.Message) *natsgo.Msg {
	return &natsgo.Msg{
		Subject: t.subject(m.Type),
		Data:    m.Payload,
		Header: natsgo.Header{
			jetstream.MsgIDHeader: {m.ID()},
			HeaderOrderID:         {m.OrderID},
			HeaderVersion:         {strconv.FormatUint(m.Version, 10)},
			HeaderType:            {m.Type},
		},
	}
}

// Subscribe implements transport.Transport. The consumer (durable for a
// group, a private one for an ephemeral subscription) exists before Subscribe
// returns, so nothing published afterwards is missed. ctx bounds that setup
// only; the subscription runs until it or the Transport is closed.
func (t *Transport) Subscribe(ctx context.Context, opts transport.SubscribeOptions, h transport.Handler) (transport.Subscription, error) {
	if err := transport.ValidateGroup(opts.Group); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("nats subscribe: nil handler: %w", transport.ErrInvalidArgument)
	}
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, transport.Unavailable("nats subscribe", err)
	}
	s := &subscription{t: t, h: h, group: opts.Group, done: make(chan struct{})}
	var err error
	op := fmt.Sprintf("subscribe (group %q): create consumer", opts.Group)
	if opts.Group != "" {
		cfg := t.groupConfig(opts.Group)
		s.cons, err = t.createConsumer(ctx, op, func(actx context.Context) (jetstream.Consumer, error) {
			return t.js.CreateOrUpdateConsumer(actx, t.opts.Stream, cfg)
		})
	} else {
		s.ephName = ephemeralName()
		cfg := t.ephemeralConfig(s.ephName, 0)
		s.cons, err = t.createConsumer(ctx, op, func(actx context.Context) (jetstream.Consumer, error) {
			return t.js.CreateConsumer(actx, t.opts.Stream, cfg)
		})
	}
	if err != nil {
		return nil, err
	}
	if info := s.cons.CachedInfo(); info != nil {
		s.lastSeq = info.Delivered.Stream
	}
	if s.it, err = t.pull(ctx, s.cons); err != nil {
		s.deleteEphemeral()
		return nil, t.wrap("subscribe: start pulling", err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		s.it.Stop()
		s.deleteEphemeral()
		return nil, transport.ErrClosed
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(runCtx)
	return s, nil
}

// createConsumer makes a consumer with create, in attempts of at most
// RequestTimeout each, until one succeeds, one fails for good (a refused
// configuration), or ctx ends; between attempts it backs off. A request
// whose reply is lost (sent just before the connection to a server dropped,
// or to a cluster still electing its meta leader) would otherwise hold the
// whole of ctx: nats.go sends a request once and waits for ctx's deadline.
// Sending it again is safe: the configuration is the same, and the server
// answers a create of a consumer that exists with that configuration with
// the consumer.
func (t *Transport) createConsumer(ctx context.Context, op string, create func(context.Context) (jetstream.Consumer, error)) (jetstream.Consumer, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
		cons, err := create(actx)
		cancel()
		if err == nil {
			return cons, nil
		}
		werr := t.wrap(op, err)
		if !errors.Is(werr, transport.ErrUnavailable) || ctx.Err() != nil {
			return nil, werr
		}
		t.opts.Logger.Warn("nats transport: create consumer failed; retrying", slog.Int("attempt", attempt), slog.Any("error", werr))
		wait := backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}.Delay(attempt)
		select {
		case <-ctx.Done():
			return nil, werr
		case <-time.After(wait):
		}
	}
}

// pullExpiry bounds one pull request of a subscription. A pull that no
// server answers (sent while a replicated consumer had no leader yet, or to
// a leader that died) is sent again after it, and heartbeats every half of
// it tell a live consumer from a dead one: nats.go's default of 30 s left a
// new R3 subscription without messages for 30 s when its first pull was
// lost.
const pullExpiry = 5 * time.Second

// pull waits (within ctx, at most the request timeout) until a replicated
// consumer has a leader, so that its first pull is not lost, and starts
// pulling its messages (past the wait it starts anyway: a lost pull is sent
// again after pullExpiry).
func (t *Transport) pull(ctx context.Context, cons jetstream.Consumer) (jetstream.MessagesContext, error) {
	if t.opts.Replicas > 1 {
		wctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
		for wctx.Err() == nil {
			info, err := cons.Info(wctx)
			if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
				break
			}
			select {
			case <-wctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return cons.Messages(jetstream.PullMaxMessages(t.opts.BatchSize), jetstream.PullExpiry(pullExpiry))
}

// ephemeralConfig is the consumer of an ephemeral subscription: no acks,
// in memory, as many replicas as the stream (so that it outlives the loss
// of one server: a single-replica consumer lives on one server, and a new
// one may be placed on a server that is down but not yet known to be), and
// removed by the server after ephemeralInactive without a pull, should its
// subscriber die. startSeq 0 delivers what is published from now on, else
// from that stream sequence.
func (t *Transport) ephemeralConfig(name string, startSeq uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:           name,
		Description:       "OrderSystem transport ephemeral subscription",
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          t.opts.Replicas,
		InactiveThreshold: ephemeralInactive,
	}
	if startSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, startSeq
	}
	return cfg
}

// ephemeralInactive is how long the server keeps an ephemeral
// subscription's consumer that nobody pulls from.
const ephemeralInactive = 2 * time.Minute

// ephemeralName is a fresh consumer name for an ephemeral subscription.
func ephemeralName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ordersystem_eph_" + hex.EncodeToString(b[:])
}

func (t *Transport) groupConfig(group string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       group,
		Description:   "OrderSystem transport group " + group,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.opts.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: t.opts.MaxAckPending,
	}
}

// Close implements transport.Transport: it stops every subscription (waiting
// for running handler calls), flushes acknowledgements and closes the
// connection if New opened it (a connection from Options.Conn stays open).
// Idempotent.
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
	if t.nc.IsConnected() {
		_ = t.nc.FlushTimeout(time.Second)
	}
	if t.ownConn {
		t.nc.Close()
	}
	return nil
}
