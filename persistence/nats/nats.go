package nats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/persistence"
)

// Backend implements persistence.Backend on NATS JetStream. It is safe for
// concurrent use. Create it with New and release it with Close.
type Backend struct {
	opts       Options
	addr       string // server URL(s) without credentials
	durability string
	profile    string

	nc      *natsgo.Conn
	ownConn bool               // connected by New (no Options.Conn): Close closes it
	status  chan natsgo.Status // the connection's drops (see watch)
	watched chan struct{}      // closed when watch's goroutine returns
	js      jetstream.JetStream

	// streams[p] is partition p's stream; logs[p] its Log.
	streams []jetstream.Stream
	logs    []*partitionLog

	meta, checkpoints, snapshots jetstream.KeyValue
	rmsnap                       jetstream.KeyValue // read-model snapshots (rmsnapshot.go)
	journalID                    string             // see JournalIdentity
	rmsnapChunk                  int                // read-model snapshot chunk size when set (tests)

	maxPayload int64
	cache      *streamCache
	inflight   inflight

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ persistence.Backend = (*Backend)(nil)

// readAllWindow is how many stream sequences ReadAll gets in parallel.
const readAllWindow = 64

// New connects to NATS (unless opts.Conn is set), creates or updates the
// journal stream and the key-value buckets, and returns the backend. When
// the server cannot be reached the error wraps persistence.ErrUnavailable
// and names the URL (without credentials).
func New(ctx context.Context, opts Options) (*Backend, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	b := &Backend{opts: opts, addr: redact.URL(opts.URL), cache: newStreamCache(opts.CacheSize, opts.CacheRecords), nc: opts.Conn}
	if b.nc == nil {
		nc, err := natsconn.Connect(ctx, natsconn.Options{
			URL:       opts.URL,
			Name:      "ordersystem persistence " + opts.Stream,
			CredsFile: opts.CredsFile,
			Timeout:   opts.DialTimeout,
			Logger:    opts.Logger,
		})
		if err != nil {
			if isRefusal(err) {
				// Wrong credentials or a missing creds file: retrying will not help.
				return nil, fmt.Errorf("nats connect to %s: %w", b.addr, err)
			}
			return nil, persistence.Unavailable("nats connect to "+b.addr, err)
		}
		b.nc, b.ownConn = nc, true
	}
	b.watch()
	if err := b.setupWithRetries(ctx); err != nil {
		b.release()
		return nil, err
	}
	return b, nil
}

// setupWithRetries runs setup again while it fails with ErrUnavailable (a
// server not ready, a stream without a leader yet, a create that timed out
// while other nodes created the same streams), with backoff, for at most
// Options.SetupTimeout and never past ctx. Every step of setup is a create
// or update of what is already there, so an attempt resumes where the last
// one stopped.
func (b *Backend) setupWithRetries(ctx context.Context) error {
	deadline := time.Now().Add(b.opts.SetupTimeout)
	for attempt := 1; ; attempt++ {
		err := b.setup(ctx)
		if err == nil || !errors.Is(err, persistence.ErrUnavailable) {
			return err
		}
		wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}.Delay(attempt)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempt, b.opts.SetupTimeout)
		}
		b.opts.Logger.Warn("nats journal setup failed; retrying", slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// watch ends the operations in flight whenever the connection drops (a
// request in flight would otherwise wait for its timeout), until release.
// It listens to the connection's status changes, which any number of users
// of a shared connection may do.
func (b *Backend) watch() {
	b.status = b.nc.StatusChanged(natsgo.RECONNECTING, natsgo.DISCONNECTED, natsgo.CLOSED)
	b.watched = make(chan struct{})
	go func() {
		defer close(b.watched)
		for range b.status {
			b.inflight.cancelAll()
		}
	}()
}

// release stops watching the connection and closes it if New opened it.
func (b *Backend) release() {
	b.nc.RemoveStatusListener(b.status)
	<-b.watched
	if b.ownConn {
		b.nc.Close()
	}
}

// setup creates or updates the stream and the buckets.
func (b *Backend) setup(ctx context.Context) error {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("nats at %s: jetstream: %w", b.addr, err)
	}
	b.js = js
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("nats at %s: JetStream is not enabled (start nats-server with -js): %w", b.addr, err)
		}
		return b.wrap(ctx, "jetstream account info", err)
	}
	o := b.opts
	kvcfg := func(bucket, what string) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: bucket, Description: "OrderSystem " + what, History: 1, Storage: o.Storage, Replicas: o.Replicas}
	}
	if b.meta, err = js.CreateOrUpdateKeyValue(ctx, kvcfg(o.metaBucket(), "journal layout (partition count)")); err != nil {
		return b.wrapSetup(ctx, "create bucket "+o.metaBucket(), err)
	}
	n, err := b.resolvePartitions(ctx)
	if err != nil {
		return err
	}
	if err := b.createPartitionStreams(ctx, n); err != nil {
		return err
	}
	if b.checkpoints, err = js.CreateOrUpdateKeyValue(ctx, kvcfg(o.checkpointBucket(), "checkpoints")); err != nil {
		return b.wrapSetup(ctx, "create bucket "+o.checkpointBucket(), err)
	}
	if b.snapshots, err = js.CreateOrUpdateKeyValue(ctx, kvcfg(o.snapshotBucket(), "snapshots")); err != nil {
		return b.wrapSetup(ctx, "create bucket "+o.snapshotBucket(), err)
	}
	if b.rmsnap, err = js.CreateOrUpdateKeyValue(ctx, kvcfg(o.rmsnapBucket(), "read-model snapshots")); err != nil {
		return b.wrapSetup(ctx, "create bucket "+o.rmsnapBucket(), err)
	}
	if b.journalID, err = b.journalIdentity(ctx); err != nil {
		return err
	}
	b.maxPayload = b.nc.MaxPayload()
	b.durability, b.profile = b.describeDurability(b.streams[0].CachedInfo())
	return nil
}

// opCtx bounds an operation by Options.Timeout unless ctx ends earlier,
// and ends it when the connection drops: a request in flight then would
// otherwise wait for a reply that never comes until the timeout.
func (b *Backend) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	cancelTimeout := func() {}
	if b.opts.Timeout > 0 {
		ctx, cancelTimeout = context.WithTimeout(ctx, b.opts.Timeout)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	id := b.inflight.add(cancel)
	return ctx, func() {
		b.inflight.remove(id)
		cancel(nil)
		cancelTimeout()
	}
}

// errDisconnected ends operations in flight when the connection drops.
var errDisconnected = errors.New("connection to the server lost")

// inflight holds the cancel functions of the operations in flight.
type inflight struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]context.CancelCauseFunc
}

func (f *inflight) add(cancel context.CancelCauseFunc) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[uint64]context.CancelCauseFunc)
	}
	f.next++
	f.m[f.next] = cancel
	return f.next
}

func (f *inflight) remove(id uint64) {
	f.mu.Lock()
	delete(f.m, id)
	f.mu.Unlock()
}

func (f *inflight) cancelAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cancel := range f.m {
		cancel(errDisconnected)
	}
}

// begin is the common entry check of every operation.
func (b *Backend) begin(ctx context.Context, op string) error {
	if b.closed.Load() {
		return persistence.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return persistence.Unavailable("nats "+op, err)
	}
	return nil
}

// wrap classifies an error from nats.go: after Close ErrClosed; a payload
// over the server's limit ErrInvalidArgument; a JetStream API error that is
// not about availability is returned as is; everything else (timeouts, no
// responders, disconnects, a server that is not ready) wraps ErrUnavailable.
func (b *Backend) wrap(ctx context.Context, op string, err error) error {
	if b.closed.Load() {
		return persistence.ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", err, cause)
		}
	}
	if errors.Is(err, natsgo.ErrMaxPayload) {
		return fmt.Errorf("nats %s: %w: %w", op, persistence.ErrInvalidArgument, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code < 500 && apiErr.Code != 408 && !natsconn.Transient(err) {
		return fmt.Errorf("nats %s at %s: %w", op, b.addr, err)
	}
	return persistence.Unavailable(fmt.Sprintf("nats %s at %s", op, b.addr), err)
}

// unheardWait is the pause before a write nobody answered is sent again.
const unheardWait = 50 * time.Millisecond

// unheard runs write again while it fails because no stream answered
// (jetstream.ErrNoStreamResponse: no server had the stream's subjects),
// until ctx ends. That happens for a moment after a stream is created or
// gets a new leader, until the leader's interest reaches the server this
// connection is on; nats.go's own two retries 250 ms apart do not always
// cover it on a busy cluster. Such a write reached no stream, so sending it
// again cannot store it twice. The last error is returned. It is for the
// key-value writes, which take no publish options; a journal append asks
// nats.go for the same with WithRetryWait and WithRetryAttempts.
func unheard(ctx context.Context, write func() error) error {
	for {
		err := write()
		if !errors.Is(err, jetstream.ErrNoStreamResponse) || sleepCtx(ctx, unheardWait) != nil {
			return err
		}
	}
}

// wrapSetup is wrap for New: a refused configuration is a plain error; a
// cluster that cannot place a replicated stream yet (a server still
// starting or down) is unavailable, so New retries it.
func (b *Backend) wrapSetup(ctx context.Context, op string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && !natsconn.Transient(err) {
		return fmt.Errorf("nats at %s: %s: %w", b.addr, op, err)
	}
	return b.wrap(ctx, op, err)
}

// isRefusal tells a connection the server refused (credentials) or that
// could not be attempted (creds file) from an unreachable server.
func isRefusal(err error) bool {
	return errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) ||
		errors.Is(err, natsgo.ErrAuthRevoked) || errors.Is(err, natsgo.ErrAccountAuthExpired) ||
		errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ---------------------------------------------------------------- backend

// Ping implements persistence.Backend: the connection is up and JetStream
// answers for the stream of partition 0 (its leader, or a new one elected
// after the old one's server was lost).
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.begin(ctx, "ping"); err != nil {
		return err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	if _, err := b.streams[0].Info(ctx); err != nil {
		return b.wrap(ctx, "ping: stream info", err)
	}
	return nil
}

// Describe implements persistence.Backend.
func (b *Backend) Describe() persistence.Description {
	return persistence.Description{Name: "nats", Address: b.addr, Durability: b.durability, Profile: b.profile}
}

func (b *Backend) describeDurability(info *jetstream.StreamInfo) (text, profile string) {
	storage, replicas := b.opts.Storage, b.opts.Replicas
	if info != nil {
		storage, replicas = info.Config.Storage, info.Config.Replicas
	}
	// Durable: file storage on three replicas, so an acknowledged append
	// (on a majority) survives the crash of any one server. The servers'
	// sync_interval cannot be read by a client; the durable profile asks
	// for sync_interval: always (see the README).
	profile = persistence.ProfileDefault
	if storage == jetstream.FileStorage && replicas >= 3 {
		profile = persistence.ProfileDurable
	}
	return b.durabilityText(storage, replicas), profile
}

// durabilityText states what the journal's streams keep.
func (b *Backend) durabilityText(storage jetstream.StorageType, replicas int) string {
	s := fmt.Sprintf("JetStream streams %s (%d partitions), %s storage, %d replica(s)",
		b.opts.partitionStream(0)+".."+b.opts.partitionStream(len(b.streams)-1), len(b.streams), strings.ToLower(storage.String()), replicas)
	if storage == jetstream.MemoryStorage {
		return s + ": memory storage, every event is lost when nats-server restarts"
	}
	s += ": an acknowledged append is in the server's store and survives a nats-server restart or crash; " +
		"the server fsyncs every sync_interval (default 2 min), so a host crash or power loss can lose up to that much " +
		"unless the server runs with sync_interval: always"
	if replicas > 1 {
		s += fmt.Sprintf("; with %d replicas an append is acknowledged once a majority has it, so losing it takes a majority of hosts failing within that interval", replicas)
	} else {
		s += "; with 1 replica a lost disk loses the journal"
	}
	return s
}

// Close implements persistence.Backend: it closes the connection if New
// opened it (a connection from Options.Conn stays open). It is idempotent.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.release()
	})
	return nil
}
