package registrytest

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

// SecretFactory returns a client of one fresh cluster's registry on every
// call with the same t: the clients of one t share the backend (as the
// members of one cluster do), those of different t's must not. Like
// Factory, it registers its own cleanup.
type SecretFactory func(t *testing.T) registry.SecretKeeper

// RunSecret is the contract of registry.SecretKeeper: a first call stores a
// usable random secret, later calls and other clients of the same cluster
// get the same bytes, concurrent first calls agree, and another cluster
// gets another secret.
func RunSecret(t *testing.T, newClient SecretFactory) {
	t.Run("SameSecretForEveryClient", func(t *testing.T) {
		a, b := newClient(t), newClient(t)
		s1 := secret(t, a)
		if err := registry.CheckStoredSecret(s1); err != nil {
			t.Fatalf("the new secret does not validate: %v", err)
		}
		if s2 := secret(t, a); !bytes.Equal(s1, s2) {
			t.Fatal("a second call returned another secret")
		}
		if s3 := secret(t, b); !bytes.Equal(s1, s3) {
			t.Fatal("another client of the same cluster got another secret")
		}
	})
	t.Run("ConcurrentFirstCallsAgree", func(t *testing.T) {
		const n = 8
		clients := make([]registry.SecretKeeper, n)
		for i := range clients {
			clients[i] = newClient(t)
		}
		got := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() { got[i], errs[i] = c.ClusterSecret(ctxT(t)) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("client %d: %v", i, errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("clients 0 and %d got different secrets", i)
			}
		}
	})
	t.Run("ClustersHaveTheirOwn", func(t *testing.T) {
		var first []byte
		t.Run("one", func(t *testing.T) { first = secret(t, newClient(t)) })
		t.Run("two", func(t *testing.T) {
			if bytes.Equal(first, secret(t, newClient(t))) {
				t.Fatal("two clusters got the same secret")
			}
		})
	})
	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := newClient(t).ClusterSecret(ctx); err == nil {
			t.Fatal("ClusterSecret with a cancelled context succeeded")
		}
	})
}

func secret(t *testing.T, k registry.SecretKeeper) []byte {
	t.Helper()
	s, err := k.ClusterSecret(ctxT(t))
	if err != nil {
		t.Fatalf("ClusterSecret: %v", err)
	}
	return s
}
