package redis_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/redis"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{}) // our own logs say what failed
	code := m.Run()
	if code == 0 {
		// No goroutine may outlive the tests. go-redis probes a dead
		// server from a goroutine of its own (ConnPool.tryDial) that
		// notices the client was closed within a second: allow for it,
		// but it must end.
		deadline := time.Now().Add(5 * time.Second)
		for err := goleak.Find(); err != nil; err = goleak.Find() {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
				code = 1
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func uniqueKey(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return "ordersystem-test:transport:" + name + ":" + hex.EncodeToString(b[:])
}

// plainClient is a go-redis client that does not go through our code; it
// deletes key when the test ends.
func plainClient(t testing.TB, addr, key string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Del(ctx, key).Err(); err != nil {
			t.Errorf("delete test key %s: %v", key, err)
		}
		_ = c.Close()
	})
	return c
}

// newTransport returns a transport on a unique key of addr, whose key is
// deleted when the test ends.
func newTransport(t testing.TB, addr string, opts redis.Options) *redis.Transport {
	t.Helper()
	opts.Addr = addr
	if opts.Key == "" {
		opts.Key = uniqueKey(t)
		plainClient(t, addr, opts.Key)
	}
	if opts.Logger == nil {
		opts.Logger = transporttest.Logger(t)
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := redis.New(ctx, opts)
	if err != nil {
		t.Fatalf("new redis transport: %v", err)
	}
	return tr
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	addr := testservers.Redis(t)
	transporttest.Run(t, func(t *testing.T) transport.Transport {
		return newTransport(t, addr, redis.Options{})
	}, transporttest.Features{DuplicatePublishDelivered: true})
}

// TestRestart restarts a private redis-server (append-only file, so it keeps
// its data) under a running durable group.
func TestRestart(t *testing.T) {
	srv := testservers.StartRedis(t)
	// A private server: the default key, nothing to clean up.
	tr := newTransport(t, srv.Addr(), redis.Options{Key: redis.DefaultKey, CommandTimeout: time.Second})
	defer tr.Close()
	transporttest.RunRestart(t, tr, srv.Restart)
}

// TestWireFormat reads what Publish wrote with a plain client: this is the
// format other services consume.
func TestWireFormat(t *testing.T) {
	addr := testservers.Redis(t)
	tr := newTransport(t, addr, redis.Options{})
	defer tr.Close()
	plain := plainClient(t, addr, tr.Key())
	msgs := transporttest.Interleaved("wire", 3, 2)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	entries, err := plain.XRange(ctxT(t), tr.Key(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(msgs) {
		t.Fatalf("stream has %d entries, want %d", len(entries), len(msgs))
	}
	for i, e := range entries {
		m := msgs[i]
		want := map[string]string{
			"eventId": m.OrderID + ":" + strconv.FormatUint(m.Version, 10),
			"type":    m.Type,
			"payload": string(m.Payload),
			"orderId": m.OrderID,
			"version": strconv.FormatUint(m.Version, 10),
		}
		if len(e.Values) != len(want) {
			t.Fatalf("entry %d has fields %v, want exactly %v", i, e.Values, want)
		}
		for k, v := range want {
			if got, _ := e.Values[k].(string); got != v {
				t.Fatalf("entry %d field %s = %q, want %q", i, k, got, v)
			}
		}
	}
}

// TestForeignEntries: entries another producer wrote with only the three
// documented fields are delivered; entries that are not order events are
// skipped and acknowledged.
func TestForeignEntries(t *testing.T) {
	addr := testservers.Redis(t)
	tr := newTransport(t, addr, redis.Options{})
	defer tr.Close()
	plain := plainClient(t, addr, tr.Key())
	r := transporttest.NewRecorder(t)
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	payload := []byte{0, 1, 2, 0xff}
	for _, vals := range [][]any{
		{"junk", "1"},
		{"eventId", "ord:1:2:3", "type", "OrderPaid", "payload", payload},
	} {
		if err := plain.XAdd(ctxT(t), &goredis.XAddArgs{Stream: tr.Key(), Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitFor(t, "group", []string{"ord:1:2:3"}, 10*time.Second)
	got := r.Accepted()
	if len(got) != 1 || got[0].OrderID != "ord:1:2" || got[0].Version != 3 || got[0].Type != "OrderPaid" || !bytes.Equal(got[0].Payload, payload) {
		t.Fatalf("got %+v", got)
	}
	waitNoPending(t, plain, tr.Key(), "g")
}

func waitNoPending(t *testing.T, c *goredis.Client, key, group string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := c.XPending(ctxT(t), key, group).Result()
		if err != nil {
			t.Fatal(err)
		}
		if p.Count == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still pending in group %s", p.Count, group)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClaimsAbandonedEntries: entries a dead consumer read but never
// acknowledged are taken over after ClaimIdle (XAUTOCLAIM).
func TestClaimsAbandonedEntries(t *testing.T) {
	addr := testservers.Redis(t)
	tr := newTransport(t, addr, redis.Options{ClaimIdle: 200 * time.Millisecond})
	defer tr.Close()
	plain := plainClient(t, addr, tr.Key())
	if err := plain.XGroupCreateMkStream(ctxT(t), tr.Key(), "g", "$").Err(); err != nil {
		t.Fatal(err)
	}
	msgs := transporttest.Interleaved("claim", 5, 4)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	// A consumer reads everything and dies without acknowledging.
	res, err := plain.XReadGroup(ctxT(t), &goredis.XReadGroupArgs{
		Group: "g", Consumer: "dead", Streams: []string{tr.Key(), ">"}, Block: -1,
	}).Result()
	if err != nil || len(res[0].Messages) != len(msgs) {
		t.Fatalf("dead consumer read %v, %v", res, err)
	}
	start := time.Now()
	r := transporttest.NewRecorder(t)
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r.WaitFor(t, "surviving member", idsOf(msgs), 10*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("entries taken over after %v, before ClaimIdle", d)
	}
	transporttestCheckOrder(t, r.Accepted())
	waitNoPending(t, plain, tr.Key(), "g")
}

// TestReadsOwnPendingAtStart: a member whose consumer name already has
// pending entries (a restarted process with a stable Consumer) gets them at
// once, without waiting for ClaimIdle.
func TestReadsOwnPendingAtStart(t *testing.T) {
	addr := testservers.Redis(t)
	tr := newTransport(t, addr, redis.Options{Consumer: "node-1", ClaimIdle: time.Hour})
	defer tr.Close()
	plain := plainClient(t, addr, tr.Key())
	if err := plain.XGroupCreateMkStream(ctxT(t), tr.Key(), "g", "$").Err(); err != nil {
		t.Fatal(err)
	}
	msgs := transporttest.Interleaved("own", 3, 3)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	if err := plain.XReadGroup(ctxT(t), &goredis.XReadGroupArgs{
		Group: "g", Consumer: "node-1", Streams: []string{tr.Key(), ">"}, Block: -1,
	}).Err(); err != nil {
		t.Fatal(err)
	}
	r := transporttest.NewRecorder(t)
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	r.WaitFor(t, "member with pending entries", idsOf(msgs), 5*time.Second)
	waitNoPending(t, plain, tr.Key(), "g")
	_ = sub.Close()
	// Closed with nothing pending: its consumer is gone from the group.
	consumers, err := plain.XInfoConsumers(ctxT(t), tr.Key(), "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(consumers) != 0 {
		t.Fatalf("consumers left after close: %+v", consumers)
	}
}

// TestGroupRecreated: when the key (and with it the group) disappears under
// a running group, the group is recreated and later messages still arrive.
func TestGroupRecreated(t *testing.T) {
	addr := testservers.Redis(t)
	tr := newTransport(t, addr, redis.Options{Block: 100 * time.Millisecond})
	defer tr.Close()
	plain := plainClient(t, addr, tr.Key())
	r := transporttest.NewRecorder(t)
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := plain.Del(ctxT(t), tr.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	msgs := transporttest.Interleaved("again", 2, 2)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(t, "group after its key was deleted", idsOf(msgs), 10*time.Second)
}

func TestMaxLenTrims(t *testing.T) {
	addr := testservers.Redis(t)
	tr := newTransport(t, addr, redis.Options{MaxLen: 100})
	defer tr.Close()
	plain := plainClient(t, addr, tr.Key())
	for i := range 20 {
		if err := tr.Publish(ctxT(t), transporttest.Interleaved(fmt.Sprint("t", i), 10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := plain.XLen(ctxT(t), tr.Key()).Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole macro nodes (100 entries by default): about 100.
	if n < 100 || n > 300 {
		t.Fatalf("stream length %d after 2000 publishes with MaxLen ~100", n)
	}
}

func TestNewUnreachable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testservers.FreePort(t))
	for _, a := range []string{addr, "redis://" + addr + "/0"} {
		start := time.Now()
		tr, err := redis.New(context.Background(), redis.Options{Addr: a})
		if err == nil {
			_ = tr.Close()
			t.Fatalf("New(%s) succeeded with nothing listening", a)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("New(%s) took %v to fail", a, d)
		}
		if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
			t.Fatalf("New(%s): %v; want ErrUnavailable naming %s", a, err, addr)
		}
		t.Logf("%v (after %v)", err, time.Since(start))
	}
}

func TestOptions(t *testing.T) {
	addr := testservers.Redis(t)
	for _, o := range []redis.Options{
		{},
		{Addr: addr, BatchSize: -1},
		{Addr: addr, RetryMin: time.Second, RetryMax: time.Millisecond},
		{Addr: "redis://[bad"},
	} {
		if tr, err := redis.New(context.Background(), o); err == nil {
			_ = tr.Close()
			t.Errorf("New(%+v) accepted", o)
		}
	}
	// A URL works as Addr.
	key := uniqueKey(t)
	plainClient(t, addr, key)
	tr := newTransport(t, "redis://"+addr+"/0", redis.Options{Key: key})
	defer tr.Close()
	if err := tr.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if tr.Name() != "redis" {
		t.Fatalf("name %q", tr.Name())
	}
}

// TestSharedClient runs a transport on a client it is handed: a single-server
// client (blocking reads on readers of their own) and a client of another
// kind (blocking reads through it). Both deliver, close promptly and leave
// the client open.
func TestSharedClient(t *testing.T) {
	addr := testservers.Redis(t)
	c, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, client := range map[string]goredis.UniversalClient{
		"single-server": c,
		"other kind":    struct{ goredis.UniversalClient }{c}, // hides Options
	} {
		t.Run(name, func(t *testing.T) {
			key := uniqueKey(t)
			plainClient(t, addr, key)
			tr, err := redis.New(ctxT(t), redis.Options{Client: client, Key: key, Logger: transporttest.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			r := transporttest.NewRecorder(t)
			group, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
			if err != nil {
				t.Fatal(err)
			}
			eph := transporttest.NewRecorder(t)
			if _, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{}, eph.Handle); err != nil {
				t.Fatal(err)
			}
			msgs := transporttest.Interleaved("shared", 2, 2)
			if err := tr.Publish(ctxT(t), msgs); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(t, "group on a shared client", idsOf(msgs), 10*time.Second)
			eph.WaitFor(t, "ephemeral on a shared client", idsOf(msgs), 10*time.Second)
			start := time.Now()
			if err := group.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("closing took %v while blocking reads waited", d)
			}
			if err := c.Ping(ctxT(t)).Err(); err != nil {
				t.Fatalf("the shared client after Close: %v (the transport closed it)", err)
			}
		})
	}
}

func idsOf(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID()
	}
	return out
}

func transporttestCheckOrder(t *testing.T, got []transport.Message) {
	t.Helper()
	last := map[string]uint64{}
	for _, m := range got {
		if m.Version <= last[m.OrderID] {
			t.Fatalf("%s after version %d", m.ID(), last[m.OrderID])
		}
		last[m.OrderID] = m.Version
	}
}

// TestServerDown kills a private redis-server under a running transport.
func TestServerDown(t *testing.T) {
	srv := testservers.StartRedis(t)
	tr := newTransport(t, srv.Addr(), redis.Options{Key: redis.DefaultKey, CommandTimeout: time.Second})
	defer tr.Close()
	transporttest.RunServerDown(t, tr, srv.Stop)
}
