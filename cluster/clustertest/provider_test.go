package clustertest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster/clustertest"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

// backends are the registries the provider tests run on: the shared Redis
// and NATS servers (skipped, or failed under CI, when they do not answer).
func backends() []struct {
	name string
	make func(t *testing.T) clustertest.Backend
} {
	return []struct {
		name string
		make func(t *testing.T) clustertest.Backend
	}{
		{"memory", func(*testing.T) clustertest.Backend { return clustertest.Memory() }},
		{"redis", func(t *testing.T) clustertest.Backend { return clustertest.Redis(t, testservers.Redis(t)) }},
		{"nats", func(t *testing.T) clustertest.Backend { return clustertest.NATS(t, testservers.NATS(t)) }},
	}
}

// TestLeaseProviderLifecycle drives LeaseProviders on bare members (real
// protoactor MemberList, no remote endpoint) through the failure modes:
// three members see each other, a killed member leaves the others' view
// within TTL + Poll, a paused member fences itself and is dropped, and
// restarted members join as new incarnations of the same node.
func TestLeaseProviderLifecycle(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const ttl, pollEvery = time.Second, 100 * time.Millisecond
			h := clustertest.Start(t, 3, clustertest.Options{Backend: b.make(t), Bare: true, TTL: ttl, Poll: pollEvery})

			// Three members, one view: the same ids everywhere, node ids
			// known for each.
			want := h.MemberIDs(0)
			for i := range 3 {
				if got := h.MemberIDs(i); !slices.Equal(got, want) {
					t.Fatalf("%s sees %v, %s sees %v", h.NodeID(i), got, h.NodeID(0), want)
				}
				p := h.Provider(i)
				for j := range 3 {
					if got := p.NodeIDOf(h.MemberID(j)); got != h.NodeID(j) {
						t.Fatalf("%s: NodeIDOf(%s) = %q, want %q", h.NodeID(i), h.MemberID(j), got, h.NodeID(j))
					}
				}
				if recs := p.Records(); len(recs) != 3 {
					t.Fatalf("%s: Records() = %+v, want 3", h.NodeID(i), recs)
				}
				valid, exp := p.Lease()
				if until := time.Until(exp); !valid || until <= 0 || until > ttl {
					t.Fatalf("%s: Lease() = %v, expires in %v; want valid, within the ttl", h.NodeID(i), valid, until)
				}
			}

			// Kill: no deregistration, the others drop it once the lease
			// runs out.
			killedID := h.MemberID(2)
			h.Kill(2)
			took := waitAll(t, h, []int{0, 1}, 2, ttl+pollEvery+2*time.Second)
			t.Logf("killed member left both views after %v (ttl %v, poll %v)", took.Round(time.Millisecond), ttl, pollEvery)
			if took > ttl+pollEvery+time.Second {
				t.Errorf("killed member dropped after %v, want about ttl + poll = %v", took, ttl+pollEvery)
			}
			if slices.Contains(h.MemberIDs(0), killedID) {
				t.Fatalf("killed member %s still in the view", killedID)
			}

			// Pause (SIGSTOP) longer than the TTL: the others drop it, and
			// when it runs again it fences itself instead of renewing.
			pausedID := h.MemberID(1)
			p1 := h.Provider(1)
			h.Pause(1, ttl+700*time.Millisecond)
			took = h.WaitMembers(t, 0, 1, ttl+2*time.Second)
			t.Logf("paused member left the other's view after %v", took.Round(time.Millisecond))
			reason := h.WaitFenced(t, 1, 3*time.Second)
			t.Logf("paused member fenced itself: %s", reason)
			if !p1.Fenced() {
				t.Fatal("Fenced() = false after OnFenced")
			}
			if valid, _ := p1.Lease(); valid {
				t.Fatal("Lease() valid on a fenced member")
			}
			if !strings.Contains(reason, "no lease renewal") && !strings.Contains(reason, "registry") {
				t.Fatalf("fence reason %q names neither the local lease nor the registry", reason)
			}
			// A fenced member never registers its id again.
			for range 5 {
				time.Sleep(pollEvery)
				if slices.Contains(h.MemberIDs(0), pausedID) {
					t.Fatalf("fenced member %s came back", pausedID)
				}
			}

			// Restart both: new incarnations of the same nodes join.
			h.Restart(1)
			h.Restart(2)
			for i := range 3 {
				h.WaitMembers(t, i, 3, 5*time.Second)
			}
			ids := h.MemberIDs(0)
			for _, old := range []string{killedID, pausedID} {
				if slices.Contains(ids, old) {
					t.Fatalf("old incarnation %s is back in %v", old, ids)
				}
			}
			for i := range 3 {
				if got := h.Provider(0).NodeIDOf(h.MemberID(i)); got != h.NodeID(i) {
					t.Fatalf("NodeIDOf(new incarnation of %s) = %q", h.NodeID(i), got)
				}
			}
		})
	}
}

// TestLeaseProviderShutdownDeregisters: a graceful shutdown deletes the
// record, so the others see the member leave at their next poll, long
// before its (here 5 s) lease would run out.
func TestLeaseProviderShutdownDeregisters(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const ttl = 5 * time.Second
			h := clustertest.Start(t, 3, clustertest.Options{Backend: b.make(t), Bare: true, TTL: ttl})
			start := time.Now()
			h.Leave(2)
			took := waitAll(t, h, []int{0, 1}, 2, ttl/2)
			t.Logf("left member dropped by both after %v (lease %v)", time.Since(start).Round(time.Millisecond), ttl)
			if took > 1500*time.Millisecond {
				t.Errorf("others saw the member leave after %v: deregistration did not happen", took)
			}
			if err := h.Provider(2).Shutdown(true); err != nil {
				t.Fatalf("second Shutdown: %v (must be idempotent)", err)
			}
		})
	}
}

// waitAll waits until every member in is sees want members and returns
// how long that took.
func waitAll(t *testing.T, h *clustertest.Harness, is []int, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for _, i := range is {
		h.WaitMembers(t, i, want, timeout)
	}
	return time.Since(start)
}

// faultyRegistry wraps a registry and fails Renew on demand.
type faultyRegistry struct {
	registry.Registry
	failRenew atomic.Pointer[error]
}

func (f *faultyRegistry) Renew(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	if err := f.failRenew.Load(); err != nil {
		return *err
	}
	return f.Registry.Renew(ctx, rec, ttl)
}

// TestLeaseProviderFencing covers both fencing triggers on their own: the
// registry reporting the lease lost, and no renewal succeeding for a TTL
// (an unreachable registry).
func TestLeaseProviderFencing(t *testing.T) {
	t.Run("LeaseLostInRegistry", func(t *testing.T) {
		t.Parallel()
		reg := registry.NewMemoryRegistry()
		h := clustertest.Start(t, 2, clustertest.Options{Backend: func(testing.TB, time.Duration) registry.Registry { return reg }, Bare: true, TTL: 3 * time.Second})
		// Someone else removes member 1's record (an operator, a registry
		// failover): its next renewal fails with ErrLeaseLost.
		var self registry.MemberRecord
		for _, r := range h.Provider(1).Records() {
			if r.MemberID == h.MemberID(1) {
				self = r
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := reg.Deregister(ctx, self); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		reason := h.WaitFenced(t, 1, 3*time.Second)
		t.Logf("fenced %v after its record vanished: %s", time.Since(start).Round(time.Millisecond), reason)
		if !strings.Contains(reason, registry.ErrLeaseLost.Error()) {
			t.Fatalf("reason %q does not name the lost lease", reason)
		}
		h.WaitMembers(t, 0, 1, 2*time.Second)
	})

	t.Run("RegistryUnreachable", func(t *testing.T) {
		t.Parallel()
		const ttl = time.Second
		shared := registry.NewMemoryRegistry()
		var faulty []*faultyRegistry
		var mu sync.Mutex
		h := clustertest.Start(t, 2, clustertest.Options{Bare: true, TTL: ttl, Backend: func(testing.TB, time.Duration) registry.Registry {
			mu.Lock()
			defer mu.Unlock()
			f := &faultyRegistry{Registry: shared}
			faulty = append(faulty, f)
			return f
		}})
		down := errors.New("connection refused")
		start := time.Now()
		mu.Lock()
		faulty[1].failRenew.Store(&down)
		mu.Unlock()
		reason := h.WaitFenced(t, 1, ttl+2*time.Second)
		took := time.Since(start)
		t.Logf("fenced %v after renewals started failing: %s", took.Round(time.Millisecond), reason)
		if took > ttl+500*time.Millisecond {
			t.Errorf("fenced after %v, want within the ttl %v", took, ttl)
		}
		if !strings.Contains(reason, "no lease renewal") {
			t.Fatalf("reason %q, want the local lease expiry", reason)
		}
		if valid, _ := h.Provider(1).Lease(); valid {
			t.Fatal("Lease() valid after fencing")
		}
		h.WaitMembers(t, 0, 1, 2*time.Second)
	})
}

// TestLeaseProviderEvict: a member that evicts another (found dead from a
// dropped connection) drops it from its view at once and deletes its
// record, so the third member drops it at its next listing, long before
// the lease would run out; a later listing that still has the record does
// not bring it back. The evicted member, if it is alive after all, fences
// at its next renewal.
func TestLeaseProviderEvict(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const ttl, pollEvery = 10 * time.Second, 100 * time.Millisecond
			h := clustertest.Start(t, 3, clustertest.Options{Backend: b.make(t), Bare: true, TTL: ttl, Poll: pollEvery})
			var victim registry.MemberRecord
			for _, r := range h.Provider(0).Records() {
				if r.MemberID == h.MemberID(2) {
					victim = r
				}
			}
			if _, ok := h.Provider(0).Evict(h.Provider(0).Records()[0].Address()+"-nobody", "test"); ok {
				t.Fatal("Evict of an address no member has reported an eviction")
			}
			start := time.Now()
			id, ok := h.Provider(0).Evict(victim.Address(), "test: its port refuses connections")
			if !ok || id != victim.MemberID {
				t.Fatalf("Evict(%s) = %q, %v; want %s", victim.Address(), id, ok, victim.MemberID)
			}
			if got := h.MemberIDs(0); slices.Contains(got, victim.MemberID) {
				t.Fatalf("%s still sees the evicted member right after Evict: %v", h.NodeID(0), got)
			}
			h.WaitMembers(t, 1, 2, 2*time.Second)
			dropped := time.Since(start)
			h.WaitFenced(t, 2, 5*time.Second)
			t.Logf("the third member dropped the evicted one after %v (ttl %v); the evicted one, alive, fenced after %v",
				dropped.Round(time.Millisecond), ttl, time.Since(start).Round(time.Millisecond))
			time.Sleep(3 * pollEvery)
			if got := h.MemberIDs(0); slices.Contains(got, victim.MemberID) {
				t.Fatalf("the evicted member came back into %s's view: %v", h.NodeID(0), got)
			}
		})
	}
}
