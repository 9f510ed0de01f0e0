package tracing

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of OrderSystem's tracers.
const Name = "github.com/ordersystem/ordersystem"

// Propagator is the W3C Trace Context propagator (traceparent, tracestate)
// used on every boundary.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Header names of the W3C Trace Context.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// fields is a TextMapCarrier over the two values of a trace context.
type fields struct{ parent, state string }

func (f *fields) Get(key string) string {
	switch key {
	case HeaderTraceParent:
		return f.parent
	case HeaderTraceState:
		return f.state
	}
	return ""
}

func (f *fields) Set(key, value string) {
	switch key {
	case HeaderTraceParent:
		f.parent = value
	case HeaderTraceState:
		f.state = value
	}
}

func (f *fields) Keys() []string { return []string{HeaderTraceParent, HeaderTraceState} }

// MaxTraceState is the longest tracestate carried on: the W3C
// recommendation's 512 characters. Every event keeps its command's trace
// state, so a longer one (a client may send 32 members of 512 bytes) would
// grow every event it writes, up to what a transport refuses.
const MaxTraceState = 512

// Bound returns ctx with the trace state of its remote span context cut to
// MaxTraceState characters, dropping whole members from the end (as the
// W3C Trace Context allows), or ctx as it is when it is short enough.
func Bound(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	ts := sc.TraceState()
	if len(ts.String()) <= MaxTraceState {
		return ctx
	}
	for ts.Len() > 0 && len(ts.String()) > MaxTraceState {
		var last string
		ts.Walk(func(key, _ string) bool { last = key; return true })
		ts = ts.Delete(last)
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc.WithTraceState(ts))
}

// Inject returns the traceparent and tracestate values of the span context
// in ctx (as Propagator writes them, with one allocation), or two empty
// strings when ctx holds none.
func Inject(ctx context.Context) (traceParent, traceState string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	// version 00, trace id, span id, flags (sampled and random only).
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
	return string(b[:]), sc.TraceState().String()
}

// Extract returns ctx with the remote span context of traceParent and
// traceState as its parent. A missing or malformed traceParent leaves ctx
// as it is.
func Extract(ctx context.Context, traceParent, traceState string) context.Context {
	if traceParent == "" {
		return ctx
	}
	return Propagator.Extract(ctx, &fields{parent: traceParent, state: traceState})
}

// Start starts a span named name with tracer, a child of the span context
// in ctx. A nil tracer records nothing: ctx is returned as it is (its span
// context is handed on) with a span that does nothing, at no cost; ending
// it never ends the span in ctx.
func Start(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, noSpan
	}
	return tracer.Start(ctx, name, opts...)
}

// noSpan is the span of Start without a tracer: it does nothing.
var noSpan = trace.SpanFromContext(context.Background())

// Continue returns ctx with a span context that records nothing: a new
// span id in the trace of the span context in ctx (or in a new trace when
// ctx has none), with its flags and trace state. It is the server span of a
// request when no tracer records, so that the reply names a span of its
// own and a request that came without a trace gets one.
func Continue(ctx context.Context) context.Context {
	parent := trace.SpanContextFromContext(ctx)
	cfg := trace.SpanContextConfig{
		TraceID:    parent.TraceID(),
		TraceFlags: parent.TraceFlags(),
		TraceState: parent.TraceState(),
	}
	if !parent.IsValid() {
		cfg.TraceID = newTraceID()
		cfg.TraceFlags = 0
	}
	cfg.SpanID = newSpanID()
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
}

// newTraceID returns a random trace id. The ids only need to be unique, not
// secret: math/rand/v2's generator is seeded from the OS, and the
// crypto/rand fallback covers a zero draw.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	binary.BigEndian.PutUint64(id[:8], rand.Uint64())
	binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	for !id.IsValid() {
		_, _ = crand.Read(id[:])
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], rand.Uint64())
	for !id.IsValid() {
		_, _ = crand.Read(id[:])
	}
	return id
}
