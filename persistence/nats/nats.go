package nats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

	nc      *natsgo.Conn
	ownConn bool               // connected by New (no Options.Conn): Close closes it
	status  chan natsgo.Status // the connection's drops (see watch)
	watched chan struct{}      // closed when watch's goroutine returns
	js      jetstream.JetStream
	stream  jetstream.Stream

	checkpoints, snapshots jetstream.KeyValue

	maxPayload int64
	cache      *streamCache
	inflight   inflight

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ persistence.Backend = (*Backend)(nil)

// loadDirectMax is the longest order (in records) that Load reads with
// next-by-subject gets; longer ones are read through a consumer.
const loadDirectMax = 16

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
	if err := b.setup(ctx); err != nil {
		b.release()
		return nil, err
	}
	return b, nil
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
	b.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        o.Stream,
		Description: "OrderSystem event journal: one subject per order",
		Subjects:    []string{o.SubjectPrefix + ".*"},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardOld,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		AllowDirect: o.Replicas == 1,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		return b.wrapSetup(ctx, "create or update stream "+o.Stream, err)
	}
	kvcfg := func(bucket, what string) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: bucket, Description: "OrderSystem " + what, History: 1, Storage: o.Storage, Replicas: o.Replicas}
	}
	if b.checkpoints, err = js.CreateOrUpdateKeyValue(ctx, kvcfg(o.checkpointBucket(), "checkpoints")); err != nil {
		return b.wrapSetup(ctx, "create bucket "+o.checkpointBucket(), err)
	}
	if b.snapshots, err = js.CreateOrUpdateKeyValue(ctx, kvcfg(o.snapshotBucket(), "snapshots")); err != nil {
		return b.wrapSetup(ctx, "create bucket "+o.snapshotBucket(), err)
	}
	b.maxPayload = b.nc.MaxPayload()
	b.durability = b.describeDurability(b.stream.CachedInfo())
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
	if errors.As(err, &apiErr) && apiErr.Code < 500 && apiErr.Code != 408 {
		return fmt.Errorf("nats %s at %s: %w", op, b.addr, err)
	}
	return persistence.Unavailable(fmt.Sprintf("nats %s at %s", op, b.addr), err)
}

// wrapSetup is wrap for New: a refused configuration is a plain error.
func (b *Backend) wrapSetup(ctx context.Context, op string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
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

func (b *Backend) subject(id string) string { return b.opts.SubjectPrefix + "." + id }

// ---------------------------------------------------------------- journal

// Append implements persistence.Journal.
func (b *Backend) Append(ctx context.Context, streamID string, expected uint64, records []persistence.Record) (uint64, error) {
	if err := persistence.ValidateAppend(streamID, records); err != nil {
		return 0, err
	}
	if err := validID("append", streamID); err != nil {
		return 0, err
	}
	if len(records) > positionScale {
		return 0, fmt.Errorf("append to %q: %d records, at most %d per append: %w", streamID, len(records), positionScale, persistence.ErrInvalidArgument)
	}
	if err := b.begin(ctx, "append"); err != nil {
		return 0, err
	}
	msg := encodeAppend(b.subject(streamID), expected+1, records)
	if size := int64(len(msg.Data)) + 512; size > b.maxPayload {
		return 0, fmt.Errorf("append to %q: %d bytes, over the server's max payload of %d: %w", streamID, len(msg.Data), b.maxPayload, persistence.ErrInvalidArgument)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()

	h, ok := b.cache.head(streamID)
	if !ok || h.version != expected {
		var err error
		if h, err = b.lookupHead(ctx, streamID); err != nil {
			return 0, err
		}
	}
	for attempt := 0; ; attempt++ {
		if h.version != expected {
			return 0, &persistence.ConflictError{StreamID: streamID, Expected: expected, Actual: h.version}
		}
		ack, err := b.js.PublishMsg(ctx, msg,
			jetstream.WithExpectStream(b.opts.Stream),
			jetstream.WithExpectLastSequencePerSubject(h.seq))
		if err == nil {
			b.cache.appended(streamID, expected, h.seq, ack.Sequence, records)
			return expected + uint64(len(records)), nil
		}
		if !isWrongLastSeq(err) || attempt > 0 {
			// A stale cached head needs no care: the server refuses the
			// next append made from it and the head is looked up again.
			return 0, b.wrap(ctx, fmt.Sprintf("append to %q", streamID), err)
		}
		// Someone else wrote (or the cached sequence was stale): look at
		// the real head; if the version still matches, try once more.
		if h, err = b.lookupHead(ctx, streamID); err != nil {
			return 0, err
		}
	}
}

// lookupHead asks the server for the order's last message.
func (b *Backend) lookupHead(ctx context.Context, streamID string) (head, error) {
	m, err := b.stream.GetLastMsgForSubject(ctx, b.subject(streamID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, b.wrap(ctx, fmt.Sprintf("last message of %q", streamID), err)
	}
	first, count, err := msgHead(m.Header)
	if err != nil {
		return head{}, fmt.Errorf("nats: order %q, stream sequence %d: %w", streamID, m.Sequence, err)
	}
	h := head{version: first + uint64(count) - 1, seq: m.Sequence}
	b.cache.putHead(streamID, h)
	return h, nil
}

// Load implements persistence.Journal.
func (b *Backend) Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error) {
	if err := validID("load", streamID); err != nil {
		return nil, err
	}
	if err := b.begin(ctx, "load"); err != nil {
		return nil, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	from = max(from, 1)
	last, err := b.stream.GetLastMsgForSubject(ctx, b.subject(streamID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("load %q", streamID), err)
	}
	lastRecs, err := decodeMsg(streamID, last.Sequence, last.Header, last.Data)
	if err != nil {
		return nil, fmt.Errorf("nats load %q: %w", streamID, err)
	}
	lastVersion := lastRecs[len(lastRecs)-1].Version
	b.cache.putHead(streamID, head{version: lastVersion, seq: last.Sequence})
	switch {
	case from > lastVersion:
		return nil, nil
	case from >= lastRecs[0].Version:
		return cloneRecords(lastRecs[from-lastRecs[0].Version:]), nil
	}
	// Start from the cached prefix, if any, and read what follows it.
	prefix, prefixSeq := b.cache.prefix(streamID)
	if prefixSeq > last.Sequence || uint64(len(prefix)) > lastVersion {
		prefix, prefixSeq = nil, 0 // the stream was recreated
	}
	all := make([]persistence.Record, len(prefix), lastVersion)
	copy(all, prefix)
	if uint64(len(all)) < lastVersion {
		collect := func(seq uint64, h natsgo.Header, data []byte) error {
			rs, err := decodeMsg(streamID, seq, h, data)
			if err != nil {
				return fmt.Errorf("nats load %q: %w", streamID, err)
			}
			all = append(all, rs...)
			return nil
		}
		if lastVersion-uint64(len(all)) <= loadDirectMax {
			err = b.loadDirect(ctx, streamID, prefixSeq+1, last.Sequence, collect)
		} else {
			cfg := jetstream.ConsumerConfig{FilterSubject: b.subject(streamID), DeliverPolicy: jetstream.DeliverAllPolicy}
			if prefixSeq > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, prefixSeq+1
			}
			err = b.consume(ctx, fmt.Sprintf("load %q", streamID), cfg, last.Sequence,
				func(seq uint64, _ string, h natsgo.Header, data []byte) (bool, error) {
					return true, collect(seq, h, data)
				})
		}
		if err != nil {
			return nil, err
		}
	}
	for i, r := range all {
		if r.Version != uint64(i)+1 {
			return nil, fmt.Errorf("nats load %q: record %d has version %d: the journal has a gap", streamID, i, r.Version)
		}
	}
	if uint64(len(all)) != lastVersion {
		return nil, fmt.Errorf("nats load %q: read %d records, the last message says %d", streamID, len(all), lastVersion)
	}
	b.cache.loaded(streamID, all, last.Sequence)
	return cloneRecords(all[from-1:]), nil
}

// cloneRecords copies records and their data, so that callers never share
// memory with the cache.
func cloneRecords(rs []persistence.Record) []persistence.Record {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Data = slices.Clone(out[i].Data)
	}
	return out
}

// loadDirect walks the order's messages from sequence start up to lastSeq
// with next-by-subject gets, one round trip per message.
func (b *Backend) loadDirect(ctx context.Context, streamID string, start, lastSeq uint64, collect func(uint64, natsgo.Header, []byte) error) error {
	subj := b.subject(streamID)
	for seq := start; seq <= lastSeq; {
		m, err := b.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return b.wrap(ctx, fmt.Sprintf("load %q", streamID), err)
		}
		if m.Sequence > lastSeq {
			return nil
		}
		if err := collect(m.Sequence, m.Header, m.Data); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
	return nil
}

// consume reads messages through an ephemeral consumer (no acks, memory
// state, deleted afterwards) made from cfg, calling fn for each message up
// to lastSeq, until fn says it has enough or lastSeq was reached.
func (b *Backend) consume(ctx context.Context, op string, cfg jetstream.ConsumerConfig, lastSeq uint64, fn func(seq uint64, subject string, h natsgo.Header, data []byte) (more bool, err error)) error {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	cfg.InactiveThreshold = 30 * time.Second
	cons, err := b.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return b.wrap(ctx, op+": create consumer", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = b.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	for {
		batch, err := cons.FetchNoWait(consumeBatch)
		if err != nil {
			return b.wrap(ctx, op+": fetch", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("nats %s: %w", op, err)
			}
			seq := meta.Sequence.Stream
			if seq > lastSeq {
				continue
			}
			more, err := fn(seq, m.Subject(), m.Headers(), m.Data())
			if err != nil {
				return err
			}
			if !more || seq == lastSeq {
				// The rest of the batch goes with the consumer (its
				// channel is buffered for the whole batch).
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return b.wrap(ctx, op+": fetch", err)
		}
		if got == 0 {
			if err := ctx.Err(); err != nil {
				return b.wrap(ctx, op, err)
			}
			return fmt.Errorf("nats %s: the consumer delivered nothing before stream sequence %d", op, lastSeq)
		}
	}
}

// consumeBatch is the size of one consumer fetch.
const consumeBatch = 500

// ReadAll implements persistence.Journal. A message on a journal subject
// that is not a journal message (no valid headers, a truncated envelope)
// or a message outside the journal's subjects holds no record: it ends the
// read before it, or, when it is the first message read, is reported as a
// *persistence.CorruptRecordError whose Position is seq*1000 and Next
// seq*1000+999, the last position the message could hold (a read after it
// starts at the next sequence).
func (b *Backend) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	if err := b.begin(ctx, "read all"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return nil, b.wrap(ctx, "read all: stream info", err)
	}
	lastSeq := info.State.LastSeq
	seq := max(firstSeqAfter(after), 1)
	if seq > lastSeq {
		return nil, nil
	}
	out := make([]persistence.Record, 0, min(limit, 1024))
	var corrupt *persistence.CorruptRecordError
	// add decodes one message and keeps its records after the position;
	// it reports whether more are wanted.
	add := func(seq uint64, subject string, h natsgo.Header, data []byte) (bool, error) {
		if len(out) >= limit {
			return false, nil // fetched ahead; not wanted (and not decoded)
		}
		rs, err := b.decodeLogMsg(seq, subject, h, data)
		if err != nil {
			if len(out) == 0 {
				corrupt = &persistence.CorruptRecordError{Position: seq * positionScale, Next: seq*positionScale + positionScale - 1,
					Reason: "nats " + truncate(err.Error(), maxReason)}
			}
			return false, nil // what came before it is the answer
		}
		for _, r := range rs {
			if r.Position > after && len(out) < limit {
				out = append(out, r)
			}
		}
		return len(out) < limit, nil
	}
	// Every message holds at least one record: no more messages than
	// records wanted (plus the partly read first one) are needed.
	if want := min(lastSeq-seq+1, uint64(limit)+1); want > readAllWindow {
		// A long read: a consumer streams the messages.
		err := b.consume(ctx, "read all", jetstream.ConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:   seq,
		}, lastSeq, add)
		if err != nil {
			return nil, err
		}
	} else {
	window:
		for seq <= lastSeq && len(out) < limit {
			n := min(uint64(readAllWindow), lastSeq-seq+1, uint64(limit-len(out))+1)
			msgs, err := b.getRange(ctx, seq, n)
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				if m == nil {
					continue // a gap: the stream denies deletes, but stay robust
				}
				if more, _ := add(m.Sequence, m.Subject, m.Header, m.Data); !more { // add's error is always nil
					break window
				}
			}
			seq += n
		}
	}
	if corrupt != nil {
		return nil, corrupt
	}
	return out, nil
}

// maxReason bounds the reason of a *persistence.CorruptRecordError: it
// quotes headers that anyone who can publish on the subjects chose.
const maxReason = 300

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// firstSeqAfter is the stream sequence of the first message that can hold
// a position after after: the message of after itself, unless after is the
// last position a message can hold.
func firstSeqAfter(after uint64) uint64 {
	if after%positionScale == positionScale-1 {
		return after/positionScale + 1
	}
	return after / positionScale
}

// decodeLogMsg returns the records of the message at stream sequence seq of
// the global log.
func (b *Backend) decodeLogMsg(seq uint64, subject string, h natsgo.Header, data []byte) ([]persistence.Record, error) {
	id, ok := strings.CutPrefix(subject, b.opts.SubjectPrefix+".")
	if !ok {
		return nil, fmt.Errorf("stream sequence %d has subject %q outside %s.*", seq, subject, b.opts.SubjectPrefix)
	}
	rs, err := decodeMsg(id, seq, h, data)
	if err != nil {
		return nil, fmt.Errorf("journal message on %s: %w", subject, err)
	}
	return rs, nil
}

// getRange gets n messages by sequence from seq on, in parallel; a missing
// sequence is a nil entry.
func (b *Backend) getRange(ctx context.Context, seq, n uint64) ([]*jetstream.RawStreamMsg, error) {
	out := make([]*jetstream.RawStreamMsg, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := b.stream.GetMsg(ctx, seq+i)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return
			}
			out[i], errs[i] = m, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, b.wrap(ctx, fmt.Sprintf("read all: get stream sequence %d", seq+uint64(i)), err)
		}
	}
	return out, nil
}

// Head implements persistence.Journal. When the stream's last message is
// not a journal message, Head is the last position that message could hold,
// which is where a reader that skipped it stands.
func (b *Backend) Head(ctx context.Context) (uint64, error) {
	if err := b.begin(ctx, "head"); err != nil {
		return 0, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, b.wrap(ctx, "head: stream info", err)
	}
	last := info.State.LastSeq
	if last == 0 || info.State.Msgs == 0 {
		return 0, nil
	}
	m, err := b.stream.GetMsg(ctx, last)
	if err != nil {
		return 0, b.wrap(ctx, fmt.Sprintf("head: get stream sequence %d", last), err)
	}
	_, count, err := msgHead(m.Header)
	if err != nil {
		// Not a journal message: it holds no record, and a reader that
		// skips it reads on after the last position it could hold (the
		// Next of ReadAll's *persistence.CorruptRecordError).
		return last*positionScale + positionScale - 1, nil
	}
	return last*positionScale + uint64(count) - 1, nil
}

// ---------------------------------------------------------------- backend

// Ping implements persistence.Backend: the connection is up and JetStream
// answers for the journal stream.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.begin(ctx, "ping"); err != nil {
		return err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	if _, err := b.stream.Info(ctx); err != nil {
		return b.wrap(ctx, "ping: stream info", err)
	}
	return nil
}

// Describe implements persistence.Backend.
func (b *Backend) Describe() persistence.Description {
	return persistence.Description{Name: "nats", Address: b.addr, Durability: b.durability}
}

func (b *Backend) describeDurability(info *jetstream.StreamInfo) string {
	storage, replicas := b.opts.Storage, b.opts.Replicas
	if info != nil {
		storage, replicas = info.Config.Storage, info.Config.Replicas
	}
	s := fmt.Sprintf("JetStream stream %s, %s storage, %d replica(s)", b.opts.Stream, strings.ToLower(storage.String()), replicas)
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

// Behind implements persistence.Journal: it returns how many journal
// messages lie after the one holding position after, that is the outbox's
// lag in appends (positions here are seq*1000+index, so Head minus a
// checkpoint would overstate it a thousandfold). A message's records count
// once, and a skipped stream sequence counts as a message.
func (b *Backend) Behind(ctx context.Context, after uint64) (uint64, error) {
	head, err := b.Head(ctx)
	if err != nil {
		return 0, err
	}
	if head <= after {
		return 0, nil
	}
	return head/positionScale - after/positionScale, nil
}
