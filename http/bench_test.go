package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/metrics"
)

// BenchmarkLive: GET /health/live through the whole middleware chain
// (request id, trace context, metrics, the cross-origin, body and query
// checks) to the cheapest handler, so that what it allocates is the
// middleware's.
func BenchmarkLive(b *testing.B) {
	e := httpapi.New(httpapi.Config{Health: fakeHealth{}, Metrics: metrics.New()})
	req := httptest.NewRequest(http.MethodGet, "/health/live", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
