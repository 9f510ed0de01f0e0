package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// TestLoadForActivation: the snapshot and the first max records of a
// stream in one call, as LoadSnapshot and Load give them: none of either
// for a new stream, a page of a longer stream, the snapshot with its
// records, and (on a private server, whose scripts it flushes) the same
// after the server forgot the load script. On one server and on the
// shared Redis Cluster.
func TestLoadForActivation(t *testing.T) {
	t.Run("private", func(t *testing.T) { testLoadForActivation(t, testservers.StartRedis(t).Addr(), true) })
	t.Run("cluster", func(t *testing.T) { testLoadForActivation(t, redis.SharedCluster.Get(t).Seeds(), false) })
}

func testLoadForActivation(t *testing.T, addr string, flush bool) {
	prefix := uniquePrefix(t)
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := redis.New(ctx, redis.Options{Addr: addr, Prefix: prefix, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var al persistence.ActivationLoader = b

	check := func(id string, max int, wantSnap uint64, wantRecs int) {
		t.Helper()
		snap, ok, recs, err := al.LoadForActivation(ctx, id, max)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if ok != (wantSnap > 0) || (ok && (snap.Version != wantSnap || snap.StreamID != id || string(snap.Data) != fmt.Sprint("state@", wantSnap))) {
			t.Fatalf("%s: snapshot %+v, %v; want version %d", id, snap, ok, wantSnap)
		}
		if len(recs) != wantRecs {
			t.Fatalf("%s: %d records, want %d", id, len(recs), wantRecs)
		}
		all, err := b.Load(ctx, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if r.Version != uint64(i+1) || r.StreamID != id || string(r.Data) != string(all[i].Data) || r.Position != all[i].Position {
				t.Fatalf("%s: record %d is %+v, Load gave %+v", id, i, r, all[i])
			}
		}
	}
	appendN := func(id string, n int) {
		t.Helper()
		for v := range n {
			if _, err := b.Append(ctx, id, uint64(v), []persistence.Record{{Type: "OrderPaid", Data: fmt.Appendf(nil, "e%d", v+1)}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	check("new-order", 64, 0, 0)
	appendN("short", 5)
	check("short", 64, 0, 5)
	appendN("long", 70)
	check("long", 64, 0, 64)
	if err := b.SaveSnapshot(ctx, persistence.Snapshot{StreamID: "long", Version: 60, Data: []byte("state@60")}); err != nil {
		t.Fatal(err)
	}
	check("long", 64, 60, 64)
	check("long", 100, 60, 70)

	if !flush {
		return
	}
	// A restarted or flushed server no longer knows the script.
	raw, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	check("short", 64, 0, 5)
}
