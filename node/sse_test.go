package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type sseMsg struct {
	id, event string
	data      map[string]any
}

// sseClient reads one event stream; messages arrive on msgs.
type sseClient struct {
	msgs   chan sseMsg
	cancel context.CancelFunc
	status int
}

func openSSE(t *testing.T, url string, headers ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	c := &sseClient{msgs: make(chan sseMsg, 1024), cancel: cancel, status: res.StatusCode}
	t.Cleanup(cancel)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		res.Body.Close()
		return c
	}
	go func() {
		defer res.Body.Close()
		defer close(c.msgs)
		sc := bufio.NewScanner(res.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.event != "" {
					c.msgs <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &m.data)
			}
		}
	}()
	return c
}

func (c *sseClient) next(t *testing.T) sseMsg {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			t.Fatal("the stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return sseMsg{}
}

// GET /events: the journal from the beginning, then live; a client that
// resumes from an id gets only what followed it. GET /orders/{id}/events:
// the order's history, then its live events, resumable by version.
func TestEventStreams(t *testing.T) {
	tn := startNode(t)
	first := tn.create(seedOrder)
	tn.expect(tn.do("POST", "/orders/"+first+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	second := tn.create(seedOrder)

	all := openSSE(t, tn.base+"/events?from=0")
	var ids []string
	seen := map[string][]string{}
	for range 3 {
		m := all.next(t)
		ids = append(ids, m.id)
		seen[m.data["orderId"].(string)] = append(seen[m.data["orderId"].(string)], m.event)
		if m.data["type"] != m.event || m.id == "" {
			t.Fatalf("message %+v: event type and data disagree, or no id", m)
		}
	}
	if strings.Join(seen[first], ",") != "OrderCreated,OrderPaid" || strings.Join(seen[second], ",") != "OrderCreated" {
		t.Fatalf("catch-up: %v", seen)
	}
	live := openSSE(t, tn.base+"/events") // live only
	one := openSSE(t, tn.base+"/orders/"+first+"/events")
	for _, want := range []string{"OrderCreated", "OrderPaid"} {
		if m := one.next(t); m.event != want {
			t.Fatalf("order stream: %s, want %s", m.event, want)
		}
	}
	tn.expect(tn.do("POST", "/orders/"+first+"/ship", `{"trackingNumber":"T-1"}`), http.StatusOK)
	for name, c := range map[string]*sseClient{"all": all, "live": live, "order": one} {
		m := c.next(t)
		if m.event != "OrderShipped" || m.data["orderId"] != first {
			t.Fatalf("%s stream, live: %+v", name, m)
		}
		if name == "order" && m.id != "3" {
			t.Fatalf("order stream id %q, want the version 3", m.id)
		}
	}
	// Resume after the first event: the two others and the live one.
	again := openSSE(t, tn.base+"/events", "Last-Event-ID", ids[0])
	n := 0
	for n < 3 {
		again.next(t)
		n++
	}
	select {
	case m := <-again.msgs:
		t.Fatalf("resumed stream gave a fourth event %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
	resumed := openSSE(t, tn.base+"/orders/"+first+"/events?from=2")
	if m := resumed.next(t); m.event != "OrderShipped" {
		t.Fatalf("order stream from version 2: %s first", m.event)
	}
	for _, bad := range []string{"/events?from=nonsense", "/events?from=3-1.2.3", "/events?limit=1", "/orders/" + first + "/events?from=x"} {
		tn.expect(tn.do("GET", bad, ""), http.StatusBadRequest)
	}
	tn.expect(tn.do("GET", "/orders/nosuchorder/events", ""), http.StatusNotFound)
}

// Open streams end when the node stops: they do not hold the shutdown.
func TestEventStreamsEndOnShutdown(t *testing.T) {
	tn := startNode(t)
	s := openSSE(t, tn.base+"/events")
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := tn.n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("shutdown with an open stream took %v", took)
	}
	select {
	case _, ok := <-s.msgs:
		for ok {
			_, ok = <-s.msgs
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end")
	}
}
