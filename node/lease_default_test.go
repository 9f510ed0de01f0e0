package node

import (
	"testing"
	"time"
)

// The lease defaults to 2 s, and to 15 s when the membership bucket is
// replicated over a JetStream cluster (whose leader elections outlast a
// 2 s lease); a --lease-ttl that was set wins either way.
func TestLeaseTTLDefault(t *testing.T) {
	cases := []struct {
		name     string
		set      func(*Config)
		lease    time.Duration
		explicit time.Duration
	}{
		{"in memory", func(c *Config) {}, DefaultLeaseTTL, 0},
		{"redis", func(c *Config) { c.Cluster, c.Persistence, c.Transport, c.Redis = true, Redis, Redis, "127.0.0.1:6379" }, DefaultLeaseTTL, 0},
		{"nats R1", func(c *Config) {
			c.Cluster, c.Persistence, c.Transport, c.NATS = true, NATS, NATS, "nats://127.0.0.1:4222"
		}, DefaultLeaseTTL, 0},
		{"nats R3", func(c *Config) {
			c.Cluster, c.Persistence, c.Transport, c.NATS, c.NATSReplicas = true, NATS, NATS, "nats://127.0.0.1:4222", 3
		}, ReplicatedNATSLeaseTTL, 0},
		{"nats R3, --lease-ttl 3s", func(c *Config) {
			c.Cluster, c.Persistence, c.Transport, c.NATS, c.NATSReplicas = true, NATS, NATS, "nats://127.0.0.1:4222", 3
		}, 3 * time.Second, 3 * time.Second},
		{"redis journal, membership on nats R3", func(c *Config) {
			c.Cluster, c.Persistence, c.Transport, c.Redis, c.NATS, c.NATSReplicas, c.Discovery = true, Redis, Redis, "127.0.0.1:6379", "nats://127.0.0.1:4222", 3, NATS
		}, ReplicatedNATSLeaseTTL, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c)
			c.LeaseTTL = tc.explicit
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.LeaseTTL != tc.lease {
				t.Errorf("lease %v, want %v", c.LeaseTTL, tc.lease)
			}
		})
	}
}
