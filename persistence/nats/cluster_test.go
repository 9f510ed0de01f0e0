package nats

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
)

// cluster starts a private three-server JetStream cluster for one test.
func cluster(t *testing.T) *testservers.JSCluster {
	t.Helper()
	return testservers.StartJetStreamCluster(t, 3)
}

// TestConcurrentOpensOnACluster: three backends opened at once on a fresh
// three-server cluster with R3 (three nodes starting together) all open,
// agree on the partition count, and see one another's appends.
func TestConcurrentOpensOnACluster(t *testing.T) {
	c := cluster(t)
	opts := Options{URL: c.URLs(), Replicas: 3}
	opts.Stream, opts.SubjectPrefix = uniqueNames(t)
	backends := make([]*Backend, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			backends[i], errs[i] = New(ctx, opts)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("backend %d of 3 opened at once: %v", i, err)
		}
		t.Cleanup(func() { _ = backends[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, b := range backends {
		if b.Partitions() != persistence.DefaultPartitions {
			t.Fatalf("backend %d has %d partitions", i, b.Partitions())
		}
		if _, err := b.Append(ctx, fmt.Sprint("conc-", i), 0, []persistence.Record{{Type: "Ev"}}); err != nil {
			t.Fatalf("append through backend %d: %v", i, err)
		}
	}
	for i := range backends {
		if rs, err := backends[(i+1)%3].Load(ctx, fmt.Sprint("conc-", i), 0); err != nil || len(rs) != 1 {
			t.Fatalf("load conc-%d through another backend: %d records, %v", i, len(rs), err)
		}
	}
}
