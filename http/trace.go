package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersystem/ordersystem/tracing"
)

// Canonical forms of the W3C Trace Context headers, set without
// canonicalizing them on every answer.
const (
	headerTraceParent = "Traceparent"
	headerTraceState  = "Tracestate"
)

// startTrace gives the request its server span, named by method and route
// template ("POST /orders/:id/pay"), a child of the W3C traceparent and
// tracestate the request carries (the trace state cut to
// tracing.MaxTraceState), and answers the span's traceparent (and
// tracestate) in the response headers: the same trace id as the request's,
// or a new trace when it came without one. Without a Tracer the span
// records nothing but still has its own span id (tracing.Continue), and the
// returned span is nil. observe calls it and ends the span with endTrace
// once the status is known; traceHeader (of length 1) is the value slice
// the traceparent header gets.
func (a *api) startTrace(c echo.Context, ctx context.Context, traceHeader []string) (context.Context, trace.Span) {
	r := c.Request()
	if _, ok := r.Header[headerTraceParent]; ok {
		ctx = tracing.Bound(tracing.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header)))
	}
	var span trace.Span
	if a.cfg.Tracer == nil {
		ctx = tracing.Continue(ctx)
	} else {
		route := a.routeLabel(c)
		ctx, span = a.cfg.Tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer))
		if span.IsRecording() { // attributes cost allocations: only for a sampled span
			span.SetAttributes(attribute.String("http.request.method", methodLabel(r.Method)), attribute.String("http.route", route))
		}
	}
	tp, ts := tracing.Inject(ctx)
	h := c.Response().Header()
	traceHeader[0] = tp
	h[headerTraceParent] = traceHeader
	if ts != "" {
		h[headerTraceState] = []string{ts}
	}
	return ctx, span
}

// endTrace ends the server span (if any) with the answer's status.
func endTrace(span trace.Span, status int) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}
