package tracing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersystem/ordersystem/tracing"
)

const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestInjectExtractRoundTrip(t *testing.T) {
	ctx := tracing.Extract(context.Background(), parent, "a=1,b=2")
	tp, ts := tracing.Inject(ctx)
	if tp != parent || ts != "a=1,b=2" {
		t.Fatalf("Inject(Extract(%s, a=1,b=2)) = %s, %s", parent, tp, ts)
	}
	if tp, ts := tracing.Inject(context.Background()); tp != "" || ts != "" {
		t.Fatalf("Inject without a span context = %q, %q", tp, ts)
	}
	for _, bad := range []string{"", "00-zz-yy-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if sc := trace.SpanContextFromContext(tracing.Extract(context.Background(), bad, "")); sc.IsValid() {
			t.Errorf("Extract(%q) gave a valid span context %v", bad, sc)
		}
	}
}

// Inject writes what the propagator writes.
func TestInjectAsThePropagator(t *testing.T) {
	for _, flags := range []string{"00", "01", "02", "03"} {
		ctx := tracing.Continue(tracing.Extract(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"+flags, "k=v"))
		carrier := propagation.MapCarrier{}
		tracing.Propagator.Inject(ctx, carrier)
		tp, ts := tracing.Inject(ctx)
		if tp != carrier["traceparent"] || ts != carrier["tracestate"] {
			t.Errorf("Inject = %s, %s; the propagator writes %s, %s", tp, ts, carrier["traceparent"], carrier["tracestate"])
		}
	}
}

func TestContinue(t *testing.T) {
	ctx := tracing.Continue(tracing.Extract(context.Background(), parent, "a=1"))
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() == "00f067aa0ba902b7" || !sc.IsSampled() || sc.TraceState().String() != "a=1" {
		t.Fatalf("Continue of %s: %v", parent, sc)
	}
	a := trace.SpanContextFromContext(tracing.Continue(context.Background()))
	b := trace.SpanContextFromContext(tracing.Continue(context.Background()))
	if !a.IsValid() || a.IsSampled() || a.TraceID() == b.TraceID() || a.SpanID() == b.SpanID() {
		t.Fatalf("Continue without a parent: %v and %v, want two valid, distinct, unsampled traces", a, b)
	}
}

func TestStartWithoutTracer(t *testing.T) {
	ctx := tracing.Extract(context.Background(), parent, "")
	got, span := tracing.Start(ctx, nil, "x")
	if got != ctx || span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatalf("Start without a tracer changed ctx or returned a real span: %v", span.SpanContext())
	}
	span.End() // must not end anything in ctx
}

func TestBoundCutsLongTraceState(t *testing.T) {
	var members []string
	for i := range 32 {
		members = append(members, fmt.Sprintf("k%d=%s", i, strings.Repeat("v", 100)))
	}
	long := strings.Join(members, ",")
	ctx := tracing.Bound(tracing.Extract(context.Background(), parent, long))
	_, ts := tracing.Inject(ctx)
	if len(ts) > tracing.MaxTraceState || !strings.HasPrefix(ts, "k0=") || !strings.HasPrefix(long, ts) {
		t.Fatalf("Bound left a trace state of %d characters (%.40s...), want at most %d, the first members kept", len(ts), ts, tracing.MaxTraceState)
	}
	short := tracing.Extract(context.Background(), parent, "a=1")
	if tracing.Bound(short) != short {
		t.Fatal("Bound changed a short trace state")
	}
}
