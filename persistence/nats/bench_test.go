package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
)

// BenchmarkAppend measures journal appends of one ~100-byte event with 32
// concurrent writers on distinct orders, with the stream cache (one round
// trip per append) and without it (a head lookup before every append).
func BenchmarkAppend(b *testing.B) {
	benchAppend(b, func(b *testing.B) string { return testservers.NATS(b) }, Options{})
}

// BenchmarkAppendClusterR3 is BenchmarkAppend on a private three-server
// JetStream cluster with the partition streams on three replicas (an
// append is acknowledged once two servers have it).
func BenchmarkAppendClusterR3(b *testing.B) {
	c := testservers.StartJetStreamCluster(b, 3)
	benchAppend(b, func(*testing.B) string { return c.URLs() }, Options{Replicas: 3})
}

func benchAppend(b *testing.B, url func(*testing.B) string, base Options) {
	for _, c := range []struct {
		name  string
		cache int
	}{{"Cache", 0}, {"NoCache", -1}} {
		b.Run(c.name, func(b *testing.B) {
			o := base
			o.CacheSize = c.cache
			be := newBackend(b, url(b), o)
			journaltest.RunWriters(b, "appends", func(w int) func(context.Context) error {
				stream := fmt.Sprintf("bench-%d", w)
				data := make([]byte, 100)
				var v uint64
				return func(ctx context.Context) error {
					nv, err := be.Append(ctx, stream, v, []persistence.Record{{Type: "OrderPaid", Data: data}})
					v = nv
					return err
				}
			})
		})
	}
}

// BenchmarkRawPublish is the baseline: a plain JetStream publish of 100
// bytes, waiting for the ack, from 32 goroutines on the backend's own
// connection, into the backend's stream.
func BenchmarkRawPublish(b *testing.B) {
	be := newBackend(b, testservers.NATS(b), Options{})
	journaltest.RunWriters(b, "publishes", func(w int) func(context.Context) error {
		id := fmt.Sprintf("raw-%d", w)
		subject, stream := be.subject(id), be.opts.partitionStream(be.partitionOf(id))
		data := make([]byte, 100)
		return func(ctx context.Context) error {
			_, err := be.js.Publish(ctx, subject, data, jetstream.WithExpectStream(stream))
			return err
		}
	})
}

// BenchmarkReadAll measures how fast the global log is read back (the
// outbox and the read-model rebuild), in pages of 1000 records.
func BenchmarkReadAll(b *testing.B) {
	be := newBackend(b, testservers.NATS(b), Options{Partitions: 1})
	ctx := context.Background()
	const orders, perOrder = 100, 20
	for o := range orders {
		for v := range perOrder {
			if _, err := be.Append(ctx, fmt.Sprintf("o%d", o), uint64(v), []persistence.Record{{Type: "Ev", Data: make([]byte, 100)}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	start := time.Now()
	read := 0
	for range b.N {
		var after uint64
		for {
			page, err := be.Log(0).ReadAll(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += len(page)
			after = page[len(page)-1].Position
		}
	}
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "records/s")
}
