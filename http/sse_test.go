package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/feed"
	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
)

// sseLine is one message of an event stream: an event (with its id and
// data) or a comment.
type sseLine struct {
	id, event, data, comment string
}

// sseStream is an open GET of an event stream. Its body is read only once
// read is called, so a test can hold a subscriber that does not read.
type sseStream struct {
	res    *http.Response
	cancel context.CancelFunc
	msgs   chan sseLine
}

func openStream(t *testing.T, url string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &sseStream{res: res, cancel: cancel, msgs: make(chan sseLine, 4096)}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	return s
}

// read starts reading the stream; msgs is closed when it ends.
func (s *sseStream) read() {
	go func() {
		defer close(s.msgs)
		sc := bufio.NewScanner(s.res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		var m sseLine
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m != (sseLine{}) {
					s.msgs <- m
				}
				m = sseLine{}
			case strings.HasPrefix(line, ": "):
				m.comment = line[2:]
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data = line[6:]
			}
		}
	}()
}

// next returns the next event, skipping comments; ok is false when the
// stream ended.
func (s *sseStream) next(t *testing.T) (m sseLine, ok bool) {
	t.Helper()
	for {
		select {
		case m, ok = <-s.msgs:
			if !ok || m.comment == "" {
				return m, ok
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
	}
}

// feedServer serves the API with an event hub over a journal of its own.
func feedServer(t *testing.T, opts feed.Options, mutate ...func(*httpapi.Config)) (*httptest.Server, *feed.Hub, *memory.Backend) {
	t.Helper()
	j := memory.New()
	opts.Encode = httpapi.EncodeEvent
	hub := feed.New(j, opts)
	srv, _ := newFakeAPI(t, append([]func(*httpapi.Config){func(c *httpapi.Config) { c.Events = hub }}, mutate...)...)
	// Registered after the server's Close, so run before it: the streams
	// end before the server waits for its requests.
	t.Cleanup(hub.Close)
	return srv, hub, j
}

// appendPaid journals version v of order id, a payment whose method is pad
// bytes long (a large event fills a socket in few events).
func appendPaid(t *testing.T, j *memory.Backend, id string, v uint64, pad int) {
	t.Helper()
	var e order.Event = order.Paid{PaymentMethod: strings.Repeat("x", pad), At: time.Now()}
	if v == 1 {
		e = order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 1}}, Total: 1, At: time.Now()}
	}
	data, err := proto.Marshal(codec.EventToProto(id, v, fmt.Sprint("cmd-", v), "f", e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(context.Background(), id, v-1, []persistence.Record{{Type: e.EventType(), Data: data}}); err != nil {
		t.Fatal(err)
	}
}

func eventVersion(t *testing.T, m sseLine) uint64 {
	t.Helper()
	var ev struct{ Version uint64 }
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		t.Fatalf("event %s %s: %v", m.event, truncated(m.data), err)
	}
	return ev.Version
}

func truncated(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// A subscriber that does not read falls behind by more than its buffer:
// it is dropped, and once it reads it gets the events it had, then
// "event: dropped" with the reason, then the end of the stream. A
// subscriber that reads gets every event meanwhile, before and after.
func TestSlowEventSubscriberIsDroppedFastOneKeepsEverything(t *testing.T) {
	srv, hub, j := feedServer(t, feed.Options{Buffer: 4, Poll: 10 * time.Millisecond})
	slow := openStream(t, srv.URL+"/events")
	fast := openStream(t, srv.URL+"/events")
	fast.read()
	if slow.res.StatusCode != http.StatusOK || fast.res.StatusCode != http.StatusOK {
		t.Fatalf("streams: %d and %d", slow.res.StatusCode, fast.res.StatusCode)
	}
	// 64 KiB events, one at a time (the fast subscriber gets each before
	// the next is written, so it never has more than one queued), until the
	// slow one's socket, its writer and its buffer are full and the hub
	// drops it (a few MB on loopback), then a few more.
	const pad, most = 64 << 10, 1000
	var v, droppedAt uint64
	for v = 1; v <= most && (droppedAt == 0 || v <= droppedAt+3); v++ {
		appendPaid(t, j, "sse-1", v, pad)
		hub.Nudge()
		m, ok := fast.next(t)
		if !ok || m.event == "dropped" || eventVersion(t, m) != v {
			t.Fatalf("fast subscriber, event %d: %s %s (stream open: %v)", v, m.event, truncated(m.data), ok)
		}
		if droppedAt == 0 && hub.Subscribers() == 1 {
			droppedAt = v
		}
	}
	if droppedAt == 0 {
		t.Fatalf("the subscriber that does not read was not dropped after %d events of %d bytes", most, pad)
	}
	slow.read()
	var got uint64
	for {
		m, ok := slow.next(t)
		if !ok {
			t.Fatalf("the slow stream ended after %d events without saying why", got)
		}
		if m.event == "dropped" {
			var why struct{ Reason string }
			if err := json.Unmarshal([]byte(m.data), &why); err != nil || !strings.Contains(why.Reason, "too slow") {
				t.Fatalf("dropped: %s (%v), want the reason", m.data, err)
			}
			break
		}
		if got++; eventVersion(t, m) != got {
			t.Fatalf("slow subscriber: event %d is version %d", got, eventVersion(t, m))
		}
	}
	// The hub dropped it at the event its full buffer could not take: it
	// had every event before that one.
	if got != droppedAt-1 {
		t.Fatalf("slow subscriber got %d events before the drop at event %d, want %d", got, droppedAt, droppedAt-1)
	}
	if m, ok := slow.next(t); ok {
		t.Fatalf("the slow stream went on after dropped: %s %s", m.event, truncated(m.data))
	}
	t.Logf("dropped at event %d of %d bytes; the slow subscriber had %d of them", droppedAt, pad, got)
}

// Past the hub's subscriber cap a new stream is refused with 503, code
// overloaded, a JSON error and Retry-After; once a stream ends, a new one
// is served again.
func TestEventSubscriberCap(t *testing.T) {
	srv, hub, _ := feedServer(t, feed.Options{MaxSubscribers: 2})
	first := openStream(t, srv.URL+"/events")
	openStream(t, srv.URL+"/events?from=0")
	for _, path := range []string{"/events", "/orders/o1/events"} {
		r := do(t, srv.URL, "GET", path, "")
		var body struct{ Error, Code string }
		if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusServiceUnavailable || body.Code != "overloaded" ||
			!strings.Contains(body.Error, "too many event subscribers") || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || r.header.Get("Retry-After") == "" {
			t.Fatalf("GET %s past the cap: %d %q %s (%v), want 503 overloaded in JSON with Retry-After", path, r.status, r.header.Get("Content-Type"), r.body, err)
		}
	}
	first.cancel()
	deadline := time.Now().Add(5 * time.Second)
	for hub.Subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers after a stream ended, want 1", hub.Subscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := openStream(t, srv.URL+"/events"); s.res.StatusCode != http.StatusOK {
		t.Fatalf("a stream under the cap again: %d", s.res.StatusCode)
	}
}

// An idle stream gets a heartbeat comment every EventsHeartbeat.
func TestIdleEventStreamHeartbeats(t *testing.T) {
	srv, _, _ := feedServer(t, feed.Options{}, func(c *httpapi.Config) { c.EventsHeartbeat = 20 * time.Millisecond })
	s := openStream(t, srv.URL+"/events")
	s.read()
	beats := 0
	for beats < 3 {
		select {
		case m, ok := <-s.msgs:
			switch {
			case !ok:
				t.Fatal("the stream ended")
			case m.event != "":
				t.Fatalf("an event on an idle stream: %+v", m)
			case m.comment == "heartbeat":
				beats++
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d heartbeats within 5 s, want 3", beats)
		}
	}
}
