package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
)

func benchBackend(b *testing.B, opts Options) *Backend {
	b.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	opts.Addr = testservers.Redis(b)
	opts.Prefix = "ordersystem-bench:" + hex.EncodeToString(r[:]) + ":"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	be, err := New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var keys []string
		iter := be.rdb.Scan(ctx, 0, opts.Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			be.rdb.Unlink(ctx, keys[:n]...)
			keys = keys[n:]
		}
		_ = be.Close()
	})
	return be
}

// appendOp appends one ~100-byte event at a time to a stream of its own.
func appendOp(be *Backend, worker int) func(ctx context.Context) error {
	stream := fmt.Sprintf("bench-%d", worker)
	data := make([]byte, 100)
	var v uint64
	return func(ctx context.Context) error {
		nv, err := be.Append(ctx, stream, v, []persistence.Record{{Type: "OrderPaid", Data: data}})
		v = nv
		return err
	}
}

// BenchmarkAppend measures journal appends with 32 concurrent writers on
// distinct streams, with group commit (the default) and without it.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name     string
		maxBatch int
	}{{"GroupCommit", 0}, {"NoGroupCommit", 1}} {
		b.Run(c.name, func(b *testing.B) {
			be := benchBackend(b, Options{MaxBatch: c.maxBatch})
			journaltest.RunWriters(b, "appends", func(w int) func(context.Context) error { return appendOp(be, w) })
		})
	}
}

// BenchmarkRawSet is the baseline: SET of a 3-byte value (redis-benchmark's
// default) from 32 goroutines through the backend's own go-redis client.
func BenchmarkRawSet(b *testing.B) {
	be := benchBackend(b, Options{})
	journaltest.RunWriters(b, "sets", func(w int) func(context.Context) error {
		key := fmt.Sprintf("%sraw-%d", be.opts.Prefix, w)
		return func(ctx context.Context) error { return be.rdb.Set(ctx, key, "xxx", 0).Err() }
	})
}
