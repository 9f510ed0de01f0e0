package readmodel

import (
	"fmt"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/order"
)

// BenchmarkRestoreMerge decodes and merges the snapshots of 16 partitions
// holding b.N... orders in total (ORDERS per run), as Restore does, without
// the backend: go test -run x -bench RestoreMerge -benchtime 1x ./readmodel/
func BenchmarkRestoreMerge(b *testing.B) {
	const parts, perPart = 16, 312500
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	data := make([][]byte, parts)
	for p := range parts {
		ps := &PartitionSnapshot{Partition: p, Position: perPart}
		for i := range perPart {
			at := t0.Add(time.Duration(i*parts+p) * time.Microsecond)
			ps.Summaries = append(ps.Summaries, Summary{OrderID: fmt.Sprintf("%016x", uint64(i*parts+p)*2654435761), CustomerID: "customer-123",
				Status: order.StatusPending, Total: 105997, Items: 2, Version: 1, CreatedAt: at, UpdatedAt: at})
		}
		data[p] = EncodePartitionSnapshot(ps)
	}
	b.ResetTimer()
	for range b.N {
		m := New(nil)
		var dec, merge time.Duration
		for p := range parts {
			t := time.Now()
			ps, err := DecodePartitionSnapshot(data[p])
			if err != nil {
				b.Fatal(err)
			}
			dec += time.Since(t)
			t = time.Now()
			if p == 0 {
				m.reserve(len(ps.Summaries) * parts * 9 / 8)
			}
			m.loadSnapshot(ps)
			merge += time.Since(t)
		}
		b.ReportMetric(dec.Seconds(), "decode-s")
		b.ReportMetric(merge.Seconds(), "merge-s")
	}
}
