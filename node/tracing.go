package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersystem/ordersystem/tracing"
)

// otlpTracesPath is the OTLP/HTTP path of traces, added to an endpoint
// given without a path.
const otlpTracesPath = "/v1/traces"

// otlpURL returns the OTLP/HTTP traces URL of --otlp-endpoint: a URL
// (http:// or https://, /v1/traces when it has no path) or host:port (plain
// HTTP to host:port/v1/traces).
func otlpURL(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		host, port, err := net.SplitHostPort(endpoint)
		if err != nil || host == "" || port == "" {
			return "", fmt.Errorf("must be host:port or an http:// or https:// URL (the OTLP/HTTP receiver, such as localhost:4318)")
		}
		return "http://" + net.JoinHostPort(host, port) + otlpTracesPath, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("must be host:port or an http:// or https:// URL with a host (the OTLP/HTTP receiver, such as http://localhost:4318)")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = otlpTracesPath
	}
	return u.String(), nil
}

// traces is the node's tracing: the tracer every layer records with (nil:
// propagate the W3C trace context, record nothing) and the provider the
// node owns and flushes on shutdown (nil when none, or when the caller gave
// one in Config.TracerProvider).
type traces struct {
	tracer   trace.Tracer
	provider *sdktrace.TracerProvider
}

// startTracing sets up tracing from the configuration: the caller's
// TracerProvider, else an OTLP/HTTP exporter behind a batch span processor
// when OTLPEndpoint is set, else nothing to record.
func startTracing(cfg Config, log *slog.Logger) (traces, error) {
	if cfg.TracerProvider != nil {
		return traces{tracer: cfg.TracerProvider.Tracer(tracing.Name)}, nil
	}
	if cfg.OTLPEndpoint == "" {
		return traces{}, nil
	}
	endpoint, err := otlpURL(cfg.OTLPEndpoint)
	if err != nil {
		return traces{}, fmt.Errorf("--otlp-endpoint=%s: %w", cfg.OTLPEndpoint, err)
	}
	// New does not connect: an unreachable collector costs dropped spans,
	// logged at WARN through otel's error handler (process-wide: the last
	// node started in a process logs them), never a failed start.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed", slog.String("otlp_endpoint", endpoint), slog.Any("error", err))
	}))
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(5*time.Second))
	if err != nil {
		return traces{}, fmt.Errorf("--otlp-endpoint=%s: %w", cfg.OTLPEndpoint, err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "ordersystem"),
		attribute.String("service.version", Version),
		attribute.String("service.instance.id", cfg.NodeID),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return traces{tracer: tp.Tracer(tracing.Name), provider: tp}, nil
}

// shutdown flushes the spans not exported yet and stops the exporter,
// within ctx.
func (t traces) shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}
