package natsreg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/redact"
)

// Errors of the NATS registry.
var (
	// ErrTTLMismatch means a lease TTL differs from the bucket's MaxAge in
	// ModeBucketTTL, where the bucket decides when records expire.
	ErrTTLMismatch = errors.New("lease ttl differs from the bucket's max age")
	// ErrNoExpiry means the bucket exists but expires nothing (neither
	// per-key TTLs nor a MaxAge), or the requested mode does not match it.
	ErrNoExpiry = errors.New("membership bucket cannot expire records")
	// ErrKeyTTLUnsupported means ModeKeyTTL was requested from a server
	// without per-message TTLs (nats-server before 2.11).
	ErrKeyTTLUnsupported = errors.New("server does not support per-key TTLs (needs nats-server 2.11+)")
)

// Mode selects how records expire; see the package documentation.
type Mode int

// Expiry modes.
const (
	// ModeAuto uses ModeKeyTTL when the server supports it, else
	// ModeBucketTTL; an existing bucket keeps the mode it was created with.
	ModeAuto Mode = iota
	// ModeKeyTTL expires each record by its own per-message TTL.
	ModeKeyTTL
	// ModeBucketTTL expires records by the bucket's MaxAge (= Options.TTL).
	ModeBucketTTL
)

func (m Mode) String() string {
	switch m {
	case ModeKeyTTL:
		return "key-ttl"
	case ModeBucketTTL:
		return "bucket-ttl"
	}
	return "auto"
}

// Options configure a Registry. The zero value of each field takes its
// default.
type Options struct {
	// URL of the NATS server (default nats.DefaultURL). Ignored if Conn is set.
	URL string
	// Conn is an existing connection to use, made by natsconn.Connect (a
	// node shares one between its journal, transport and membership); the
	// registry does not close it.
	Conn *nats.Conn
	// Bucket is the KV bucket (default BucketFor(Cluster): one bucket per
	// cluster, "ordersystem_members" for the default one). Letters,
	// digits, '-' and '_' only.
	Bucket string
	// Cluster is the cluster name, the first token of every key (default
	// "ordersystem").
	Cluster string
	// Mode selects the expiry mode for a new bucket (default ModeAuto).
	Mode Mode
	// TTL is the bucket's MaxAge when New creates it in ModeBucketTTL: it
	// must equal the members' lease TTL (default 3 s, the LeaseOptions
	// default).
	TTL time.Duration
	// Timeout bounds connecting and each attempt at setting the bucket up
	// (default 5 s).
	Timeout time.Duration
	// SetupTimeout bounds the attempts at setting the bucket up together
	// (default 30 s): a fresh JetStream cluster that is busy electing the
	// leaders of many new streams (the journal's, the transport's) may not
	// answer one bucket create within Timeout.
	SetupTimeout time.Duration
	// Replicas is the number of servers that keep the bucket when New or a
	// re-creation creates it (default 1; 3 on a JetStream cluster, as
	// --nats-replicas).
	Replicas int
	// Logger receives the re-creation of a bucket that vanished (default:
	// discard).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.URL == "" {
		o.URL = nats.DefaultURL
	}
	if o.Cluster == "" {
		o.Cluster = "ordersystem"
	}
	if o.Bucket == "" {
		o.Bucket = BucketFor(o.Cluster)
	}
	if o.TTL == 0 {
		o.TTL = 3 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.SetupTimeout == 0 {
		o.SetupTimeout = 30 * time.Second
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// BucketFor returns the default bucket of cluster: "<cluster>_members".
func BucketFor(cluster string) string { return cluster + "_members" }

// Registry is a registry.Registry on a JetStream KV bucket. Safe for
// concurrent use; Close releases the connection it opened.
//
// The bucket is bound again, and created if it is gone, whenever a call
// finds its stream missing (a server restarted without its store, a purge,
// a failover to servers that never had it); the call is then retried once
// on the new binding, so a lost record shows up as registry.ErrLeaseLost
// and the next Register succeeds.
type Registry struct {
	nc         *nats.Conn
	ownConn    bool
	js         jetstream.JetStream
	opts       Options // with defaults, for re-creating the bucket
	log        *slog.Logger
	subjectPre string // $KV.<bucket>.
	bucket     string
	cluster    string
	closeOnce  sync.Once

	b        atomic.Pointer[binding]
	rebindMu sync.Mutex // one re-binding at a time

	// revs holds the revision and the record this registry last wrote
	// for each of its members, so that Renew of that same record is one
	// request (a write that expects that revision) instead of a read and a
	// write.
	revMu sync.Mutex
	revs  map[string]written
}

// written is a record this registry wrote, at its revision.
type written struct {
	rev  uint64
	data []byte
}

// binding is the bucket as last bound: replaced as a whole when the bucket
// is bound again.
type binding struct {
	kv        jetstream.KeyValue
	stream    jetstream.Stream // the bucket's stream, KV_<bucket>
	mode      Mode
	bucketTTL time.Duration // MaxAge in ModeBucketTTL
	markerTTL time.Duration // LimitMarkerTTL in ModeKeyTTL
}

var _ registry.Registry = (*Registry)(nil)

// New connects (unless opts.Conn is set) and binds the bucket, creating it
// if it does not exist.
func New(ctx context.Context, opts Options) (*Registry, error) {
	opts.setDefaults()
	if err := registry.ValidateKeyToken("cluster name", opts.Cluster); err != nil {
		return nil, fmt.Errorf("nats membership registry: %w", err)
	}
	if !validBucket(opts.Bucket) {
		return nil, fmt.Errorf("nats membership registry: bucket %q: letters, digits, '-' and '_' only", opts.Bucket)
	}
	if opts.TTL < time.Second {
		return nil, fmt.Errorf("nats membership registry: ttl %v: NATS expires records in whole seconds, use at least 1s", opts.TTL)
	}
	r := &Registry{nc: opts.Conn, opts: opts, log: opts.Logger, bucket: opts.Bucket, cluster: opts.Cluster,
		subjectPre: "$KV." + opts.Bucket + ".", revs: make(map[string]written)}
	if r.nc == nil {
		cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		nc, err := natsconn.Connect(cctx, natsconn.Options{URL: opts.URL, Name: "ordersystem-membership", Timeout: opts.Timeout})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("nats membership registry: connect %s: %w", redact.URL(opts.URL), err)
		}
		r.nc, r.ownConn = nc, true
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("nats membership registry: %w", err)
	}
	r.js = js
	deadline := time.Now().Add(opts.SetupTimeout)
	for attempt := 1; ; attempt++ {
		bctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		_, err := r.bind(bctx)
		cancel()
		if err == nil {
			return r, nil
		}
		wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}.Delay(attempt)
		if errors.Is(err, ErrNoExpiry) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			r.Close()
			return nil, fmt.Errorf("nats membership registry: bucket %s (%d attempts): %w", opts.Bucket, attempt, err)
		}
		r.log.Warn("nats membership bucket setup failed; retrying", slog.String("bucket", opts.Bucket),
			slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", err))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// bind looks the bucket up, creates it if it does not exist, and makes it
// the current binding; created reports that it had to be created.
func (r *Registry) bind(ctx context.Context) (created bool, err error) {
	kv, err := r.js.KeyValue(ctx, r.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, created, err = r.create(ctx)
	}
	if err != nil {
		return false, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return false, err
	}
	b := &binding{kv: kv}
	if b.stream, err = r.js.Stream(ctx, "KV_"+r.bucket); err != nil {
		return false, err
	}
	switch mode := r.opts.Mode; {
	case st.LimitMarkerTTL() > 0 && mode != ModeBucketTTL:
		b.mode, b.markerTTL = ModeKeyTTL, st.LimitMarkerTTL()
	case st.TTL() > 0 && mode != ModeKeyTTL:
		b.mode, b.bucketTTL = ModeBucketTTL, st.TTL()
	default:
		return false, fmt.Errorf("%w: existing bucket has limit marker ttl %v and max age %v, mode %v was requested",
			ErrNoExpiry, st.LimitMarkerTTL(), st.TTL(), mode)
	}
	r.b.Store(b)
	return created, nil
}

// create creates the bucket: file storage (records, and the bucket itself,
// survive a server restart), history 1, Options.Replicas.
func (r *Registry) create(ctx context.Context) (kv jetstream.KeyValue, created bool, err error) {
	mode := r.opts.Mode
	if mode != ModeBucketTTL {
		info, err := r.js.AccountInfo(ctx)
		if err != nil {
			return nil, false, err
		}
		switch {
		case info.API.Level >= 1:
			mode = ModeKeyTTL
		case mode == ModeKeyTTL:
			return nil, false, ErrKeyTTLUnsupported
		default:
			mode = ModeBucketTTL
		}
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      r.bucket,
		Description: "OrderSystem cluster members (cluster/natsreg)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    r.opts.Replicas,
	}
	if mode == ModeKeyTTL {
		cfg.LimitMarkerTTL = time.Minute
	} else {
		cfg.TTL = r.opts.TTL
	}
	kv, err = r.js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = r.js.KeyValue(ctx, r.bucket) // created meanwhile by another member
		return kv, false, err
	}
	return kv, err == nil, err
}

// missing reports whether err says the bucket's stream is not there: a
// write nobody answered, a read nobody answered, a stream lookup that
// found nothing. Some of these also happen while a JetStream cluster
// elects a leader; rebind only creates the bucket after a lookup that
// definitely found none.
func missing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, nats.ErrNoResponders)
}

// rebind binds the bucket again (creating it if it is gone) after a call
// on seen failed with a missing-stream error. A binding made meanwhile by
// another call is kept. The revisions this registry wrote are forgotten:
// they belong to the old stream.
func (r *Registry) rebind(ctx context.Context, seen *binding, cause error) (*binding, error) {
	r.rebindMu.Lock()
	defer r.rebindMu.Unlock()
	if cur := r.b.Load(); cur != seen {
		return cur, nil
	}
	created, err := r.bind(ctx)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s again after %v: %w", r.bucket, cause, err)
	}
	r.revMu.Lock()
	clear(r.revs)
	r.revMu.Unlock()
	if created {
		r.log.Warn("membership bucket was gone; created it again (its records are lost: members register again)",
			slog.String("bucket", r.bucket), slog.String("cause", cause.Error()))
	}
	return r.b.Load(), nil
}

// withBinding runs op on the current binding and, if it failed because the
// bucket's stream is missing, binds the bucket again and runs op once more.
func (r *Registry) withBinding(ctx context.Context, op func(*binding) error) error {
	b := r.b.Load()
	err := op(b)
	if !missing(err) {
		return err
	}
	nb, rerr := r.rebind(ctx, b, err)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	return op(nb)
}

// rev returns the revision at which this registry wrote data as
// memberID's record, if that is the last thing it wrote there.
func (r *Registry) rev(memberID string, data []byte) (uint64, bool) {
	r.revMu.Lock()
	defer r.revMu.Unlock()
	w, ok := r.revs[memberID]
	return w.rev, ok && bytes.Equal(w.data, data)
}

// setRev remembers that data was written as memberID's record at rev (0:
// forget it).
func (r *Registry) setRev(memberID string, rev uint64, data []byte) {
	r.revMu.Lock()
	defer r.revMu.Unlock()
	if rev == 0 {
		delete(r.revs, memberID)
		return
	}
	r.revs[memberID] = written{rev: rev, data: data}
}

// Close closes the connection if New opened it. Idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		if r.ownConn {
			r.nc.Close()
		}
	})
	return nil
}

func (r *Registry) key(memberID string) string { return r.cluster + "." + memberID }

// keyTTL rounds a lease up to whole seconds (the server's resolution).
func keyTTL(ttl time.Duration) time.Duration {
	return max(time.Second, (ttl+time.Second-1)/time.Second*time.Second)
}

func (r *Registry) checkTTL(b *binding, op, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("nats %s %s: ttl %v must be positive", op, id, ttl)
	}
	if b.mode == ModeBucketTTL && ttl != b.bucketTTL {
		return fmt.Errorf("nats %s %s: %w: lease ttl %v, bucket %s max age %v", op, id, ErrTTLMismatch, ttl, r.bucket, b.bucketTTL)
	}
	return nil
}

// Register implements registry.Registry with kv.Create: one request.
func (r *Registry) Register(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	var rev uint64
	err = r.withBinding(ctx, func(b *binding) error {
		if err := r.checkTTL(b, "register", rec.MemberID, ttl); err != nil {
			return err
		}
		var opts []jetstream.KVCreateOpt
		if b.mode == ModeKeyTTL {
			opts = append(opts, jetstream.KeyTTL(keyTTL(ttl)))
		}
		rev, err = b.kv.Create(ctx, r.key(rec.MemberID), data, opts...)
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("nats register %s: %w", rec.MemberID, registry.ErrMemberExists)
		}
		return fmt.Errorf("nats register %s: %w", rec.MemberID, err)
	}
	r.setRev(rec.MemberID, rev, data)
	return nil
}

// current returns the revision of the key if it holds data; lost reports
// that it does not (gone or another record).
func (r *Registry) current(ctx context.Context, b *binding, memberID string, data []byte) (rev uint64, lost string, err error) {
	e, err := b.kv.Get(ctx, r.key(memberID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return 0, "key expired or deleted", nil
	case err != nil:
		return 0, "", err
	case !bytes.Equal(e.Value(), data):
		return 0, "key holds another incarnation's record", nil
	}
	return e.Revision(), "", nil
}

func isRevisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// write rewrites the key with data if its last revision is rev (with a
// fresh per-key TTL in ModeKeyTTL) and returns the new revision.
func (r *Registry) write(ctx context.Context, b *binding, memberID string, data []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if b.mode != ModeKeyTTL {
		return b.kv.Update(ctx, r.key(memberID), data, rev)
	}
	// kv.Update cannot set a TTL: publish to the key's subject with the
	// same expected-revision check Update uses.
	msg := &nats.Msg{Subject: r.subjectPre + r.key(memberID), Data: data}
	ack, err := r.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(keyTTL(ttl)))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// Renew implements registry.Registry: rewrite the key at the revision
// this registry last wrote (one request). Without one, or when the key
// moved since (a write whose answer was lost, an expiry, a delete), read
// the key, check that it still holds our record and rewrite it at the
// read revision. Only our own renewals write our key, so a write at the
// revision we wrote is a write over our record.
func (r *Registry) Renew(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	var lost string
	err = r.withBinding(ctx, func(b *binding) error {
		if err := r.checkTTL(b, "renew", rec.MemberID, ttl); err != nil {
			return err
		}
		if rev, ok := r.rev(rec.MemberID, data); ok {
			next, err := r.write(ctx, b, rec.MemberID, data, rev, ttl)
			if err == nil {
				r.setRev(rec.MemberID, next, data)
				return nil
			}
			if !isRevisionMismatch(err) {
				return err
			}
		}
		rev, why, err := r.current(ctx, b, rec.MemberID, data)
		if err != nil || why != "" {
			lost = why
			return err
		}
		next, err := r.write(ctx, b, rec.MemberID, data, rev, ttl)
		if isRevisionMismatch(err) {
			lost = "key changed or expired while renewing"
			return nil
		}
		if err == nil {
			r.setRev(rec.MemberID, next, data)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("nats renew %s: %w", rec.MemberID, err)
	}
	if lost != "" {
		r.setRev(rec.MemberID, 0, nil)
		return fmt.Errorf("nats renew %s: %s: %w", rec.MemberID, lost, registry.ErrLeaseLost)
	}
	return nil
}

// Deregister implements registry.Registry: purge at our revision only.
func (r *Registry) Deregister(ctx context.Context, rec registry.MemberRecord) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	err = r.withBinding(ctx, func(b *binding) error {
		rev, lost, err := r.current(ctx, b, rec.MemberID, data)
		if err != nil || lost != "" {
			return err
		}
		opts := []jetstream.KVDeleteOpt{jetstream.LastRevision(rev)}
		if b.mode == ModeKeyTTL {
			opts = append(opts, jetstream.PurgeTTL(b.markerTTL)) // the purge marker goes away too
		}
		if err := b.kv.Purge(ctx, r.key(rec.MemberID), opts...); err != nil && !isRevisionMismatch(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nats deregister %s: %w", rec.MemberID, err)
	}
	r.setRev(rec.MemberID, 0, nil)
	return nil
}

// List implements registry.Registry: the subjects of the bucket's stream
// under <Cluster>.* from one stream-info request (a snapshot of the keys
// present), then a Get of each key. A key that expired or was deleted
// meanwhile is skipped. (A KV watcher, as ListKeys uses, can end its
// initial pass before a key renewed during the pass is delivered, and so
// miss a live member, which protoactor would then block for good.)
func (r *Registry) List(ctx context.Context) ([]registry.MemberRecord, error) {
	var out []registry.MemberRecord
	err := r.withBinding(ctx, func(b *binding) error {
		info, err := b.stream.Info(ctx, jetstream.WithSubjectFilter(r.subjectPre+r.cluster+".*"))
		if err != nil {
			return err
		}
		out = make([]registry.MemberRecord, 0, len(info.State.Subjects))
		for subj := range info.State.Subjects {
			key := strings.TrimPrefix(subj, r.subjectPre)
			e, err := b.kv.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
				continue // expired, deregistered, or an expiry marker
			case err != nil:
				return err
			}
			rec, err := registry.DecodeMemberRecord(e.Value())
			if err != nil || r.key(rec.MemberID) != key {
				continue // not a record of ours; it expires by itself
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nats list members: %w", err)
	}
	registry.SortRecords(out)
	return out, nil
}

// validBucket reports whether b is a KV bucket name JetStream accepts.
func validBucket(b string) bool {
	if b == "" {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
