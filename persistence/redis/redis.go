package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/persistence"
)

// Backend implements persistence.Backend on Redis. It is safe for concurrent
// use. Create it with New and release it with Close.
type Backend struct {
	opts       Options
	addr       string // without credentials
	durability string
	profile    string
	rdb        goredis.UniversalClient
	ownClient  bool // made by New (no Options.Client): Close closes it

	metaKey, checkpointKey string
	journalID              string          // the meta key's journal field (see JournalIdentity)
	rmsnapChunk            atomic.Int64    // read-model snapshot chunk size when set (tests)
	parts                  []*partitionLog // one per partition, fixed by New

	closed    atomic.Bool
	closeOnce sync.Once

	// Group commit (nil queue when Options.MaxBatch == 1).
	queue chan *appendReq
	stop  chan struct{}  // closed by Close: the committers finish and exit
	wg    sync.WaitGroup // the committers
	done  chan struct{}  // closed by Close once every committer has exited
}

// committers is the number of committer goroutines: while one waits for
// its pipeline's replies the next batch is already on its way.
const committers = 2

var _ persistence.Backend = (*Backend)(nil)

// New checks that Redis answers (through opts.Client, or a client of its
// own for opts.Addr), loads the scripts, settles the partition count (see
// the package documentation: stored at first start, a mismatch refused with
// a *persistence.PartitionMismatchError) and learns the server's durability
// settings. When the server cannot be reached the error wraps
// persistence.ErrUnavailable and names the address. A journal of the
// unpartitioned layout under the prefix is refused (ErrInvalidArgument).
func New(ctx context.Context, opts Options) (*Backend, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	b := &Backend{
		opts:          opts,
		addr:          redact.URL(opts.Addr),
		rdb:           opts.Client,
		metaKey:       opts.Prefix + "meta",
		checkpointKey: opts.Prefix + "checkpoints",
	}
	if b.rdb == nil {
		c, err := redisconn.New(opts.connOptions())
		if err != nil {
			return nil, fmt.Errorf("redis option Addr: %w", err)
		}
		b.rdb, b.ownClient = c, true
	}
	fail := func(op string, err error) (*Backend, error) {
		if b.ownClient {
			_ = b.rdb.Close()
		}
		return nil, b.wrap(op, err)
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fail("connect: ping", err)
	}
	// Load the scripts now so that the first appends find them (a restarted
	// server forgets them; append and load re-load on NOSCRIPT).
	for _, s := range []*goredis.Script{appendScript, loadScript, snapshotScript, rmsnapCommitScript} {
		if err := s.Load(ctx, b.rdb).Err(); err != nil {
			return fail("load scripts", err)
		}
	}
	n, err := b.partitionCount(ctx)
	if err != nil {
		if b.ownClient {
			_ = b.rdb.Close()
		}
		return nil, err
	}
	if b.journalID, err = b.journalIdentity(ctx); err != nil {
		if b.ownClient {
			_ = b.rdb.Close()
		}
		return nil, err
	}
	for p := range n {
		tag := opts.Prefix + "{p" + strconv.Itoa(p) + "}:"
		b.parts = append(b.parts, &partitionLog{b: b, p: p, tag: tag, logKey: tag + "log", seqKey: tag + "seq"})
	}
	b.durability, b.profile = b.describeDurability(ctx)
	if opts.MaxBatch > 1 {
		b.queue = make(chan *appendReq, 4*opts.MaxBatch)
		b.stop = make(chan struct{})
		b.done = make(chan struct{})
		for range committers {
			b.wg.Add(1)
			go b.committer()
		}
	}
	return b, nil
}

// partitionCount reads the stored partition count, stores the configured
// one (HSETNX) when there is none yet, and resolves the two. The first
// writer of the meta key wins a race of two first starts; the loser then
// resolves against what the winner stored.
func (b *Backend) partitionCount(ctx context.Context) (int, error) {
	stored, err := b.storedPartitions(ctx)
	if err != nil {
		return 0, err
	}
	if stored == 0 {
		old := b.opts.Prefix + "log"
		n, err := b.rdb.Exists(ctx, old).Result()
		if err != nil {
			return 0, b.wrap("open: look for an unpartitioned journal", err)
		}
		if n > 0 {
			return 0, fmt.Errorf("redis journal with prefix %q at %s: key %q holds a journal of the unpartitioned layout (one global log) and %q, which every partitioned journal has, is missing; "+
				"this version reads only the partitioned layout (%s{p<N>}:log) and refuses to start rather than ignore those orders: "+
				"start it with another cluster name (key prefix), or keep the older version for this data: %w",
				b.opts.Prefix, b.addr, old, b.metaKey, b.opts.Prefix, persistence.ErrInvalidArgument)
		}
		want, err := persistence.ResolvePartitions(b.opts.Partitions, 0)
		if err != nil {
			return 0, err
		}
		if err := b.rdb.HSetNX(ctx, b.metaKey, "partitions", want).Err(); err != nil {
			return 0, b.wrap("open: store the partition count", err)
		}
		if stored, err = b.storedPartitions(ctx); err != nil {
			return 0, err
		}
	}
	return persistence.ResolvePartitions(b.opts.Partitions, stored)
}

// storedPartitions is the partition count in the meta key, 0 when none is
// stored.
func (b *Backend) storedPartitions(ctx context.Context) (int, error) {
	v, err := b.rdb.HGet(ctx, b.metaKey, "partitions").Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, b.wrap("open: read the partition count", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > persistence.MaxPartitions {
		return 0, fmt.Errorf("redis journal at %s: %s field partitions is %q, not a partition count 1..%d: %w", b.addr, b.metaKey, truncate(v, 40), persistence.MaxPartitions, persistence.ErrCorrupt)
	}
	return n, nil
}

func (b *Backend) snapshotKey(id string) string { return b.opts.Prefix + "snapshot:" + id }

// Partitions implements persistence.Journal.
func (b *Backend) Partitions() int { return len(b.parts) }

// Log implements persistence.Journal.
func (b *Backend) Log(p int) persistence.Log {
	if p < 0 || p >= len(b.parts) {
		return persistence.BadPartition(p)
	}
	return b.parts[p]
}

// partitionLog is one partition: its keys share the hash tag {p<N>}, so
// one script reaches all of them on a cluster.
type partitionLog struct {
	b              *Backend
	p              int
	tag            string // <prefix>{p<N>}:
	logKey, seqKey string

	foreignMu     sync.Mutex
	foreignLogged string // the id of the last foreign log entry logged
}

func (l *partitionLog) streamKey(id string) string { return l.tag + "stream:" + id }

// Partition implements persistence.Log.
func (l *partitionLog) Partition() int { return l.p }

func (b *Backend) partitionOf(streamID string) *partitionLog {
	return b.parts[persistence.PartitionOf(streamID, len(b.parts))]
}

// begin is the common entry check of every operation.
func (b *Backend) begin(ctx context.Context, op string) error {
	if b.closed.Load() {
		return persistence.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return persistence.Unavailable("redis "+op, err)
	}
	return nil
}

// wrap classifies an error from go-redis: after Close (or once the client
// is closed) ErrClosed; what redisconn.Transient calls "retry later" (every
// network or timeout error, a server that cannot serve now) wraps
// ErrUnavailable, and makes a cluster client reload its slot map; other
// server replies (a bug or a misconfiguration) are returned as they are,
// with the operation.
func (b *Backend) wrap(op string, err error) error {
	if b.closed.Load() || errors.Is(err, goredis.ErrClosed) {
		return persistence.ErrClosed
	}
	if !redisconn.Transient(err) {
		return fmt.Errorf("redis %s at %s: %w", op, b.addr, err)
	}
	if cc, ok := b.rdb.(*goredis.ClusterClient); ok {
		// go-redis 9.23 reloads its slot map on MOVED and READONLY, not
		// when the primary it knows cannot be dialed: without this, a
		// killed primary stays the slot's owner for the client long after
		// its replica took over (measured: > 25 s).
		cc.ReloadState(context.Background())
	}
	return persistence.Unavailable(fmt.Sprintf("redis %s at %s", op, b.addr), err)
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// ---------------------------------------------------------------- journal

// appendReq is one Append on its way through the group committer.
type appendReq struct {
	ctx      context.Context
	streamID string
	part     int
	expected uint64
	n        int
	keys     []string
	args     []any
	res      chan appendRes // buffered, 1
}

type appendRes struct {
	version uint64
	err     error
}

// Append implements persistence.Journal. With group commit on, the append
// waits for a committer; if ctx ends first the call returns ErrUnavailable
// and the append may or may not be committed.
func (b *Backend) Append(ctx context.Context, streamID string, expected uint64, records []persistence.Record) (uint64, error) {
	if err := persistence.ValidateAppend(streamID, records); err != nil {
		return 0, err
	}
	if err := b.begin(ctx, "append"); err != nil {
		return 0, err
	}
	args := make([]any, 0, 2+2*len(records))
	args = append(args, expected, streamID)
	for _, r := range records {
		args = append(args, r.Type, r.Data)
	}
	l := b.partitionOf(streamID)
	req := &appendReq{
		ctx:      ctx,
		streamID: streamID,
		part:     l.p,
		expected: expected,
		n:        len(records),
		keys:     []string{l.streamKey(streamID), l.logKey, l.seqKey},
		args:     args,
		res:      make(chan appendRes, 1),
	}
	if b.queue == nil {
		b.commit(ctx, []*appendReq{req})
		r := <-req.res
		return r.version, r.err
	}
	select {
	case b.queue <- req:
	case <-b.done:
		return 0, persistence.ErrClosed
	case <-ctx.Done():
		return 0, persistence.Unavailable("redis append", ctx.Err())
	}
	select {
	case r := <-req.res:
		return r.version, r.err
	case <-b.done:
		select {
		case r := <-req.res:
			return r.version, r.err
		default:
			return 0, persistence.ErrClosed
		}
	case <-ctx.Done():
		// The committer may still run the script: the outcome is unknown,
		// which is what ErrUnavailable promises.
		return 0, persistence.Unavailable("redis append", ctx.Err())
	}
}

// committer is one of the goroutines that send queued appends, as many as
// are waiting (up to MaxBatch) in one pipeline. It exits when stop is
// closed, failing what is still queued with ErrClosed.
func (b *Backend) committer() {
	defer b.wg.Done()
	batch := make([]*appendReq, 0, b.opts.MaxBatch)
	for {
		select {
		case <-b.stop:
			for {
				select {
				case r := <-b.queue:
					r.res <- appendRes{err: persistence.ErrClosed}
				default:
					return
				}
			}
		case r := <-b.queue:
			batch = append(batch[:0], r)
			// Let the goroutines that are ready to run first (other
			// actors about to append, under load) queue their appends, so
			// that they go in this round trip rather than one each. It
			// costs nothing when nothing else is runnable.
			runtime.Gosched()
		fill:
			for len(batch) < b.opts.MaxBatch {
				select {
				case r := <-b.queue:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			// Requests whose caller gave up are not sent.
			live := batch[:0]
			for _, r := range batch {
				if err := r.ctx.Err(); err != nil {
					r.res <- appendRes{err: persistence.Unavailable("redis append", err)}
					continue
				}
				live = append(live, r)
			}
			if len(live) > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), b.batchTimeout())
				b.commit(ctx, live)
				cancel()
			}
			clear(batch)
		}
	}
}

// batchTimeout bounds one pipeline round trip of the committer.
func (b *Backend) batchTimeout() time.Duration {
	d := b.opts.WriteTimeout + b.opts.ReadTimeout
	if d <= 0 {
		d = 2 * DefaultTimeout
	}
	return d
}

// scripter is what commitOn sends through: the backend's client, or one
// node of a cluster.
type scripter interface {
	goredis.Scripter
	Pipeline() goredis.Pipeliner
}

// commit runs the append script for each request in one pipeline (plus one
// WAIT when configured) and answers every request. On a cluster client
// with WaitReplicas the pipeline is split by hand, one per primary (the
// one that owns each request's partition now), because WAIT must run on
// the connection that wrote: a cluster client would send a keyless WAIT
// to any node. Without WaitReplicas the cluster client splits the pipeline
// by node itself and follows redirects.
func (b *Backend) commit(ctx context.Context, reqs []*appendReq) {
	cc, ok := b.rdb.(*goredis.ClusterClient)
	if !ok || b.opts.WaitReplicas == 0 {
		b.commitOn(ctx, b.rdb, reqs)
		return
	}
	byNode := make(map[*goredis.Client][]*appendReq)
	for _, r := range reqs {
		node, err := cc.MasterForKey(ctx, r.keys[0])
		if err != nil {
			cc.ReloadState(ctx)
			r.res <- appendRes{err: b.wrap(fmt.Sprintf("append to %q: find the primary of partition %d", r.streamID, r.part), err)}
			continue
		}
		byNode[node] = append(byNode[node], r)
	}
	var wg sync.WaitGroup
	for node, rs := range byNode {
		wg.Go(func() {
			if b.commitOn(ctx, node, rs) {
				// A failover or a resharding moved slots: the cluster
				// client learns the new owners for the next batches.
				cc.ReloadState(ctx)
			}
		})
	}
	wg.Wait()
}

// commitOn is commit through one client. It reports whether any request
// failed in a way that says the cluster's topology may have changed (a
// network error, MOVED, CLUSTERDOWN, READONLY, ...).
func (b *Backend) commitOn(ctx context.Context, c scripter, reqs []*appendReq) (moved bool) {
	for attempt := 0; ; attempt++ {
		cmds := make([]*goredis.Cmd, len(reqs))
		var wait *goredis.Cmd
		if len(reqs) == 1 && b.opts.WaitReplicas == 0 {
			// One append: a plain call, no pipeline to set up.
			cmds[0] = appendScript.EvalSha(ctx, c, reqs[0].keys, reqs[0].args...)
		} else {
			// WAIT must run on the connection that wrote: one pipeline
			// holds the appends and the WAIT after them.
			pipe := c.Pipeline()
			for i, r := range reqs {
				cmds[i] = appendScript.EvalSha(ctx, pipe, r.keys, r.args...)
			}
			if b.opts.WaitReplicas > 0 {
				wait = pipe.Do(ctx, "WAIT", b.opts.WaitReplicas, b.opts.WaitTimeout.Milliseconds())
			}
			_, _ = pipe.Exec(ctx)
		}

		// A restarted server has forgotten the script: NOSCRIPT means it did
		// not run, so load it and send those requests again.
		var again []*appendReq
		for i, r := range reqs {
			if isNoScript(cmds[i].Err()) && attempt == 0 {
				again = append(again, r)
				continue
			}
			if err := cmds[i].Err(); redisconn.Transient(err) || (wait != nil && redisconn.Transient(wait.Err())) {
				moved = true
			}
			b.answer(r, cmds[i], wait)
		}
		if len(again) == 0 {
			return moved
		}
		if err := appendScript.Load(ctx, c).Err(); err != nil {
			for _, r := range again {
				r.res <- appendRes{err: b.wrap("append: load script", err)}
			}
			return true
		}
		reqs = again
	}
}

func (b *Backend) answer(r *appendReq, cmd *goredis.Cmd, wait *goredis.Cmd) {
	out, err := cmd.Int64Slice()
	if err != nil {
		r.res <- appendRes{err: b.wrap("append to "+strconv.Quote(r.streamID), err)}
		return
	}
	if len(out) < 2 {
		r.res <- appendRes{err: fmt.Errorf("redis append to %q: unexpected script reply %v", r.streamID, out)}
		return
	}
	if out[0] == 0 {
		r.res <- appendRes{err: &persistence.ConflictError{StreamID: r.streamID, Expected: r.expected, Actual: uint64(out[1])}}
		return
	}
	if wait != nil {
		acked, err := wait.Int64()
		if err != nil {
			r.res <- appendRes{err: b.wrap("append to "+strconv.Quote(r.streamID)+": wait for replicas", err)}
			return
		}
		if acked < int64(b.opts.WaitReplicas) {
			r.res <- appendRes{err: persistence.Unavailable("redis append to "+strconv.Quote(r.streamID),
				fmt.Errorf("written on the primary but only %d of %d replicas acknowledged within %s", acked, b.opts.WaitReplicas, b.opts.WaitTimeout))}
			return
		}
	}
	r.res <- appendRes{version: uint64(out[1])}
}

var _ persistence.Syncer = (*Backend)(nil)

// Sync implements persistence.Syncer. Without WaitReplicas it returns nil
// at once. With it, it sends the primary that owns streamID's partition
// INCRBY <partition counter> 0 (a write that changes nothing but is
// replicated like any, so that the connection's replication offset is past
// every record journaled before it) and WAIT on the same connection: nil
// when WaitReplicas replicas acknowledged within WaitTimeout, ErrUnavailable
// otherwise.
func (b *Backend) Sync(ctx context.Context, streamID string) error {
	if err := b.begin(ctx, "sync"); err != nil {
		return err
	}
	if b.opts.WaitReplicas == 0 {
		return nil
	}
	l := b.partitionOf(streamID)
	var c scripter = b.rdb
	if cc, ok := b.rdb.(*goredis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, l.seqKey)
		if err != nil {
			return b.wrap(fmt.Sprintf("sync %q: find the primary of partition %d", streamID, l.p), err)
		}
		c = node
	}
	pipe := c.Pipeline()
	incr := pipe.IncrBy(ctx, l.seqKey, 0)
	wait := pipe.Do(ctx, "WAIT", b.opts.WaitReplicas, b.opts.WaitTimeout.Milliseconds())
	_, _ = pipe.Exec(ctx)
	if err := incr.Err(); err != nil {
		return b.wrap(fmt.Sprintf("sync %q", streamID), err)
	}
	acked, err := wait.Int64()
	if err != nil {
		return b.wrap(fmt.Sprintf("sync %q: wait for replicas", streamID), err)
	}
	if acked < int64(b.opts.WaitReplicas) {
		return persistence.Unavailable("redis sync "+strconv.Quote(streamID),
			fmt.Errorf("only %d of %d replicas acknowledged the partition's writes within %s", acked, b.opts.WaitReplicas, b.opts.WaitTimeout))
	}
	return nil
}

// Load implements persistence.Journal.
func (b *Backend) Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error) {
	if err := b.begin(ctx, "load"); err != nil {
		return nil, err
	}
	start := int64(0)
	if from > 1 {
		start = int64(from - 1)
	}
	l := b.partitionOf(streamID)
	raw, err := loadScript.Run(ctx, b.rdb, []string{l.streamKey(streamID), l.logKey}, start).Slice()
	if err != nil {
		if errors.Is(err, goredis.Nil) {
			return nil, nil
		}
		return nil, b.wrap("load "+strconv.Quote(streamID), err)
	}
	recs, err := decodeEntries(raw, l.p)
	if err != nil {
		return nil, fmt.Errorf("redis load %q: %w", streamID, err)
	}
	return recs, nil
}

// ReadAll implements persistence.Log. A log entry without a valid
// stream, version and type is reported as a *persistence.CorruptRecordError
// (Next is its position: positions are one per entry) when it is the first
// entry read, and ends the read before it otherwise. An entry whose id is
// not 0-<position> (an XADD with an id of Redis's making) sorts after every
// entry the append script writes: the read ends before it, it is logged
// once, and no position is ever handed out for it, so no reader's
// checkpoint can move past a record because of it.
func (l *partitionLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	b := l.b
	if err := b.begin(ctx, "read all"); err != nil {
		return nil, err
	}
	if limit <= 0 || after == ^uint64(0) {
		return nil, nil
	}
	start := "0-" + strconv.FormatUint(after+1, 10)
	raw, err := b.rdb.Do(ctx, "XRANGE", l.logKey, start, "+", "COUNT", limit).Slice()
	if err != nil {
		if errors.Is(err, goredis.Nil) {
			return nil, nil
		}
		return nil, b.wrap(fmt.Sprintf("read all of partition %d", l.p), err)
	}
	out := make([]persistence.Record, 0, len(raw))
	for _, e := range raw {
		id, fields, err := splitEntry(e)
		if err != nil {
			return nil, fmt.Errorf("redis read all of partition %d after %d: %w", l.p, after, err)
		}
		pos, ok := logPosition(id)
		if !ok {
			l.foreignEntry(id)
			break
		}
		r, err := decodeEntry(id, pos, fields)
		if err != nil {
			if len(out) > 0 {
				break // the next read starts at it and reports it
			}
			return nil, &persistence.CorruptRecordError{Partition: l.p, Position: pos, Next: pos, Reason: "redis " + err.Error()}
		}
		r.Partition = l.p
		out = append(out, r)
	}
	return out, nil
}

// foreignEntry logs, once per id, an entry of the log whose id the append
// script cannot have written.
func (l *partitionLog) foreignEntry(id string) {
	l.foreignMu.Lock()
	seen := l.foreignLogged == id
	l.foreignLogged = id
	l.foreignMu.Unlock()
	if seen {
		return
	}
	l.b.opts.Logger.Error("journal: a partition's log holds an entry whose id is not 0-<position>, written by something other than this backend; "+
		"reads of the log stop before it and it is never returned, and appends fail while it is there (Redis refuses the lower ids the append script writes); "+
		"to repair the journal delete it (XDEL) and set the log's last id back to the last record's (XSETID <key> 0-<position>)",
		slog.String("key", l.logKey), slog.Int("partition", l.p), slog.String("entry_id", id))
}

// splitEntry takes an XRANGE-shaped entry apart: {id, {field, value, ...}}.
func splitEntry(e any) (id string, fields []any, err error) {
	entry, ok := e.([]any)
	if !ok || len(entry) != 2 {
		return "", nil, fmt.Errorf("malformed log entry %v", e)
	}
	if id, ok = entry[0].(string); !ok {
		return "", nil, fmt.Errorf("malformed log entry id %v", entry[0])
	}
	fields, _ = entry[1].([]any) // nil: no fields, which decodeEntry reports
	return id, fields, nil
}

// logPosition is the position in an entry id "0-<position>"; ok is false
// for any other id.
func logPosition(id string) (pos uint64, ok bool) {
	p, ok := strings.CutPrefix(id, "0-")
	if !ok {
		return 0, false
	}
	pos, err := strconv.ParseUint(p, 10, 64)
	return pos, err == nil && pos > 0
}

// decodeEntry turns the fields of log entry id (at position pos) into a
// record; the error says what the entry lacks.
func decodeEntry(id string, pos uint64, fields []any) (persistence.Record, error) {
	r := persistence.Record{Position: pos}
	if len(fields)%2 != 0 {
		return r, fmt.Errorf("log entry %s: malformed fields", id)
	}
	for i := 0; i < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch name {
		case "s":
			r.StreamID = val
		case "v":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return r, fmt.Errorf("log entry %s: version %q is not a number", id, truncate(val, 40))
			}
			r.Version = v
		case "t":
			r.Type = val
		case "d":
			r.Data = []byte(val)
		}
	}
	if r.StreamID == "" || r.Version == 0 || r.Type == "" {
		return r, fmt.Errorf("log entry %s lacks stream, version or type", id)
	}
	return r, nil
}

// decodeEntries turns the XRANGE-shaped entries of one order's stream (the
// load script's reply) into records; any entry that is not a record fails
// the whole load.
func decodeEntries(raw []any, partition int) ([]persistence.Record, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]persistence.Record, 0, len(raw))
	for _, e := range raw {
		id, fields, err := splitEntry(e)
		if err != nil {
			return nil, err
		}
		pos, ok := logPosition(id)
		if !ok {
			return nil, fmt.Errorf("log entry id %q is not 0-<position>", id)
		}
		r, err := decodeEntry(id, pos, fields)
		if err != nil {
			return nil, err
		}
		r.Partition = partition
		out = append(out, r)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Head implements persistence.Log.
func (l *partitionLog) Head(ctx context.Context) (uint64, error) {
	b := l.b
	if err := b.begin(ctx, "head"); err != nil {
		return 0, err
	}
	v, err := b.rdb.Get(ctx, l.seqKey).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, b.wrap(fmt.Sprintf("head of partition %d", l.p), err)
	}
	return v, nil
}

// ------------------------------------------------- checkpoints, snapshots

// LoadCheckpoint implements persistence.Checkpoints: a checkpoint of no
// partition, in the <prefix>checkpoints hash. A partition's checkpoints
// (the outbox's) are its Log's (persistence.LogCheckpoints), under the
// partition's hash tag.
func (b *Backend) LoadCheckpoint(ctx context.Context, name string) (uint64, error) {
	if err := b.begin(ctx, "load checkpoint"); err != nil {
		return 0, err
	}
	v, err := b.rdb.HGet(ctx, b.checkpointKey, name).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, b.wrap("load checkpoint "+strconv.Quote(name), err)
	}
	return v, nil
}

// SaveCheckpoint implements persistence.Checkpoints (see LoadCheckpoint).
func (b *Backend) SaveCheckpoint(ctx context.Context, name string, pos uint64) error {
	if err := b.begin(ctx, "save checkpoint"); err != nil {
		return err
	}
	if err := b.rdb.HSet(ctx, b.checkpointKey, name, pos).Err(); err != nil {
		return b.wrap("save checkpoint "+strconv.Quote(name), err)
	}
	return nil
}

// checkpointKey is the key of this partition's checkpoint name.
func (l *partitionLog) checkpointKey(name string) string { return l.tag + "checkpoint:" + name }

var _ persistence.LogCheckpoints = (*partitionLog)(nil)

// LoadCheckpoint implements persistence.LogCheckpoints.
func (l *partitionLog) LoadCheckpoint(ctx context.Context, name string) (uint64, error) {
	cp, _, err := l.checkpoint(ctx, name, false)
	return cp, err
}

// CheckpointAndHead implements persistence.LogCheckpoints: one MGET of the
// checkpoint's key and the partition's counter, which share the
// partition's hash tag (one slot, one shard, one round trip).
func (l *partitionLog) CheckpointAndHead(ctx context.Context, name string) (checkpoint, head uint64, err error) {
	return l.checkpoint(ctx, name, true)
}

// checkpoint reads checkpoint name of the partition, and with withHead its
// head in the same command. A checkpoint saved by a version that kept
// every checkpoint in the <prefix>checkpoints hash (and not yet under the
// partition's tag) is read from the hash once and written to the new key
// (SETNX: a save that came first wins); the hash is left as it was.
func (l *partitionLog) checkpoint(ctx context.Context, name string, withHead bool) (checkpoint, head uint64, err error) {
	b := l.b
	if err := b.begin(ctx, "load checkpoint"); err != nil {
		return 0, 0, err
	}
	key := l.checkpointKey(name)
	keys := []string{key}
	if withHead {
		keys = append(keys, l.seqKey)
	}
	vals, err := b.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, 0, b.wrap(fmt.Sprintf("load checkpoint %q of partition %d", name, l.p), err)
	}
	if len(vals) != len(keys) {
		return 0, 0, fmt.Errorf("redis load checkpoint %q of partition %d: MGET of %d keys returned %d values", name, l.p, len(keys), len(vals))
	}
	if withHead {
		if head, err = counterValue(vals[1]); err != nil {
			return 0, 0, fmt.Errorf("redis head of partition %d (%s): %w", l.p, l.seqKey, err)
		}
	}
	if vals[0] != nil {
		if checkpoint, err = counterValue(vals[0]); err != nil {
			return 0, 0, fmt.Errorf("redis checkpoint %q of partition %d (%s): %w", name, l.p, key, err)
		}
		return checkpoint, head, nil
	}
	old, err := b.rdb.HGet(ctx, b.checkpointKey, name).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, head, nil
	}
	if err != nil {
		return 0, 0, b.wrap(fmt.Sprintf("load checkpoint %q of partition %d from %s", name, l.p, b.checkpointKey), err)
	}
	if _, err := counterValue(old); err != nil {
		return 0, 0, fmt.Errorf("redis checkpoint %q in %s: %w", name, b.checkpointKey, err)
	}
	if err := b.rdb.SetNX(ctx, key, old, 0).Err(); err != nil {
		return 0, 0, b.wrap(fmt.Sprintf("move checkpoint %q from %s to %s", name, b.checkpointKey, key), err)
	}
	v, err := b.rdb.Get(ctx, key).Result()
	if err != nil {
		return 0, 0, b.wrap(fmt.Sprintf("load checkpoint %q of partition %d", name, l.p), err)
	}
	if checkpoint, err = counterValue(v); err != nil {
		return 0, 0, fmt.Errorf("redis checkpoint %q of partition %d (%s): %w", name, l.p, key, err)
	}
	b.opts.Logger.Info("journal: moved an outbox checkpoint from the checkpoints hash to its partition's key",
		slog.String("name", name), slog.Int("partition", l.p), slog.String("key", key), slog.Uint64("checkpoint", checkpoint))
	return checkpoint, head, nil
}

// counterValue parses a position stored as a string (nil: none, 0).
func counterValue(v any) (uint64, error) {
	if v == nil {
		return 0, nil
	}
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("value %v is not a string", v)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not a position", truncate(s, 40))
	}
	return n, nil
}

// SaveCheckpoint implements persistence.LogCheckpoints.
func (l *partitionLog) SaveCheckpoint(ctx context.Context, name string, pos uint64) error {
	b := l.b
	if err := b.begin(ctx, "save checkpoint"); err != nil {
		return err
	}
	if err := b.rdb.Set(ctx, l.checkpointKey(name), pos, 0).Err(); err != nil {
		return b.wrap(fmt.Sprintf("save checkpoint %q of partition %d", name, l.p), err)
	}
	return nil
}

// SaveSnapshot implements persistence.Snapshots.
func (b *Backend) SaveSnapshot(ctx context.Context, s persistence.Snapshot) error {
	if err := b.begin(ctx, "save snapshot"); err != nil {
		return err
	}
	if s.StreamID == "" {
		return fmt.Errorf("save snapshot: empty stream id: %w", persistence.ErrInvalidArgument)
	}
	err := snapshotScript.Run(ctx, b.rdb, []string{b.snapshotKey(s.StreamID)}, strconv.FormatUint(s.Version, 10), s.Data).Err()
	if err != nil {
		return b.wrap("save snapshot of "+strconv.Quote(s.StreamID), err)
	}
	return nil
}

// LoadSnapshot implements persistence.Snapshots.
func (b *Backend) LoadSnapshot(ctx context.Context, streamID string) (persistence.Snapshot, bool, error) {
	if err := b.begin(ctx, "load snapshot"); err != nil {
		return persistence.Snapshot{}, false, err
	}
	vals, err := b.rdb.HMGet(ctx, b.snapshotKey(streamID), "v", "d").Result()
	if err != nil {
		return persistence.Snapshot{}, false, b.wrap("load snapshot of "+strconv.Quote(streamID), err)
	}
	return parseSnapshot(streamID, vals)
}

// LoadForActivation implements persistence.ActivationLoader: the stream's
// snapshot and its first max records in one round trip (a pipeline; on a
// Redis Cluster the snapshot key may live on another shard than the
// stream's partition, and go-redis asks both at once).
func (b *Backend) LoadForActivation(ctx context.Context, streamID string, max int) (persistence.Snapshot, bool, []persistence.Record, error) {
	if err := b.begin(ctx, "load"); err != nil {
		return persistence.Snapshot{}, false, nil, err
	}
	l := b.partitionOf(streamID)
	keys := []string{l.streamKey(streamID), l.logKey}
	pipe := b.rdb.Pipeline()
	snapCmd := pipe.HMGet(ctx, b.snapshotKey(streamID), "v", "d")
	loadCmd := loadScript.EvalSha(ctx, pipe, keys, 0, max-1)
	_, _ = pipe.Exec(ctx) // each command's error is looked at below
	if err := snapCmd.Err(); err != nil {
		return persistence.Snapshot{}, false, nil, b.wrap("load snapshot of "+strconv.Quote(streamID), err)
	}
	snap, ok, err := parseSnapshot(streamID, snapCmd.Val())
	if err != nil {
		return persistence.Snapshot{}, false, nil, err
	}
	raw, err := loadCmd.Slice()
	if isNoScript(err) {
		// A restarted server forgot the script: Run loads it again.
		raw, err = loadScript.Run(ctx, b.rdb, keys, 0, max-1).Slice()
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		return persistence.Snapshot{}, false, nil, b.wrap("load "+strconv.Quote(streamID), err)
	}
	recs, err := decodeEntries(raw, l.p)
	if err != nil {
		return persistence.Snapshot{}, false, nil, fmt.Errorf("redis load %q: %w", streamID, err)
	}
	return snap, ok, recs, nil
}

// parseSnapshot reads a snapshot hash's v and d fields (HMGET); ok is
// false when either is missing.
func parseSnapshot(streamID string, vals []any) (persistence.Snapshot, bool, error) {
	vs, ok1 := vals[0].(string)
	ds, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return persistence.Snapshot{}, false, nil
	}
	v, err := strconv.ParseUint(vs, 10, 64)
	if err != nil {
		return persistence.Snapshot{}, false, fmt.Errorf("redis load snapshot of %q: version %q: %w", streamID, vs, err)
	}
	return persistence.Snapshot{StreamID: streamID, Version: v, Data: []byte(ds)}, true, nil
}

// ---------------------------------------------------------------- backend

// Ping implements persistence.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.begin(ctx, "ping"); err != nil {
		return err
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return b.wrap("ping", err)
	}
	return nil
}

// Describe implements persistence.Backend. The durability text was learned
// from the server's configuration when New connected.
func (b *Backend) Describe() persistence.Description {
	return persistence.Description{Name: "redis", Address: b.addr, Durability: b.durability, Profile: b.profile}
}

// describeDurability asks the server how it persists writes, and names the
// profile: durable when every append is fsynced and waits for a replica.
func (b *Backend) describeDurability(ctx context.Context) (text, profile string) {
	var wait string
	if b.opts.WaitReplicas > 0 {
		wait = fmt.Sprintf("; every append waits for %d replica(s) (WAIT, %s) or fails as unavailable", b.opts.WaitReplicas, b.opts.WaitTimeout)
	} else {
		wait = "; appends do not wait for replicas (WaitReplicas=0): a failover can lose writes not yet replicated"
	}
	cfg, err := b.rdb.ConfigGet(ctx, "append*").Result()
	if err != nil {
		return "unknown: CONFIG GET was refused (" + err.Error() + "); ask the operator whether appendonly is on" + wait, persistence.ProfileDefault
	}
	save, _ := b.rdb.ConfigGet(ctx, "save").Result()
	profile = persistence.ProfileDefault
	if cfg["appendonly"] == "yes" && cfg["appendfsync"] == "always" && b.opts.WaitReplicas > 0 {
		profile = persistence.ProfileDurable
	}
	return durabilityText(cfg["appendonly"], cfg["appendfsync"], save["save"]) + wait, profile
}

// durabilityText states what a server with these settings keeps.
func durabilityText(appendonly, appendfsync, save string) string {
	switch {
	case appendonly == "":
		return "unknown: the server did not report appendonly"
	case appendonly != "yes":
		if strings.TrimSpace(save) == "" {
			return "appendonly=no, no RDB snapshots: every acknowledged write is lost if redis-server restarts"
		}
		return fmt.Sprintf("appendonly=no, RDB save %q: acknowledged writes since the last snapshot are lost if redis-server restarts", save)
	case appendfsync == "always":
		return "appendonly=yes appendfsync=always: each write is fsynced before it is acknowledged"
	case appendfsync == "everysec":
		return "appendonly=yes appendfsync=everysec: up to about 1 s (2 s on a slow disk) of acknowledged writes can be lost on a crash"
	case appendfsync == "no":
		return "appendonly=yes appendfsync=no: the OS decides when to flush (typically within 30 s); a host crash loses what it had not flushed"
	default:
		return fmt.Sprintf("appendonly=yes appendfsync=%s", appendfsync)
	}
}

// Close implements persistence.Backend: it stops the committer (queued
// appends fail with ErrClosed) and closes the client if New made it (a
// client from Options.Client stays open). It is idempotent.
func (b *Backend) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		if b.stop != nil {
			close(b.stop)
			b.wg.Wait()
			close(b.done)
		}
		if b.ownClient {
			err = b.rdb.Close()
		}
	})
	return err
}
