package natsreg_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/cluster/natsreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/natsconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestRegistry returns a registry on a bucket unique to t, deleted
// when t ends.
func newTestRegistry(t *testing.T, url string, mode natsreg.Mode, ttl time.Duration) *natsreg.Registry {
	return newReplicatedRegistry(t, url, mode, ttl, 1)
}

func newReplicatedRegistry(t *testing.T, url string, mode natsreg.Mode, ttl time.Duration, replicas int) *natsreg.Registry {
	t.Helper()
	bucket := "ostest_" + registrytest.NewID("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := natsreg.New(ctx, natsreg.Options{URL: url, Bucket: bucket, Cluster: "c1", Mode: mode, TTL: ttl, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = reg.Close()
		deleteBucket(t, url, bucket)
	})
	return reg
}

func deleteBucket(t *testing.T, url, bucket string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup of bucket %s: %v", bucket, err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteKeyValue(ctx, bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Logf("cleanup of bucket %s: %v", bucket, err)
	}
}

// The shared server is whatever runs on the machine (nats-server 2.9 here:
// ModeBucketTTL); the embedded one is nats-server/v2 from go.mod (2.11+:
// ModeKeyTTL), and also runs the fallback mode explicitly.
func TestNATSRegistryContract(t *testing.T) {
	opts := registrytest.Options{TTL: time.Second, ExpirySlack: 2 * time.Second}
	t.Run("SharedServerAuto", func(t *testing.T) {
		t.Parallel()
		url := testservers.NATS(t)
		var once sync.Once
		registrytest.Run(t, opts, func(t *testing.T, ttl time.Duration) registry.Registry {
			reg := newTestRegistry(t, url, natsreg.ModeAuto, ttl)
			once.Do(func() { t.Logf("shared server %s: expiry mode %v", url, reg.Mode()) })
			return reg
		})
	})
	embedded := testservers.StartNATS(t)
	t.Run("EmbeddedKeyTTL", func(t *testing.T) {
		t.Parallel()
		registrytest.Run(t, opts, func(t *testing.T, ttl time.Duration) registry.Registry {
			reg := newTestRegistry(t, embedded.URL(), natsreg.ModeKeyTTL, ttl)
			if reg.Mode() != natsreg.ModeKeyTTL {
				t.Fatalf("mode %v, want key-ttl", reg.Mode())
			}
			return reg
		})
	})
	t.Run("EmbeddedBucketTTL", func(t *testing.T) {
		t.Parallel()
		registrytest.Run(t, opts, func(t *testing.T, ttl time.Duration) registry.Registry {
			return newTestRegistry(t, embedded.URL(), natsreg.ModeBucketTTL, ttl)
		})
	})
}

func TestNATSBucketTTLMismatch(t *testing.T) {
	url := testservers.NATS(t)
	reg := newTestRegistry(t, url, natsreg.ModeBucketTTL, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := reg.Register(ctx, registrytest.Record(registrytest.NewID("m"), "n1"), 3*time.Second)
	if !errors.Is(err, natsreg.ErrTTLMismatch) {
		t.Fatalf("Register with a lease other than the bucket's max age = %v, want ErrTTLMismatch", err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSharedConn runs the registry on a connection it is handed, which its
// Close leaves open.
func TestSharedConn(t *testing.T) {
	url := testservers.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := natsconn.Connect(ctx, natsconn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bucket := "ostest_" + registrytest.NewID("b")
	t.Cleanup(func() { deleteBucket(t, url, bucket) })
	reg, err := natsreg.New(ctx, natsreg.Options{Conn: nc, Bucket: bucket, Mode: natsreg.ModeBucketTTL, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rec := registrytest.Record(registrytest.NewID("m"), "n1")
	if err := reg.Register(ctx, rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.List(ctx); err != nil || len(got) != 1 || got[0].MemberID != rec.MemberID {
		t.Fatalf("List = %+v, %v; want the one member", got, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() {
		t.Fatal("the registry closed the connection it was handed")
	}
}
