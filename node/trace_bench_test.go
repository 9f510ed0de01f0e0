package node_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ordersystem/ordersystem/node"
)

// BenchmarkCreateTracing creates orders over HTTP on an in-memory node
// without a tracer and with the SDK's batch span processor in front of an
// exporter that discards (the SDK's own cost, without OTLP encoding). The
// figures of record come from scripts/tracing.sh; this is for profiles:
//
//	go test -run x -bench CreateTracing -cpuprofile /tmp/cpu.out ./node/
func BenchmarkCreateTracing(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  func(*node.Config)
	}{
		{"off", func(*node.Config) {}},
		{"sdk", func(c *node.Config) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			c.TracerProvider = tp
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tn := startNodeB(b, tc.cfg)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", tn+"/orders", strings.NewReader(seedOrder))
					req.Header.Set("Content-Type", "application/json")
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					res.Body.Close()
					if res.StatusCode != http.StatusCreated {
						b.Fatalf("status %d", res.StatusCode)
					}
				}
			})
		})
	}
}

// startNodeB starts an in-memory node for a benchmark and returns its base URL.
func startNodeB(b *testing.B, mutate func(*node.Config)) string {
	b.Helper()
	cfg := node.Default()
	cfg.Port, cfg.NodeID, cfg.DrainDelay = 0, "bench", 0
	cfg.LogLevel = "warn"
	mutate(&cfg)
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	return "http://" + n.Addr()
}
