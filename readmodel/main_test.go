package readmodel_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: Restore's
// loaders and a Snapshotter's Run must all end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
