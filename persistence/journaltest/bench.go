package journaltest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// BenchWriters is the number of concurrent writers RunWriters uses.
const BenchWriters = 32

// RunWriters splits b.N operations over BenchWriters goroutines, each with
// its own op (made by newOp for that worker), and reports ops per second as
// "<unit>/s". Backends use it for their append benchmarks and the raw-server
// baselines beside them, so that both are measured the same way.
func RunWriters(b *testing.B, unit string, newOp func(worker int) func(ctx context.Context) error) {
	b.Helper()
	ctx := context.Background()
	ops := make([]func(context.Context) error, BenchWriters)
	for w := range ops {
		ops[w] = newOp(w)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	b.ResetTimer()
	start := time.Now()
	for w := range BenchWriters {
		n := b.N / BenchWriters
		if w < b.N%BenchWriters {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := ops[w](ctx); err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if ferr != nil {
		b.Fatal(ferr)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit+"/s")
}
