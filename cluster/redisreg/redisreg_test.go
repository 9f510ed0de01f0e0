package redisreg_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestRegistry returns a registry on addr under a prefix unique to t,
// whose keys are deleted and client closed when t ends.
func newTestRegistry(t *testing.T, addr string) *redisreg.Registry {
	t.Helper()
	prefix := "ostest:" + registrytest.NewID("p") + ":"
	reg, err := redisreg.New(redisreg.Options{Addr: addr, Prefix: prefix, Cluster: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = reg.Close()
		deleteKeys(t, addr, prefix)
	})
	return reg
}

func deleteKeys(t *testing.T, addr, prefix string) {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 256).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleanup of %s*: %v", prefix, err)
	}
}

func TestRedisRegistryContract(t *testing.T) {
	addr := testservers.Redis(t)
	registrytest.Run(t, registrytest.Options{TTL: 500 * time.Millisecond, ExpirySlack: time.Second},
		func(t *testing.T, _ time.Duration) registry.Registry { return newTestRegistry(t, addr) })
}

func TestRedisURLAndValidation(t *testing.T) {
	addr := testservers.Redis(t)
	reg, err := redisreg.New(redisreg.Options{Addr: "redis://" + addr + "/0", Prefix: "ostest:" + registrytest.NewID("u") + ":"})
	if err != nil {
		t.Fatalf("New with a redis:// URL: %v", err)
	}
	defer reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := reg.List(ctx); err != nil {
		t.Fatalf("List through a redis:// URL: %v", err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v (must be idempotent)", err)
	}
	if _, err := redisreg.New(redisreg.Options{Cluster: "a:b"}); err == nil {
		t.Fatal("New accepted cluster name \"a:b\"")
	}
	if _, err := redisreg.New(redisreg.Options{Addr: "redis://%zz"}); err == nil {
		t.Fatal("New accepted a malformed URL")
	}
}

// A cluster whose name extends another's must not see its members.
func TestRedisClustersAreSeparate(t *testing.T) {
	addr := testservers.Redis(t)
	prefix := "ostest:" + registrytest.NewID("s") + ":"
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	a, err := redisreg.New(redisreg.Options{Addr: addr, Prefix: prefix, Cluster: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ab, err := redisreg.New(redisreg.Options{Addr: addr, Prefix: prefix, Cluster: "a_b"})
	if err != nil {
		t.Fatal(err)
	}
	defer ab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ab.Register(ctx, registrytest.Record(registrytest.NewID("m"), "n1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("cluster a lists members of cluster a_b: %+v", got)
	}
}

// TestSharedClient runs the registry on a client it is handed, which its
// Close leaves open.
func TestSharedClient(t *testing.T) {
	addr := testservers.Redis(t)
	c, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := "ostest:" + registrytest.NewID("c") + ":"
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	reg, err := redisreg.New(redisreg.Options{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := registrytest.Record(registrytest.NewID("m"), "n1")
	if err := reg.Register(ctx, rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.List(ctx); err != nil || len(got) != 1 || got[0].MemberID != rec.MemberID {
		t.Fatalf("List = %+v, %v; want the one member", got, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("the shared client after Close: %v (the registry closed it)", err)
	}
}

// TestRenewClientTakesTheRenewals: with a RenewClient the renewals go
// through it and nothing else does; the registry closes neither client.
func TestRenewClientTakesTheRenewals(t *testing.T) {
	addr := testservers.Redis(t)
	c, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	renew, err := redisconn.New(redisconn.Options{Addr: addr, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "ostest:" + registrytest.NewID("r") + ":"
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	reg, err := redisreg.New(redisreg.Options{Client: c, RenewClient: renew, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := registrytest.Record(registrytest.NewID("m"), "n1")
	if err := reg.Register(ctx, rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := reg.Renew(ctx, rec, time.Minute); err != nil {
		t.Fatalf("renew through the renew client: %v", err)
	}
	if err := renew.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Renew(ctx, rec, time.Minute); err == nil {
		t.Fatal("renew succeeded with the renew client closed: it did not go through it")
	}
	if got, err := reg.List(ctx); err != nil || len(got) != 1 {
		t.Fatalf("List = %+v, %v; want the one member through the main client", got, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("the main client after Close: %v (the registry closed it)", err)
	}
}
