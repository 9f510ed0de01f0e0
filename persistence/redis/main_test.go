package redis_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/persistence/redis"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// backend's committer, connections and consumers must all stop on Close.
// It stops the shared cluster the cluster tests started.
func TestMain(m *testing.M) {
	code := m.Run()
	redis.SharedCluster.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
