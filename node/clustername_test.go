package node_test

import (
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
