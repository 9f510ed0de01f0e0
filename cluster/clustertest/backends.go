package clustertest

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
)

// Backend returns the registry client of one member incarnation, whose
// leases last ttl. Members of one harness share the backend's records; each
// incarnation gets its own client (as separate processes would), which the
// harness closes (if it is an io.Closer) when the incarnation stops.
type Backend func(t testing.TB, ttl time.Duration) registry.Registry

var uniq atomic.Int64

// uniqueName returns a name unique within the process and, with the time,
// across test runs on shared servers.
func uniqueName(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano()%1e10, 36) + "_" + strconv.FormatInt(uniq.Add(1), 10)
}

// Memory is a backend whose members share one registry.MemoryRegistry.
func Memory() Backend {
	reg := registry.NewMemoryRegistry()
	return func(testing.TB, time.Duration) registry.Registry { return reg }
}

// Redis is a backend on the Redis at addr, under a key prefix unique to t;
// the keys are deleted when t ends.
func Redis(t testing.TB, addr string) Backend {
	prefix := uniqueName("ostest:") + ":"
	t.Cleanup(func() {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 256).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return func(t testing.TB, _ time.Duration) registry.Registry {
		t.Helper()
		reg, err := redisreg.New(redisreg.Options{Addr: addr, Prefix: prefix})
		if err != nil {
			t.Fatalf("redis registry: %v", err)
		}
		return reg
	}
}

// NATS is a backend on the NATS server at url, in a KV bucket unique to t
// (expiry mode chosen by the server); the bucket is deleted when t ends.
func NATS(t testing.TB, url string) Backend {
	bucket := uniqueName("ostest_")
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteKeyValue(ctx, bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Logf("delete bucket %s: %v", bucket, err)
		}
	})
	return func(t testing.TB, ttl time.Duration) registry.Registry {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		reg, err := natsreg.New(ctx, natsreg.Options{URL: url, Bucket: bucket, TTL: ttl})
		if err != nil {
			t.Fatalf("nats registry: %v", err)
		}
		return reg
	}
}
