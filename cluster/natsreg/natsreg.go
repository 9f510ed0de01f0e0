package natsreg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/cluster/registry"
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
	// Timeout bounds connecting and setting the bucket up (default 5 s).
	Timeout time.Duration
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
}

// BucketFor returns the default bucket of cluster: "<cluster>_members".
func BucketFor(cluster string) string { return cluster + "_members" }

// Registry is a registry.Registry on a JetStream KV bucket. Safe for
// concurrent use; Close releases the connection it opened.
type Registry struct {
	nc         *nats.Conn
	ownConn    bool
	js         jetstream.JetStream
	kv         jetstream.KeyValue
	stream     jetstream.Stream // the bucket's stream, KV_<bucket>
	subjectPre string           // $KV.<bucket>.
	bucket     string
	cluster    string
	mode       Mode
	bucketTTL  time.Duration // MaxAge in ModeBucketTTL
	markerTTL  time.Duration // LimitMarkerTTL in ModeKeyTTL
	closeOnce  sync.Once
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
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	r := &Registry{nc: opts.Conn, bucket: opts.Bucket, cluster: opts.Cluster}
	if r.nc == nil {
		nc, err := natsconn.Connect(ctx, natsconn.Options{URL: opts.URL, Name: "ordersystem-membership", Timeout: opts.Timeout})
		if err != nil {
			return nil, fmt.Errorf("nats membership registry: connect %s: %w", redact.URL(opts.URL), err)
		}
		r.nc, r.ownConn = nc, true
	}
	if err := r.bind(ctx, opts); err != nil {
		r.Close()
		return nil, fmt.Errorf("nats membership registry: bucket %s: %w", opts.Bucket, err)
	}
	return r, nil
}

func (r *Registry) bind(ctx context.Context, opts Options) error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return err
	}
	r.js = js
	kv, err := js.KeyValue(ctx, opts.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = r.create(ctx, opts)
	}
	if err != nil {
		return err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return err
	}
	r.kv = kv
	if r.stream, err = r.js.Stream(ctx, "KV_"+opts.Bucket); err != nil {
		return err
	}
	r.subjectPre = "$KV." + opts.Bucket + "."
	switch {
	case st.LimitMarkerTTL() > 0 && opts.Mode != ModeBucketTTL:
		r.mode, r.markerTTL = ModeKeyTTL, st.LimitMarkerTTL()
	case st.TTL() > 0 && opts.Mode != ModeKeyTTL:
		r.mode, r.bucketTTL = ModeBucketTTL, st.TTL()
	default:
		return fmt.Errorf("%w: existing bucket has limit marker ttl %v and max age %v, mode %v was requested",
			ErrNoExpiry, st.LimitMarkerTTL(), st.TTL(), opts.Mode)
	}
	return nil
}

func (r *Registry) create(ctx context.Context, opts Options) (jetstream.KeyValue, error) {
	mode := opts.Mode
	if mode != ModeBucketTTL {
		info, err := r.js.AccountInfo(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case info.API.Level >= 1:
			mode = ModeKeyTTL
		case mode == ModeKeyTTL:
			return nil, ErrKeyTTLUnsupported
		default:
			mode = ModeBucketTTL
		}
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "OrderSystem cluster members (cluster/natsreg)",
		History:     1,
		Storage:     jetstream.MemoryStorage,
	}
	if mode == ModeKeyTTL {
		cfg.LimitMarkerTTL = time.Minute
	} else {
		cfg.TTL = opts.TTL
	}
	kv, err := r.js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return r.js.KeyValue(ctx, opts.Bucket) // created meanwhile by another member
	}
	return kv, err
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

func (r *Registry) checkTTL(op, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("nats %s %s: ttl %v must be positive", op, id, ttl)
	}
	if r.mode == ModeBucketTTL && ttl != r.bucketTTL {
		return fmt.Errorf("nats %s %s: %w: lease ttl %v, bucket %s max age %v", op, id, ErrTTLMismatch, ttl, r.bucket, r.bucketTTL)
	}
	return nil
}

// Register implements registry.Registry with kv.Create.
func (r *Registry) Register(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	if err := r.checkTTL("register", rec.MemberID, ttl); err != nil {
		return err
	}
	var opts []jetstream.KVCreateOpt
	if r.mode == ModeKeyTTL {
		opts = append(opts, jetstream.KeyTTL(keyTTL(ttl)))
	}
	if _, err := r.kv.Create(ctx, r.key(rec.MemberID), data, opts...); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("nats register %s: %w", rec.MemberID, registry.ErrMemberExists)
		}
		return fmt.Errorf("nats register %s: %w", rec.MemberID, err)
	}
	return nil
}

// current returns the revision of the key if it holds data; lost reports
// that it does not (gone or another record).
func (r *Registry) current(ctx context.Context, memberID string, data []byte) (rev uint64, lost string, err error) {
	e, err := r.kv.Get(ctx, r.key(memberID))
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

// Renew implements registry.Registry: read, compare, rewrite at the read
// revision (with a fresh per-key TTL in ModeKeyTTL).
func (r *Registry) Renew(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	if err := r.checkTTL("renew", rec.MemberID, ttl); err != nil {
		return err
	}
	rev, lost, err := r.current(ctx, rec.MemberID, data)
	if err != nil {
		return fmt.Errorf("nats renew %s: %w", rec.MemberID, err)
	}
	if lost != "" {
		return fmt.Errorf("nats renew %s: %s: %w", rec.MemberID, lost, registry.ErrLeaseLost)
	}
	if r.mode == ModeKeyTTL {
		// kv.Update cannot set a TTL: publish to the key's subject with
		// the same expected-revision check Update uses.
		msg := &nats.Msg{Subject: r.subjectPre + r.key(rec.MemberID), Data: data}
		_, err = r.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(keyTTL(ttl)))
	} else {
		_, err = r.kv.Update(ctx, r.key(rec.MemberID), data, rev)
	}
	if isRevisionMismatch(err) {
		return fmt.Errorf("nats renew %s: key changed or expired while renewing: %w", rec.MemberID, registry.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("nats renew %s: %w", rec.MemberID, err)
	}
	return nil
}

// Deregister implements registry.Registry: purge at our revision only.
func (r *Registry) Deregister(ctx context.Context, rec registry.MemberRecord) error {
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	rev, lost, err := r.current(ctx, rec.MemberID, data)
	if err != nil {
		return fmt.Errorf("nats deregister %s: %w", rec.MemberID, err)
	}
	if lost != "" {
		return nil
	}
	opts := []jetstream.KVDeleteOpt{jetstream.LastRevision(rev)}
	if r.mode == ModeKeyTTL {
		opts = append(opts, jetstream.PurgeTTL(r.markerTTL)) // the purge marker goes away too
	}
	err = r.kv.Purge(ctx, r.key(rec.MemberID), opts...)
	if err != nil && !isRevisionMismatch(err) {
		return fmt.Errorf("nats deregister %s: %w", rec.MemberID, err)
	}
	return nil
}

// List implements registry.Registry: the subjects of the bucket's stream
// under <Cluster>.* from one stream-info request (a snapshot of the keys
// present), then a Get of each key. A key that expired or was deleted
// meanwhile is skipped. (A KV watcher, as ListKeys uses, can end its
// initial pass before a key renewed during the pass is delivered, and so
// miss a live member, which protoactor would then block for good.)
func (r *Registry) List(ctx context.Context) ([]registry.MemberRecord, error) {
	info, err := r.stream.Info(ctx, jetstream.WithSubjectFilter(r.subjectPre+r.cluster+".*"))
	if err != nil {
		return nil, fmt.Errorf("nats list members: %w", err)
	}
	out := make([]registry.MemberRecord, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		key := strings.TrimPrefix(subj, r.subjectPre)
		e, err := r.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			continue // expired, deregistered, or an expiry marker
		case err != nil:
			return nil, fmt.Errorf("nats list members: %w", err)
		}
		rec, err := registry.DecodeMemberRecord(e.Value())
		if err != nil || r.key(rec.MemberID) != key {
			continue // not a record of ours; it expires by itself
		}
		out = append(out, rec)
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
