package natsreg_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestNATSRegistrySecretContract(t *testing.T) {
	url := testservers.NATS(t)
	var mu sync.Mutex
	buckets := map[*testing.T]string{}
	registrytest.RunSecret(t, func(t *testing.T) registry.SecretKeeper {
		mu.Lock()
		bucket, ok := buckets[t]
		if !ok {
			bucket = "ostest_" + registrytest.NewID("s")
			buckets[t] = bucket
			t.Cleanup(func() {
				deleteBucket(t, url, bucket)
				deleteBucket(t, url, natsreg.SecretBucket(bucket))
			})
		}
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		reg, err := natsreg.New(ctx, natsreg.Options{URL: url, Bucket: bucket, Cluster: "c1", TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reg.Close() })
		return reg
	})
}
