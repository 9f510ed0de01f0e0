package redis_test

import (
	"context"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/persistence/redis"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// backend's committer, connections and consumers must all stop on Close.
// It stops the shared cluster the cluster tests started.
func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{}) // a killed node makes go-redis log every dial it fails
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

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
