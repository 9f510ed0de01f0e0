package testservers

import (
	"context"
	"testing"
	"time"
)

// TestRedisCluster starts a cluster of three primaries: a cluster client
// writes through the seeds, and PrimaryForKey names the node that the
// client's own routing picks for the key.
func TestRedisCluster(t *testing.T) {
	start := time.Now()
	c := StartRedisCluster(t, 3, 0)
	t.Logf("3-primary cluster ready in %s", time.Since(start).Round(time.Millisecond))
	if n := len(c.Addrs()); n != 3 {
		t.Fatalf("%d nodes, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := c.Client()
	defer cl.Close()
	for _, key := range []string{"a", "b", "{p1}:x", "{p2}:x"} {
		if err := cl.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		want, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.PrimaryForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got != want.Options().Addr {
			t.Fatalf("PrimaryForKey(%s) = %s, the client routes it to %s", key, got, want.Options().Addr)
		}
	}
	if err := c.Kill(c.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill("127.0.0.1:1"); err == nil {
		t.Fatal("Kill of an address outside the cluster succeeded")
	}
}
