package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
)

// uniqueNames returns a stream name and subject prefix no other test uses.
func uniqueNames(t testing.TB) (stream, prefix string) {
	t.Helper()
	var b [5]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return "OSTEST_" + id, "ostest." + id
}

// destroy deletes the partition streams, the legacy stream and the buckets
// of opts (test cleanup on a shared server).
func destroy(t testing.TB, url string, opts Options) {
	t.Helper()
	nc, err := natsgo.Connect(url, natsgo.Timeout(2*time.Second))
	if err != nil {
		t.Logf("cleanup: connect: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var streams []string
	for name := range names.Name() {
		if name == opts.Stream || strings.HasPrefix(name, opts.Stream+"_P") {
			streams = append(streams, name)
		}
	}
	if err := names.Err(); err != nil {
		t.Logf("cleanup: list streams: %v", err)
	}
	for _, name := range streams {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("cleanup: delete stream %s: %v", name, err)
		}
	}
	for _, bucket := range []string{opts.metaBucket(), opts.checkpointBucket(), opts.snapshotBucket(), opts.rmsnapBucket()} {
		if err := js.DeleteKeyValue(ctx, bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Logf("cleanup: delete bucket %s: %v", bucket, err)
		}
	}
}

// newBackend opens a backend on url with fresh names, destroyed when the
// test ends.
func newBackend(t testing.TB, url string, opts Options) *Backend {
	t.Helper()
	opts.URL = url
	opts.Stream, opts.SubjectPrefix = uniqueNames(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("nats.New(%s): %v", url, err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		destroy(t, url, b.opts)
	})
	return b
}

func TestContract(t *testing.T) {
	url := testservers.NATS(t)
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, url, Options{})
	}, journaltest.Features{Reopen: reopener(url, Options{})})
}

// reopener is the contract's Reopen on url: backends on one set of fresh
// names, each opened with its own partition count.
func reopener(url string, base Options) func(t *testing.T) func(int) (persistence.Backend, error) {
	return func(t *testing.T) func(int) (persistence.Backend, error) {
		o := base
		o.URL = url
		o.Stream, o.SubjectPrefix = uniqueNames(t)
		t.Cleanup(func() { destroy(t, url, o) })
		return func(n int) (persistence.Backend, error) {
			o := o
			o.Partitions = n
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := New(ctx, o)
			if err != nil {
				return nil, err
			}
			return b, nil
		}
	}
}

// TestContractPrivateServer runs the suite, restart included, on a private
// embedded nats-server (the version in go.mod, with per-message TTL) that the
// suite stops and starts again.
func TestContractPrivateServer(t *testing.T) {
	srv := testservers.StartNATS(t)
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, srv.URL(), Options{})
	}, journaltest.Features{
		Restart: func(t *testing.T) { srv.Restart() },
		Reopen:  reopener(srv.URL(), Options{}),
	})
}

// TestContractCluster runs the suite on a private three-server JetStream
// cluster with every stream and bucket on three replicas (four partitions,
// so that each case creates four R3 streams, not sixteen).
func TestContractCluster(t *testing.T) {
	c := cluster(t)
	opts := Options{Replicas: 3, Partitions: 4}
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, c.URLs(), opts)
	}, journaltest.Features{Reopen: reopener(c.URLs(), Options{Replicas: 3})})
}

// TestLegacyJournalRefused: a single-stream journal (the layout before
// partitions) with messages and no partition count makes New fail with
// ErrLegacyJournal, naming the stream; an empty one, or a stream of that
// name on other subjects, does not.
func TestLegacyJournalRefused(t *testing.T) {
	url := testservers.NATS(t)
	o := Options{URL: url}
	o.Stream, o.SubjectPrefix = uniqueNames(t)
	t.Cleanup(func() { destroy(t, url, o) })
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: o.Stream, Subjects: []string{o.SubjectPrefix + ".*"}}); err != nil {
		t.Fatal(err)
	}
	// Empty: nothing to lose, the partitioned journal starts beside it.
	b, err := New(ctx, o)
	if err != nil {
		t.Fatalf("New beside an empty legacy stream: %v", err)
	}
	_ = b.Close()
	destroy(t, url, o)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: o.Stream, Subjects: []string{o.SubjectPrefix + ".*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, o.SubjectPrefix+".order-1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	b, err = New(ctx, o)
	if err == nil {
		_ = b.Close()
		t.Fatal("New on a legacy journal with data succeeded")
	}
	if !errors.Is(err, ErrLegacyJournal) || !strings.Contains(err.Error(), o.Stream) || !strings.Contains(err.Error(), "1 messages") {
		t.Fatalf("New on a legacy journal: %v, want ErrLegacyJournal naming %s and its message count", err, o.Stream)
	}
	t.Logf("refused: %v", err)
}

// TestMemoryStorage checks a backend on memory storage: it works and says
// what it keeps.
func TestMemoryStorage(t *testing.T) {
	b := newBackend(t, testservers.NATS(t), Options{Storage: jetstream.MemoryStorage})
	ctx := context.Background()
	if v, err := b.Append(ctx, "m", 0, []persistence.Record{{Type: "A"}, {Type: "B"}}); err != nil || v != 2 {
		t.Fatalf("append: %d %v", v, err)
	}
	if rs, err := b.Load(ctx, "m", 0); err != nil || len(rs) != 2 {
		t.Fatalf("load: %d records, %v", len(rs), err)
	}
	if d := b.Describe().Durability; !strings.Contains(d, "memory storage") || !strings.Contains(d, "lost when nats-server restarts") {
		t.Fatalf("durability %q", d)
	}
}

func TestUnreachableServerFailsFast(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testservers.FreePort(t))
	for _, u := range []string{"nats://" + addr, "nats://user:secret@" + addr, addr} {
		start := time.Now()
		b, err := New(context.Background(), Options{URL: u})
		took := time.Since(start)
		if err == nil {
			_ = b.Close()
			t.Fatalf("New(%s) succeeded against a closed port", u)
		}
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("New(%s): %v, want ErrUnavailable", u, err)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Fatalf("error %q does not name %s", err, addr)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("error %q shows the password", err)
		}
		if took > 5*time.Second {
			t.Fatalf("New took %s to fail, want < 5 s", took)
		}
	}
}

// TestServerGoneFailsFast stops a private server under an open backend:
// calls fail with ErrUnavailable within seconds, and work again once the
// server is back.
func TestServerGoneFailsFast(t *testing.T) {
	srv := testservers.StartNATS(t)
	b := newBackend(t, srv.URL(), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := b.Append(ctx, "gone", 0, []persistence.Record{{Type: "Ev", Data: []byte("1")}}); err != nil {
		t.Fatalf("append: %v", err)
	}
	srv.Stop()
	calls := map[string]func() error{
		"append": func() error {
			_, err := b.Append(ctx, "gone", 1, []persistence.Record{{Type: "Ev", Data: []byte("2")}})
			return err
		},
		"load":      func() error { _, err := b.Load(ctx, "gone", 0); return err },
		"read all":  func() error { _, err := b.Log(0).ReadAll(ctx, 0, 10); return err },
		"head":      func() error { _, err := b.Log(0).Head(ctx); return err },
		"ping":      func() error { return b.Ping(ctx) },
		"save snap": func() error { return b.SaveSnapshot(ctx, persistence.Snapshot{StreamID: "gone", Version: 1}) },
		"load cp":   func() error { _, err := b.LoadCheckpoint(ctx, "c"); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("%s with the server stopped: %v, want ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%s took %s to fail", name, took)
		}
	}
	srv.Start()
	waitFor(t, 20*time.Second, func() error { return b.Ping(ctx) })
	if v, err := b.Append(ctx, "gone", 1, []persistence.Record{{Type: "Ev", Data: []byte("2")}}); err != nil || v != 2 {
		t.Fatalf("append after the server came back: %d, %v", v, err)
	}
}

// TestSharedConn hands two backends one connection: both work on it, a
// drop of the server ends their calls at once, and closing them leaves the
// connection open for its owner.
func TestSharedConn(t *testing.T) {
	srv := testservers.StartNATS(t)
	nc, err := natsconn.Connect(context.Background(), natsconn.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var backends []*Backend
	for range 2 {
		b := newBackend(t, srv.URL(), Options{Conn: nc})
		if b.nc != nc {
			t.Fatal("the backend opened a connection of its own")
		}
		if _, err := b.Append(ctx, "shared", 0, []persistence.Record{{Type: "Ev"}}); err != nil {
			t.Fatalf("append through a shared connection: %v", err)
		}
		backends = append(backends, b)
	}
	srv.Stop()
	for _, b := range backends {
		start := time.Now()
		if err := b.Ping(ctx); !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("ping with the server stopped: %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("ping took %s to fail", took)
		}
	}
	srv.Start()
	for _, b := range backends {
		waitFor(t, 20*time.Second, func() error { return b.Ping(ctx) })
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if nc.IsClosed() {
		t.Fatal("closing the backends closed the shared connection")
	}
	o := Options{Conn: nc}
	o.setDefaults()
	if o.URL != srv.URL() {
		t.Fatalf("URL of a backend given only a connection: %q, want %q", o.URL, srv.URL())
	}
}

func TestDescribe(t *testing.T) {
	url := testservers.NATS(t)
	b := newBackend(t, url, Options{})
	d := b.Describe()
	if d.Name != "nats" || d.Address != url {
		t.Fatalf("describe: %+v", d)
	}
	for _, want := range []string{"file storage", "1 replica", "sync_interval"} {
		if !strings.Contains(d.Durability, want) {
			t.Fatalf("durability %q does not mention %q", d.Durability, want)
		}
	}
	t.Logf("shared server %s: %+v", b.nc.ConnectedServerVersion(), d)
}

// TestPasswordNeverShown connects to a private server that requires a user
// and password, and checks that neither Describe nor errors show it.
func TestPasswordNeverShown(t *testing.T) {
	port := testservers.FreePort(t)
	const pw = "s3cr3t-pw"
	srv, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(),
		Username: "alice", Password: pw, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("private nats-server not ready")
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx := context.Background()
	b, err := New(ctx, Options{URL: "nats://alice:" + pw + "@" + addr, Stream: "PW", SubjectPrefix: "pw"})
	if err != nil {
		t.Fatalf("New with a password: %v", err)
	}
	d := b.Describe()
	_ = b.Close()
	if d.Address != "nats://"+addr {
		t.Fatalf("address %q, want nats://%s", d.Address, addr)
	}
	if strings.Contains(d.Address+d.Durability, pw) || strings.Contains(d.Address, "alice") {
		t.Fatalf("describe shows credentials: %+v", d)
	}
	_, err = New(ctx, Options{URL: "nats://alice:wrong-" + pw + "@" + addr, Stream: "PW", SubjectPrefix: "pw"})
	if err == nil {
		t.Fatal("New with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q: shows the password or does not name the server", err)
	}
	if errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("a refused password is reported as unavailable: %v", err)
	}
	t.Logf("wrong password: %v", err)
}

func TestInvalidOrderIDsRefused(t *testing.T) {
	b := newBackend(t, testservers.NATS(t), Options{})
	ctx := context.Background()
	for _, id := range []string{"a.b", "*", ">", "a b", "ü", "a\x00"} {
		if _, err := b.Append(ctx, id, 0, []persistence.Record{{Type: "Ev"}}); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Fatalf("append to %q: %v, want ErrInvalidArgument", id, err)
		}
		if _, err := b.Load(ctx, id, 0); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Fatalf("load %q: %v, want ErrInvalidArgument", id, err)
		}
	}
	// Keys of the buckets may be anything.
	for _, k := range []string{"a.b", "*", "key/with spaces?", "ü"} {
		if err := b.SaveCheckpoint(ctx, k, 7); err != nil {
			t.Fatalf("save checkpoint %q: %v", k, err)
		}
		if p, err := b.LoadCheckpoint(ctx, k); err != nil || p != 7 {
			t.Fatalf("load checkpoint %q: %d %v", k, p, err)
		}
		if err := b.SaveSnapshot(ctx, persistence.Snapshot{StreamID: k, Version: 3, Data: []byte(k)}); err != nil {
			t.Fatalf("save snapshot %q: %v", k, err)
		}
		if s, ok, err := b.LoadSnapshot(ctx, k); err != nil || !ok || s.Version != 3 || string(s.Data) != k {
			t.Fatalf("load snapshot %q: %+v %v %v", k, s, ok, err)
		}
	}
	if _, err := b.Append(ctx, "many", 0, make([]persistence.Record, positionScale+1)); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("append of %d records: %v, want ErrInvalidArgument", positionScale+1, err)
	}
}

// TestStaleCacheAcrossBackends has two backends (two nodes) write the same
// order: each one's cache goes stale, the server's check refuses the stale
// append and the conflict carries the actual version.
func TestStaleCacheAcrossBackends(t *testing.T) {
	url := testservers.NATS(t)
	a := newBackend(t, url, Options{})
	o := a.opts
	o.URL = url
	b, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	rec := func(s string) []persistence.Record { return []persistence.Record{{Type: "Ev", Data: []byte(s)}} }
	if _, err := a.Append(ctx, "o", 0, rec("a1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, "o", 1, rec("b2")); err != nil {
		t.Fatal(err)
	}
	// a's cache says version 1: its append at 1 must be refused.
	_, err = a.Append(ctx, "o", 1, rec("a2"))
	var ce *persistence.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 2 {
		t.Fatalf("stale append: %v, want a conflict with actual 2", err)
	}
	if v, err := a.Append(ctx, "o", 2, rec("a3")); err != nil || v != 3 {
		t.Fatalf("append at the real head: %d %v", v, err)
	}
	// b's cache says 2; the expected version 3 is right, the cached
	// sequence is not: the append succeeds after one lookup.
	if v, err := b.Append(ctx, "o", 3, rec("b4")); err != nil || v != 4 {
		t.Fatalf("append with a stale cached sequence: %d %v", v, err)
	}
	rs, err := a.Load(ctx, "o", 0)
	if err != nil || len(rs) != 4 {
		t.Fatalf("load: %d records, %v", len(rs), err)
	}
	for i, want := range []string{"a1", "b2", "a3", "b4"} {
		if string(rs[i].Data) != want {
			t.Fatalf("record %d is %q, want %q", i, rs[i].Data, want)
		}
	}
}

// TestLoadLongStreamPaths checks Load of a long order (next-by-subject gets
// after the cached prefix, and from the start without a cache) with single-
// and multi-record messages mixed, and from every version.
func TestLoadLongStreamPaths(t *testing.T) {
	for _, cache := range []int{0, -1} {
		t.Run(fmt.Sprintf("CacheSize=%d", cache), func(t *testing.T) { testLoadLongStreamPaths(t, cache) })
	}
}

func testLoadLongStreamPaths(t *testing.T, cacheSize int) {
	b := newBackend(t, testservers.NATS(t), Options{CacheSize: cacheSize})
	ctx := context.Background()
	var v uint64
	for i := range 15 {
		n := 1 + i%4
		rs := make([]persistence.Record, n)
		for j := range rs {
			rs[j] = persistence.Record{Type: "Ev", Data: []byte(fmt.Sprint(v + uint64(j) + 1))}
		}
		// Interleave another order so that subjects share the stream.
		if _, err := b.Append(ctx, fmt.Sprintf("other%d", i), 0, rs[:1]); err != nil {
			t.Fatal(err)
		}
		var err error
		if v, err = b.Append(ctx, "long", v, rs); err != nil {
			t.Fatal(err)
		}
		for from := uint64(0); from <= v+1; from++ {
			got, err := b.Load(ctx, "long", from)
			if err != nil {
				t.Fatalf("load from %d at version %d: %v", from, v, err)
			}
			want := int(v) - int(max(from, 1)) + 1
			if want < 0 {
				want = 0
			}
			if len(got) != want {
				t.Fatalf("load from %d at version %d: %d records, want %d", from, v, len(got), want)
			}
			for k, r := range got {
				if r.Version != max(from, 1)+uint64(k) || string(r.Data) != fmt.Sprint(r.Version) {
					t.Fatalf("load from %d: record %d is version %d %q", from, k, r.Version, r.Data)
				}
			}
		}
	}
	if v <= 16 {
		t.Fatalf("the stream reached only %d records, want a long order", v)
	}
}

func TestPositions(t *testing.T) {
	b := newBackend(t, testservers.NATS(t), Options{Partitions: 1})
	ctx := context.Background()
	if _, err := b.Append(ctx, "p", 0, []persistence.Record{{Type: "A"}, {Type: "B"}, {Type: "C"}}); err != nil {
		t.Fatal(err)
	}
	rs, err := b.Load(ctx, "p", 0)
	if err != nil {
		t.Fatal(err)
	}
	seq := rs[0].Position / positionScale
	for i, r := range rs {
		if r.Position != seq*positionScale+uint64(i) {
			t.Fatalf("record %d position %d, want %d", i, r.Position, seq*positionScale+uint64(i))
		}
	}
	head, err := b.Log(0).Head(ctx)
	if err != nil || head != rs[2].Position {
		t.Fatalf("head %d, want %d: %v", head, rs[2].Position, err)
	}
	// Resuming in the middle of a multi-record message.
	page, err := b.Log(0).ReadAll(ctx, rs[0].Position, 10)
	if err != nil || len(page) != 2 || page[0].Type != "B" {
		t.Fatalf("read all after the first record of a message: %+v %v", page, err)
	}
}

// TestReadAllStopsBeforeAMalformedMessage: a read that is full before a
// message without the journal headers returns what it wanted; only a read
// that reaches the message reports it (the read model's rebuild relies on it
// to get every record before such a message).
func TestReadAllStopsBeforeAMalformedMessage(t *testing.T) {
	b := newBackend(t, testservers.NATS(t), Options{Partitions: 1})
	ctx := context.Background()
	if _, err := b.Append(ctx, "p", 0, []persistence.Record{{Type: "A"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.PublishMsg(ctx, &natsgo.Msg{Subject: b.subject("junk"), Data: []byte("junk")}); err != nil {
		t.Fatal(err)
	}
	page, err := b.Log(0).ReadAll(ctx, 0, 1)
	if err != nil || len(page) != 1 || page[0].Type != "A" {
		t.Fatalf("read all of one record before the malformed message: %+v %v", page, err)
	}
	if _, err := b.Log(0).ReadAll(ctx, page[0].Position, 1); !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("reading the malformed message: %v, want ErrCorrupt", err)
	}
}

// appendN appends one single-record message of type prefix<i> per i to an
// order of its own.
func appendN(t *testing.T, b *Backend, prefix string, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		if _, err := b.Append(context.Background(), id, 0, []persistence.Record{{Type: id}}); err != nil {
			t.Fatal(err)
		}
	}
}

// wantCorrupt checks that err is a *persistence.CorruptRecordError for the
// message at stream sequence seq.
func wantCorrupt(t *testing.T, err error, seq uint64, reason string) *persistence.CorruptRecordError {
	t.Helper()
	var ce *persistence.CorruptRecordError
	if !errors.As(err, &ce) || !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("got %v, want a *CorruptRecordError", err)
	}
	if ce.Position != seq*positionScale || ce.Next != seq*positionScale+positionScale-1 || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("corrupt %+v, want position %d, next %d, reason with %q", ce, seq*positionScale, seq*positionScale+positionScale-1, reason)
	}
	return ce
}

// readThrough reads the whole global log in pages of limit the way the
// outbox does, skipping corrupt messages, and returns the record types and
// the positions skipped.
func readThrough(t *testing.T, b *Backend, limit int) (types []string, skipped []uint64) {
	t.Helper()
	var after uint64
	for range 10000 {
		page, err := b.Log(0).ReadAll(context.Background(), after, limit)
		var ce *persistence.CorruptRecordError
		switch {
		case errors.As(err, &ce):
			if ce.Next <= after {
				t.Fatalf("corrupt %+v does not move past %d", ce, after)
			}
			skipped = append(skipped, ce.Position)
			after = ce.Next
			continue
		case err != nil:
			t.Fatal(err)
		case len(page) == 0:
			return types, skipped
		}
		for _, r := range page {
			types = append(types, r.Type)
		}
		after = page[len(page)-1].Position
	}
	t.Fatal("the read never ended")
	return nil, nil
}

// TestReadAllAroundCorruptMessages: messages on journal subjects that are
// not journal messages (no headers; a truncated envelope), between and
// after good ones, read with parallel gets (short reads) and through a
// consumer (long reads). ReadAll returns the records before one, reports
// the one it starts at with a *CorruptRecordError whose Next resumes right
// after it, and reads on from there; Head and Behind count past a bad last
// message.
func TestReadAllAroundCorruptMessages(t *testing.T) {
	b := newBackend(t, testservers.StartNATS(t).URL(), Options{Partitions: 1})
	ctx := context.Background()
	publish := func(m *natsgo.Msg) uint64 {
		t.Helper()
		ack, err := b.js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	appendN(t, b, "a", 70) // sequences 1-70
	if _, err := b.Append(ctx, "multi", 0, []persistence.Record{{Type: "m0"}, {Type: "m1"}, {Type: "m2"}}); err != nil {
		t.Fatal(err) // sequence 71: positions 71000-71002
	}
	noHeaders := publish(&natsgo.Msg{Subject: b.subject("junk"), Data: []byte("junk")})
	truncated := publish(&natsgo.Msg{Subject: b.subject("junk2"), Data: []byte{9, 'x'},
		Header: natsgo.Header{hdrVersion: {"1"}, hdrCount: {"2"}}})
	appendN(t, b, "b", 70)

	// Long read from the start (a consumer): everything before the first.
	page, err := b.Log(0).ReadAll(ctx, 0, 1000)
	if err != nil || len(page) != 73 || page[72].Type != "m2" {
		t.Fatalf("read all from 0: %d records, %v", len(page), err)
	}
	// Short read from the middle of the multi-record message.
	page, err = b.Log(0).ReadAll(ctx, 71000, 10)
	if err != nil || len(page) != 2 || page[0].Type != "m1" || page[1].Type != "m2" {
		t.Fatalf("read all after 71000: %+v %v", page, err)
	}
	// At it: reported, for short and long reads alike.
	_, err = b.Log(0).ReadAll(ctx, 71002, 10)
	ce := wantCorrupt(t, err, noHeaders, "without a valid "+hdrVersion)
	_, err = b.Log(0).ReadAll(ctx, 71002, 1000)
	wantCorrupt(t, err, noHeaders, "without a valid "+hdrVersion)
	// From within its positions it is still the next entry.
	_, err = b.Log(0).ReadAll(ctx, ce.Position, 10)
	wantCorrupt(t, err, noHeaders, "junk")
	// After it: the next one, then the rest.
	_, err = b.Log(0).ReadAll(ctx, ce.Next, 1000)
	ce = wantCorrupt(t, err, truncated, "envelope truncated")
	page, err = b.Log(0).ReadAll(ctx, ce.Next, 1000)
	if err != nil || len(page) != 70 || page[0].Type != "b0" || page[0].Position != (truncated+1)*positionScale {
		t.Fatalf("read all after the corrupt messages: %d records, %v", len(page), err)
	}
	page, err = b.Log(0).ReadAll(ctx, ce.Next, 5)
	if err != nil || len(page) != 5 || page[4].Type != "b4" {
		t.Fatalf("short read after the corrupt messages: %+v %v", page, err)
	}

	for _, limit := range []int{1, 7, 100, 1000} {
		types, skipped := readThrough(t, b, limit)
		if len(types) != 143 || fmt.Sprint(skipped) != fmt.Sprint([]uint64{noHeaders * positionScale, truncated * positionScale}) {
			t.Fatalf("limit %d: %d records, skipped %v", limit, len(types), skipped)
		}
	}

	// A bad last message: Head and Behind stand past it once it is skipped.
	last := publish(&natsgo.Msg{Subject: b.subject("junk"), Data: []byte("junk")})
	head, err := b.Log(0).Head(ctx)
	if err != nil || head != last*positionScale+positionScale-1 {
		t.Fatalf("head %d %v, want %d", head, err, last*positionScale+positionScale-1)
	}
	before := (last - 1) * positionScale
	_, err = b.Log(0).ReadAll(ctx, before, 10)
	ce = wantCorrupt(t, err, last, "junk")
	if n, err := b.Log(0).Behind(ctx, before); err != nil || n != 1 {
		t.Fatalf("behind before the last message: %d %v", n, err)
	}
	if n, err := b.Log(0).Behind(ctx, ce.Next); err != nil || n != 0 {
		t.Fatalf("behind after skipping the last message: %d %v", n, err)
	}
	if page, err := b.Log(0).ReadAll(ctx, ce.Next, 10); err != nil || len(page) != 0 {
		t.Fatalf("read all after the last message: %+v %v", page, err)
	}
	// The order its subject names cannot be loaded; the others can.
	if _, err := b.Load(ctx, "junk", 1); err == nil {
		t.Fatal("load of the order of a corrupt message succeeded")
	}
	if rs, err := b.Load(ctx, "b3", 1); err != nil || len(rs) != 1 {
		t.Fatalf("load b3: %+v %v", rs, err)
	}
}

// waitFor polls f until it returns nil or the time is up.
func waitFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	poll.Eventually(t, total, f)
}

// TestConcurrentNodes has several backends (nodes, each with its own cache)
// write one order concurrently, reloading on conflict, and checks that every
// node then loads the same history with each winner's record at its version.
func TestConcurrentNodes(t *testing.T) {
	url := testservers.NATS(t)
	first := newBackend(t, url, Options{})
	nodes := []*Backend{first}
	for range 3 {
		o := first.opts
		b, err := New(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		nodes = append(nodes, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const perNode, rounds = 3, 8
	var (
		mu   sync.Mutex
		wins = map[uint64]string{}
		wg   sync.WaitGroup
	)
	for n, b := range nodes {
		for w := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					tag := fmt.Sprintf("n%d-w%d-r%d", n, w, r)
					for {
						cur, err := b.Load(ctx, "hot", 0)
						if err != nil {
							t.Errorf("load: %v", err)
							return
						}
						v, err := b.Append(ctx, "hot", uint64(len(cur)), []persistence.Record{{Type: "Ev", Data: []byte(tag)}})
						if errors.Is(err, persistence.ErrVersionConflict) {
							continue
						}
						if err != nil {
							t.Errorf("append: %v", err)
							return
						}
						mu.Lock()
						if prev, dup := wins[v]; dup {
							t.Errorf("version %d won twice: %s and %s", v, prev, tag)
						}
						wins[v] = tag
						mu.Unlock()
						break
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := len(nodes) * perNode * rounds
	for i, b := range nodes {
		for _, from := range []uint64{0, 5, uint64(total)} {
			rs, err := b.Load(ctx, "hot", from)
			if err != nil {
				t.Fatalf("node %d load from %d: %v", i, from, err)
			}
			if want := total - int(max(from, 1)) + 1; len(rs) != want {
				t.Fatalf("node %d load from %d: %d records, want %d", i, from, len(rs), want)
			}
			for _, r := range rs {
				if wins[r.Version] != string(r.Data) {
					t.Fatalf("node %d: version %d holds %q, %q was told it won", i, r.Version, r.Data, wins[r.Version])
				}
			}
		}
	}
}

// TestStoredPartitionCountUnreadable: a partition count in the meta bucket
// that is not a number in range (a hand-made write) makes New fail with
// ErrCorrupt naming the bucket, instead of guessing a count.
func TestStoredPartitionCountUnreadable(t *testing.T) {
	url := testservers.NATS(t)
	o := Options{URL: url}
	o.Stream, o.SubjectPrefix = uniqueNames(t)
	t.Cleanup(func() { destroy(t, url, o) })
	b, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, o.Stream+"_meta")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"sixteen", "0", "100000"} {
		if _, err := kv.Put(ctx, "partitions", []byte(bad)); err != nil {
			t.Fatal(err)
		}
		b, err := New(ctx, o)
		if err == nil {
			_ = b.Close()
			t.Fatalf("New with a stored count %q succeeded", bad)
		}
		if !errors.Is(err, persistence.ErrCorrupt) || !strings.Contains(err.Error(), o.Stream+"_meta") {
			t.Fatalf("New with a stored count %q: %v, want ErrCorrupt naming the bucket", bad, err)
		}
	}
}
