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

// benchBackend opens a backend on addr under a fresh prefix whose keys
// are deleted afterwards.
func benchBackend(b *testing.B, addr string, opts Options) *Backend {
	b.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	opts.Addr = addr
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
		_, _ = DeleteKeys(ctx, be.rdb, opts.Prefix)
		_ = be.Close()
	})
	return be
}

// benchTargets are the servers the append benchmark runs on: one Redis
// (the shared one, else a private one), and the private Redis Cluster of
// 3 primaries with a replica each (appendonly yes, appendfsync everysec)
// that the package's tests share.
func benchTargets(b *testing.B) []struct{ name, addr string } {
	return []struct{ name, addr string }{
		{"Standalone", testservers.Redis(b)},
		{"Cluster3x1", SharedCluster.Get(b).Seeds()},
	}
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
// distinct streams (16 partitions), with group commit (the default) and
// without it, on one Redis and on a Redis Cluster; on the cluster also
// with WaitReplicas 1 (one pipeline and WAIT per primary).
func BenchmarkAppend(b *testing.B) {
	for _, target := range benchTargets(b) {
		cases := []struct {
			name string
			opts Options
		}{{"GroupCommit", Options{}}, {"NoGroupCommit", Options{MaxBatch: 1}}}
		if target.name != "Standalone" {
			cases = append(cases, struct {
				name string
				opts Options
			}{"GroupCommitWait1", Options{WaitReplicas: 1}})
		}
		for _, c := range cases {
			b.Run(target.name+"/"+c.name, func(b *testing.B) {
				be := benchBackend(b, target.addr, c.opts)
				journaltest.RunWriters(b, "appends", func(w int) func(context.Context) error { return appendOp(be, w) })
			})
		}
	}
}

// BenchmarkRawSet is the baseline: SET of a 3-byte value (redis-benchmark's
// default) from 32 goroutines through the backend's own go-redis client.
func BenchmarkRawSet(b *testing.B) {
	be := benchBackend(b, testservers.Redis(b), Options{})
	journaltest.RunWriters(b, "sets", func(w int) func(context.Context) error {
		key := fmt.Sprintf("%sraw-%d", be.opts.Prefix, w)
		return func(ctx context.Context) error { return be.rdb.Set(ctx, key, "xxx", 0).Err() }
	})
}
