package redis_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// backend's committer, connections and consumers must all stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
