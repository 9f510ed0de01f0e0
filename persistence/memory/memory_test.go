package memory_test

import (
	"testing"

	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
	"github.com/ordersystem/ordersystem/persistence/memory"
)

func TestContract(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) persistence.Backend { return memory.New() }, journaltest.Features{})
}
