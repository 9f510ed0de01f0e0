package node_test

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ordersystem/ordersystem/node"
)

func TestClusterNameValidation(t *testing.T) {
	for _, name := range []string{"ordersystem", "a", "0", "t-1_x", strings.Repeat("a", 63)} {
		c := node.Default()
		c.ClusterName = name
		if err := c.Validate(); err != nil {
			t.Errorf("--cluster-name=%s refused: %v", name, err)
		}
	}
	for _, name := range []string{"", "Prod", "a:b", "a.b", "a b", "-a", "_a", "a*", "a>", "ü", strings.Repeat("a", 64), "orders"} {
		c := node.Default()
		c.ClusterName = name
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "--cluster-name="+name+":") {
			t.Errorf("--cluster-name=%q: got %v, want an error naming the flag and the value", name, err)
		}
	}
}

func randomClusterName(t *testing.T, tag string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t-" + hex.EncodeToString(b[:]) + "-" + tag
}

// clusterOn makes the node a --cluster member of cluster name with journal,
// transport and membership on backend at addr.
func clusterOn(backend, addr, name string) func(*node.Config) {
	return func(c *node.Config) {
		c.Transport, c.Persistence = backend, backend
		if backend == node.Redis {
			c.Redis = addr
		} else {
			c.NATS = addr
		}
		c.Cluster = true
		c.ClusterName = name
		c.NodeID = name + "-n1"
		c.RemotePort = 0
	}
}
