package memory_test

import (
	"testing"

	"github.com/ordersystem/ordersystem/transport/memory"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

// BenchmarkPublish: events published per second, batches of 100 from 32
// concurrent publishers, with no subscriber (the log is trimmed at once).
func BenchmarkPublish(b *testing.B) {
	tr := newTransport(b, memory.Options{})
	defer tr.Close()
	transporttest.BenchPublish(b, tr.Publish)
}
