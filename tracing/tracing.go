package tracing

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
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

// Inject returns the traceparent and tracestate values of the span context
// in ctx, or two empty strings when ctx holds none.
func Inject(ctx context.Context) (traceParent, traceState string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	var f fields
	Propagator.Inject(ctx, &f)
	return f.parent, f.state
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
