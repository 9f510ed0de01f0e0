package nats_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/nats"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// plainJS is a nats.go JetStream client that does not go through our code.
func plainJS(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// uniqueOptions returns a unique stream name and subject prefix (two streams
// cannot share subjects) and deletes the stream when the test ends.
func uniqueOptions(t testing.TB, url string) nats.Options {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	o := nats.Options{
		URL:           url,
		Stream:        "TEST_TRANSPORT_" + strings.ToUpper(tag),
		SubjectPrefix: "test." + tag + ".orders.events",
	}
	js := plainJS(t, url)
	t.Cleanup(func() {
		// On a private cluster whose server a test killed, the delete waits
		// for a new meta leader (5-8 s): try for 20 s. Such a cluster goes
		// away with the test, so there a stream left behind is only logged.
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = js.DeleteStream(ctx, o.Stream)
			cancel()
			if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
				return
			}
		}
		if strings.Contains(url, ",") {
			t.Logf("delete test stream %s on the private cluster: %v", o.Stream, err)
			return
		}
		t.Errorf("delete test stream %s: %v", o.Stream, err)
	})
	return o
}

func newTransport(t testing.TB, opts nats.Options) *nats.Transport {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = transporttest.Logger(t)
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := nats.New(ctx, opts)
	if err != nil {
		t.Fatalf("new nats transport: %v", err)
	}
	return tr
}

func TestContract(t *testing.T) {
	url := testservers.NATS(t)
	transporttest.Run(t, func(t *testing.T) transport.Transport {
		return newTransport(t, uniqueOptions(t, url))
	}, transporttest.Features{DuplicatePublishDelivered: false})
}

// TestSharedConn runs two transports (two streams) on one connection they
// are handed: both deliver, and closing them leaves it open.
func TestSharedConn(t *testing.T) {
	url := testservers.NATS(t)
	nc, err := natsconn.Connect(ctxT(t), natsconn.Options{URL: url, Name: "shared-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var trs []*nats.Transport
	for i := range 2 {
		o := uniqueOptions(t, url)
		o.Conn, o.URL = nc, ""
		tr := newTransport(t, o)
		defer tr.Close()
		r := transporttest.NewRecorder(t)
		sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		msgs := transporttest.Interleaved(fmt.Sprint("shared", i), 2, 2)
		if err := tr.Publish(ctxT(t), msgs); err != nil {
			t.Fatal(err)
		}
		want := make([]string, len(msgs))
		for j, m := range msgs {
			want[j] = m.ID()
		}
		r.WaitFor(t, "group on a shared connection", want, 10*time.Second)
		trs = append(trs, tr)
	}
	for _, tr := range trs {
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if nc.IsClosed() {
		t.Fatal("closing the transports closed the shared connection")
	}
	if err := nc.FlushTimeout(time.Second); err != nil {
		t.Fatalf("the shared connection after Close: %v", err)
	}
}

// TestRestart restarts a private embedded server (file storage, so the
// stream and consumers survive) under a running durable group.
func TestRestart(t *testing.T) {
	srv := testservers.StartNATS(t)
	// A private server: the default stream and subjects, nothing to clean up.
	tr := newTransport(t, nats.Options{URL: srv.URL(), AckTimeout: time.Second, RequestTimeout: time.Second})
	defer tr.Close()
	transporttest.RunRestart(t, tr, srv.Restart)
}

// TestWireFormat reads what Publish wrote with a plain jetstream consumer:
// this is the format other services consume.
func TestWireFormat(t *testing.T) {
	url := testservers.NATS(t)
	o := uniqueOptions(t, url)
	tr := newTransport(t, o)
	defer tr.Close()
	msgs := transporttest.Interleaved("wire", 3, 2)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	js := plainJS(t, url)
	info, err := js.Stream(ctxT(t), o.Stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != o.SubjectPrefix+".*" || cfg.Duplicates != nats.DefaultDuplicateWindow {
		t.Fatalf("stream config subjects %v duplicates %v", cfg.Subjects, cfg.Duplicates)
	}
	cons, err := js.OrderedConsumer(ctxT(t), o.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(msgs), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for got := range batch.Messages() {
		m := msgs[i]
		if want := o.SubjectPrefix + "." + m.Type; got.Subject() != want {
			t.Fatalf("message %d subject %q, want %q", i, got.Subject(), want)
		}
		h := got.Headers()
		for k, v := range map[string]string{
			"Nats-Msg-Id":          m.OrderID + ":" + strconv.FormatUint(m.Version, 10),
			"Ordersystem-Order-Id": m.OrderID,
			"Ordersystem-Version":  strconv.FormatUint(m.Version, 10),
			"Ordersystem-Type":     m.Type,
		} {
			if h.Get(k) != v {
				t.Fatalf("message %d header %s = %q, want %q", i, k, h.Get(k), v)
			}
		}
		if !bytes.Equal(got.Data(), m.Payload) {
			t.Fatalf("message %d data %q, want %q", i, got.Data(), m.Payload)
		}
		i++
	}
	if batch.Error() != nil || i != len(msgs) {
		t.Fatalf("read %d of %d messages: %v", i, len(msgs), batch.Error())
	}
}

// TestForeignMessages: a message another producer published with only the
// documented Nats-Msg-Id header is delivered; one without an event id is
// skipped.
func TestForeignMessages(t *testing.T) {
	url := testservers.NATS(t)
	o := uniqueOptions(t, url)
	tr := newTransport(t, o)
	defer tr.Close()
	r := transporttest.NewRecorder(t)
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	js := plainJS(t, url)
	if _, err := js.Publish(ctxT(t), o.SubjectPrefix+".OrderPaid", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	payload := []byte{0, 1, 0xff}
	if _, err := js.PublishMsg(ctxT(t), &natsgo.Msg{
		Subject: o.SubjectPrefix + ".OrderPaid", Data: payload,
		Header: natsgo.Header{"Nats-Msg-Id": {"ord:x:9"}},
	}); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(t, "group", []string{"ord:x:9"}, 10*time.Second)
	got := r.Accepted()
	if len(got) != 1 || got[0].OrderID != "ord:x" || got[0].Version != 9 || got[0].Type != "OrderPaid" || !bytes.Equal(got[0].Payload, payload) {
		t.Fatalf("got %+v", got)
	}
}

// TestRedeliveryAfterAckWait: messages a dead member pulled but never
// acknowledged are redelivered after AckWait.
func TestRedeliveryAfterAckWait(t *testing.T) {
	url := testservers.NATS(t)
	o := uniqueOptions(t, url)
	o.AckWait = 300 * time.Millisecond
	tr := newTransport(t, o)
	defer tr.Close()
	// Create the group, then let a plain client pull as a member that dies.
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, transporttest.NewRecorder(t).Handle)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	msgs := transporttest.Interleaved("aw", 4, 3)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	js := plainJS(t, url)
	cons, err := js.Consumer(ctxT(t), o.Stream, "g")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(msgs), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != len(msgs) {
		t.Fatalf("dead member pulled %d of %d", n, len(msgs))
	}
	start := time.Now()
	r := transporttest.NewRecorder(t)
	sub, err = tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r.WaitFor(t, "surviving member", idsOf(msgs), 10*time.Second)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("redelivered after %v, before AckWait", d)
	}
}

// TestCloseHandsBackHeldMessages: a member that closes while holding pulled
// messages hands them back at once, so the next member need not wait AckWait.
func TestCloseHandsBackHeldMessages(t *testing.T) {
	url := testservers.NATS(t)
	o := uniqueOptions(t, url)
	o.AckWait = time.Hour
	tr := newTransport(t, o)
	defer tr.Close()
	entered := make(chan struct{}, 1)
	stuck := func(ctx context.Context, batch []transport.Message) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, stuck)
	if err != nil {
		t.Fatal(err)
	}
	msgs := transporttest.Interleaved("held", 5, 5)
	if err := tr.Publish(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	<-entered
	_ = sub.Close()
	r := transporttest.NewRecorder(t)
	sub, err = tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: "g"}, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r.WaitFor(t, "next member", idsOf(msgs), 10*time.Second)
}

// TestStreamUpdated: New on an existing stream updates its configuration.
func TestStreamUpdated(t *testing.T) {
	url := testservers.NATS(t)
	o := uniqueOptions(t, url)
	newTransport(t, o).Close()
	o.DuplicateWindow = 30 * time.Second
	o.MaxMsgs = 5000
	tr := newTransport(t, o)
	defer tr.Close()
	s, err := plainJS(t, url).Stream(ctxT(t), o.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.Duplicates != 30*time.Second || c.MaxMsgs != 5000 {
		t.Fatalf("stream not updated: duplicates %v, max msgs %d", c.Duplicates, c.MaxMsgs)
	}
}

func TestNewUnreachable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testservers.FreePort(t))
	start := time.Now()
	tr, err := nats.New(context.Background(), nats.Options{URL: "nats://user:secret@" + addr})
	if err == nil {
		_ = tr.Close()
		t.Fatal("New succeeded with nothing listening")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("New took %v to fail", d)
	}
	if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("New: %v; want ErrUnavailable naming %s", err, addr)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows the password: %v", err)
	}
	t.Logf("%v (after %v)", err, time.Since(start))
}

func TestOptions(t *testing.T) {
	url := testservers.NATS(t)
	for _, o := range []nats.Options{
		{},
		{URL: url, Stream: "a.b"},
		{URL: url, SubjectPrefix: "orders.*"},
		{URL: url, SubjectPrefix: "orders..events"},
		{URL: url, BatchSize: -1},
		{URL: url, RetryMin: time.Second, RetryMax: time.Millisecond},
	} {
		if tr, err := nats.New(context.Background(), o); err == nil {
			_ = tr.Close()
			t.Errorf("New(%+v) accepted", o)
		}
	}
	tr := newTransport(t, uniqueOptions(t, url))
	defer tr.Close()
	if tr.Name() != "nats" {
		t.Fatalf("name %q", tr.Name())
	}
}

func idsOf(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID()
	}
	return out
}

// TestServerDown shuts a private server down under a running transport.
func TestServerDown(t *testing.T) {
	srv := testservers.StartNATS(t)
	tr := newTransport(t, nats.Options{URL: srv.URL(), AckTimeout: time.Second, RequestTimeout: time.Second})
	defer tr.Close()
	transporttest.RunServerDown(t, tr, srv.Stop)
}
