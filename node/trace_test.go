package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/transport"
)

// A W3C traceparent a client sends: trace id, the client's span id, sampled.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// traceOf parses a traceparent header value into its trace and span ids.
func traceOf(t *testing.T, traceParent string) (traceID, spanID string) {
	t.Helper()
	parts := strings.Split(traceParent, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("traceparent %q is not a W3C traceparent", traceParent)
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		t.Fatalf("traceparent %q has a zero id", traceParent)
	}
	return parts[1], parts[2]
}

// tracingTo makes the node record its spans with a provider that hands
// them to exp as each ends.
func tracingTo(exp *tracetest.InMemoryExporter) func(*node.Config) {
	return func(c *node.Config) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		c.TracerProvider = tp
	}
}

// wire records the messages a node's transport delivers.
type wire struct {
	mu   sync.Mutex
	msgs []transport.Message
}

func watchWire(t *testing.T, tr transport.Transport) *wire {
	t.Helper()
	w := &wire{}
	sub, err := tr.Subscribe(context.Background(), transport.SubscribeOptions{}, func(_ context.Context, batch []transport.Message) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.msgs = append(w.msgs, batch...)
		return nil
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return w
}

// event returns the event of orderID at version as it came over the wire.
func (w *wire) event(t *testing.T, orderID string, version uint64) *orderpb.Event {
	t.Helper()
	var ev *orderpb.Event
	poll.Eventually(t, 10*time.Second, poll.True(fmt.Sprintf("event %s:%d on the transport", orderID, version), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, m := range w.msgs {
			if m.OrderID == orderID && m.Version == version {
				ev = &orderpb.Event{}
				if err := proto.Unmarshal(m.Payload, ev); err != nil {
					t.Fatalf("the payload of %s is not an event: %v", m.ID(), err)
				}
				return true
			}
		}
		return false
	}))
	return ev
}

// journaled returns the event of orderID at version as the journal holds it.
func journaled(t *testing.T, n *node.Node, orderID string, version uint64) *orderpb.Event {
	t.Helper()
	recs, err := n.Backend().Load(context.Background(), orderID, version)
	if err != nil || len(recs) == 0 {
		t.Fatalf("load %s from %d: %d records, %v", orderID, version, len(recs), err)
	}
	pe, err := codec.DecodeRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	return pe
}

// spanNamed waits for the ended span of name in trace traceID and returns it.
func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, traceID, name string) tracetest.SpanStub {
	t.Helper()
	return childSpan(t, exp, traceID, "", name)
}

// childSpan waits for the ended span of name in trace traceID whose parent
// is span parent (any parent if "") and returns it.
func childSpan(t *testing.T, exp *tracetest.InMemoryExporter, traceID, parent, name string) tracetest.SpanStub {
	t.Helper()
	var found tracetest.SpanStub
	poll.Eventually(t, 10*time.Second, poll.True("span "+name+" in trace "+traceID+" under "+parent, func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == name && s.SpanContext.TraceID().String() == traceID && (parent == "" || s.Parent.SpanID().String() == parent) {
				found = s
				return true
			}
		}
		return false
	}))
	return found
}

// checkChain checks that the spans of one command form one trace, each the
// child of the one before it: the client's span, the HTTP server span, the
// cluster call, the order actor, the journal append; the outbox publish and
// the read model's apply are children of the order actor's span, whose
// context the event carries. It returns the order actor's span.
func checkChain(t *testing.T, exp *tracetest.InMemoryExporter, route, command string) tracetest.SpanStub {
	t.Helper()
	parent := clientSpanID
	var actor tracetest.SpanStub
	for _, name := range []string{route, "order.call command", "order.command " + command, "journal.append"} {
		s := childSpan(t, exp, clientTraceID, parent, name)
		if name == route && (!s.Parent.IsRemote() || s.SpanKind != trace.SpanKindServer) {
			t.Errorf("span %s: remote parent %v, kind %v; want the client's span as a remote parent, server kind", name, s.Parent.IsRemote(), s.SpanKind)
		}
		if name == "order.command "+command {
			actor = s
		}
		parent = s.SpanContext.SpanID().String()
	}
	for _, name := range []string{"outbox.publish", "readmodel.apply"} {
		childSpan(t, exp, clientTraceID, actor.SpanContext.SpanID().String(), name)
	}
	return actor
}

// A traceparent sent with POST /orders is continued end to end: the answer
// names the same trace, the journaled event and the message on the
// transport carry the order actor's span context, and the spans form one
// trace from the HTTP request to the read model.
func TestTraceparentContinuedEndToEnd(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tn := startNode(t, tracingTo(exp))
	w := watchWire(t, tn.n.Transport())

	r := tn.expect(tn.do("POST", "/orders", seedOrder, "traceparent", clientParent, "tracestate", "vendor=v1"), http.StatusCreated)
	gotTrace, gotSpan := traceOf(t, r.header.Get("traceparent"))
	if gotTrace != clientTraceID || gotSpan == clientSpanID {
		t.Fatalf("response traceparent %q: want trace %s with the server's own span", r.header.Get("traceparent"), clientTraceID)
	}
	if ts := r.header.Get("tracestate"); ts != "vendor=v1" {
		t.Errorf("response tracestate %q, want vendor=v1", ts)
	}
	var c struct{ OrderID string }
	r.json(t, &c)

	actor := checkChain(t, exp, "POST /orders", "create")
	server := spanNamed(t, exp, clientTraceID, "POST /orders")
	if server.SpanContext.SpanID().String() != gotSpan {
		t.Errorf("the response names span %s, the server span is %s", gotSpan, server.SpanContext.SpanID())
	}
	want := actor.SpanContext
	for where, ev := range map[string]*orderpb.Event{"journal": journaled(t, tn.n, c.OrderID, 1), "transport": w.event(t, c.OrderID, 1)} {
		tp := ev.GetMetadata().GetTraceParent()
		if tp == "" {
			t.Fatalf("the event in the %s has no trace context: %v", where, ev.GetMetadata())
		}
		if tid, sid := traceOf(t, tp); tid != clientTraceID || sid != want.SpanID().String() {
			t.Errorf("the event in the %s carries %s, want trace %s, span %s (the order actor's)", where, tp, clientTraceID, want.SpanID())
		}
		if ts := ev.GetMetadata().GetTraceState(); ts != "vendor=v1" {
			t.Errorf("the event in the %s carries tracestate %q, want vendor=v1", where, ts)
		}
	}

	// A transition is traced the same way, and its span is named by route.
	tn.expect(tn.do("POST", "/orders/"+c.OrderID+"/pay", `{"paymentMethod":"card"}`, "traceparent", clientParent), http.StatusOK)
	checkChain(t, exp, "POST /orders/:id/pay", "pay")
	if ev := w.event(t, c.OrderID, 2); !strings.Contains(ev.GetMetadata().GetTraceParent(), clientTraceID) {
		t.Errorf("the paid event carries %q, want trace %s", ev.GetMetadata().GetTraceParent(), clientTraceID)
	}

	// A request without a traceparent starts a new trace and says so. On
	// this in-memory node a read of an active order is answered from its
	// committed state (actors.Published): the server span alone, no call.
	r = tn.expect(tn.do("GET", "/orders/"+c.OrderID, ""), http.StatusOK)
	newTrace, _ := traceOf(t, r.header.Get("traceparent"))
	if newTrace == clientTraceID {
		t.Fatal("a request without traceparent was put in the previous trace")
	}
	spanNamed(t, exp, newTrace, "GET /orders/:id")
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID().String() == newTrace && s.Name == "order.call get" {
			t.Errorf("a read of an active order on the in-memory journal called its actor (span %s)", s.Name)
		}
	}
	// A history read goes to the actor: the call's span parents the actor's.
	r = tn.expect(tn.do("GET", "/orders/"+c.OrderID+"/history", ""), http.StatusOK)
	histTrace, _ := traceOf(t, r.header.Get("traceparent"))
	hist := spanNamed(t, exp, histTrace, "order.history")
	call := spanNamed(t, exp, histTrace, "order.call history")
	if hist.Parent.SpanID() != call.SpanContext.SpanID() {
		t.Errorf("order.history's parent %s is not the cluster call %s", hist.Parent.SpanID(), call.SpanContext.SpanID())
	}
}

// Without a tracer (no --otlp-endpoint) nothing is recorded, and the trace
// context is still continued: the answer names the incoming trace (a new one
// when none came in), and the journaled event carries it.
func TestTraceparentContinuedWithoutExporter(t *testing.T) {
	tn := startNode(t)
	w := watchWire(t, tn.n.Transport())
	r := tn.expect(tn.do("POST", "/orders", seedOrder, "traceparent", clientParent), http.StatusCreated)
	gotTrace, gotSpan := traceOf(t, r.header.Get("traceparent"))
	if gotTrace != clientTraceID || gotSpan == clientSpanID {
		t.Fatalf("response traceparent %q: want trace %s with a span of the server's", r.header.Get("traceparent"), clientTraceID)
	}
	if !strings.HasSuffix(r.header.Get("traceparent"), "-01") {
		t.Errorf("response traceparent %q dropped the caller's sampled flag", r.header.Get("traceparent"))
	}
	var c struct{ OrderID string }
	r.json(t, &c)
	for where, ev := range map[string]*orderpb.Event{"journal": journaled(t, tn.n, c.OrderID, 1), "transport": w.event(t, c.OrderID, 1)} {
		if tid, sid := traceOf(t, ev.GetMetadata().GetTraceParent()); tid != clientTraceID || sid != gotSpan {
			t.Errorf("the event in the %s carries trace %s span %s, want %s and the server's span %s", where, tid, sid, clientTraceID, gotSpan)
		}
	}

	r = tn.expect(tn.do("POST", "/orders", seedOrder), http.StatusCreated)
	fresh, _ := traceOf(t, r.header.Get("traceparent"))
	r.json(t, &c)
	if fresh == clientTraceID || !strings.HasSuffix(r.header.Get("traceparent"), "-00") {
		t.Errorf("a request without traceparent got %q, want a new trace, not sampled", r.header.Get("traceparent"))
	}
	if tid, _ := traceOf(t, journaled(t, tn.n, c.OrderID, 1).GetMetadata().GetTraceParent()); tid != fresh {
		t.Errorf("the event carries trace %s, the answer %s", tid, fresh)
	}

	// A malformed traceparent is ignored: a new trace.
	r = tn.expect(tn.do("GET", "/orders/"+c.OrderID, "", "traceparent", "00-zz-yy-01"), http.StatusOK)
	if tid, _ := traceOf(t, r.header.Get("traceparent")); tid == "zz" {
		t.Errorf("a malformed traceparent was echoed: %q", r.header.Get("traceparent"))
	}
}

// otlpSink is an OTLP/HTTP receiver that keeps the span names it receives.
type otlpSink struct {
	mu    sync.Mutex
	names map[string][]string // trace id (hex) -> span names
	srv   *httptest.Server
}

func startOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{names: map[string][]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if r.URL.Path != "/v1/traces" || err != nil {
			t.Errorf("OTLP sink: %s %s: %v", r.Method, r.URL.Path, err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					id := fmt.Sprintf("%x", sp.GetTraceId())
					s.names[id] = append(s.names[id], sp.GetName())
				}
			}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *otlpSink) spans(traceID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.names[traceID])
}

// --otlp-endpoint exports the spans over OTLP/HTTP, and shutting the node
// down flushes the batch processor.
func TestOTLPEndpointExportsSpans(t *testing.T) {
	sink := startOTLPSink(t)
	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.DrainDelay = 0, "n1", 0
	cfg.OTLPEndpoint = strings.TrimPrefix(sink.srv.URL, "http://") // host:port
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{t: t, n: n, base: "http://" + n.Addr()}
	tn.expect(tn.do("POST", "/orders", seedOrder, "traceparent", clientParent), http.StatusCreated)
	waitFor(t, "the order in the read model", func() bool { return n.ReadModel().Stats().TotalOrders == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	got := sink.spans(clientTraceID)
	for _, want := range []string{"POST /orders", "order.call command", "order.command create", "journal.append", "outbox.publish", "readmodel.apply"} {
		if !slices.Contains(got, want) {
			t.Errorf("the sink received %v for the trace, missing %s", got, want)
		}
	}
}

func TestOTLPEndpointValidation(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		ok       bool
	}{
		{"localhost:4318", true},
		{"http://collector:4318", true},
		{"https://collector.example/otlp/v1/traces", true},
		{"[::1]:4318", true},
		{"collector", false},
		{"grpc://collector:4317", false},
		{"http://", false},
	} {
		cfg := node.Default()
		cfg.OTLPEndpoint = tc.endpoint
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("--otlp-endpoint=%s: Validate() = %v, want ok %v", tc.endpoint, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--otlp-endpoint="+tc.endpoint) {
			t.Errorf("the error %q does not name the flag and the value", err)
		}
	}
}
