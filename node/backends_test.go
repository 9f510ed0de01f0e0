package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// TestBackendErrorsHidePasswords: a node that cannot open a backend names
// the flag and the address without its password, malformed URLs included.
func TestBackendErrorsHidePasswords(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", testservers.FreePort(t))
	for _, c := range []struct {
		mutate func(*node.Config)
		want   []string
	}{
		{func(c *node.Config) { c.Persistence, c.Redis = node.Redis, "redis://:s3cret@"+closed }, []string{"--persistence=redis", "--redis=redis://" + closed}},
		{func(c *node.Config) { c.Transport, c.Redis = node.Redis, "redis://user:s3 cret@"+closed }, []string{"--transport=redis", "--redis", "redis://" + closed}},
		{func(c *node.Config) { c.Persistence, c.Redis = node.Redis, "redis://:s3cret@[bad" }, []string{"--persistence=redis", "--redis", "redis://[bad"}},
		{func(c *node.Config) { c.Transport, c.NATS = node.NATS, "nats://u:s3cret@"+closed }, []string{"--transport=nats", "--nats=nats://" + closed, "is NATS with JetStream running"}},
		{func(c *node.Config) { c.Persistence, c.NATS = node.NATS, "nats://s3cret@"+closed }, []string{"--persistence=nats", "--nats=nats://" + closed}},
	} {
		cfg := node.Default()
		cfg.Port = 0
		cfg.NodeID = "n1"
		c.mutate(&cfg)
		n, err := node.Start(context.Background(), cfg)
		if err == nil {
			_ = n.Shutdown(context.Background())
			t.Fatalf("%s/%s started with nothing listening", cfg.Redis, cfg.NATS)
		}
		msg := err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q does not say %q", msg, w)
			}
		}
		if strings.Contains(msg, "s3") {
			t.Errorf("error %q shows the password", msg)
		}
	}
}
