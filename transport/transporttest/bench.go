package transporttest

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/ordersystem/ordersystem/transport"
)

// Benchmark shape shared by every backend's publish benchmarks, raw clients
// included, so their figures compare.
const (
	// BenchBatch is the number of events per Publish call.
	BenchBatch = 100
	// BenchPublishers is the number of concurrent publishers.
	BenchPublishers = 32
	// BenchPayload is the payload size in bytes (a typical encoded event).
	BenchPayload = 200
)

var benchRun atomic.Int64

// BenchPublish runs BenchPublishers goroutines that call publish with
// batches of BenchBatch fresh events (unique ids) until b.N batches are
// published, and reports events/s. publish is our Transport.Publish or a raw
// client doing the same on the wire.
func BenchPublish(b *testing.B, publish func(ctx context.Context, batch []transport.Message) error) {
	payload := make([]byte, BenchPayload)
	for i := range payload {
		payload[i] = byte(i)
	}
	run := benchRun.Add(1)
	var publisher atomic.Int64
	b.SetParallelism((BenchPublishers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		order := fmt.Sprintf("bench-%d-%d", run, publisher.Add(1))
		batch := make([]transport.Message, BenchBatch)
		var version uint64
		for pb.Next() {
			for i := range batch {
				version++
				batch[i] = transport.Message{OrderID: order, Version: version, Type: EventTypes[version%5], Payload: payload}
			}
			if err := publish(ctx, batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)*BenchBatch/b.Elapsed().Seconds(), "events/s")
}
