package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersystem/ordersystem/tracing"
)

// traceRequest gives the request its server span, named by method and route
// template ("POST /orders/:id/pay"), a child of the W3C traceparent and
// tracestate the request carries, and answers the span's traceparent (and
// tracestate) in the response headers: the same trace id as the request's,
// or a new trace when it came without one. Without a Tracer the span records
// nothing but still has its own span id (tracing.Continue). It runs right
// inside observe and writes a failed handler's answer itself, so that the
// span knows the status.
func (a *api) traceRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		var span trace.Span
		if a.cfg.Tracer == nil {
			ctx = tracing.Continue(ctx)
		} else {
			route := a.routeLabel(c)
			ctx, span = a.cfg.Tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", methodLabel(r.Method)), attribute.String("http.route", route)))
		}
		tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(c.Response().Header()))
		c.SetRequest(r.WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		if span != nil {
			status := c.Response().Status
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
		}
		return nil
	}
}
