//go:build !race

// Full members (real actor systems, gRPC on loopback, gossip) cannot share
// a process under the race detector: protoactor has data races between
// in-process members and in its remote/gossip code, which -race reports in
// every run (recorded with this pseudo-version):
//
//   - cluster/informer.go: one package-global math/rand.Rand (rnd) is
//     shuffled by every member's gossip actor concurrently;
//   - cluster/gossip_state_management.go setKey mutates the gossip state
//     while the remote endpoint writer marshals the same message;
//   - remote/blocklist.go: IsBlocked reads the block list without the
//     lock that Block takes;
//   - remote/server.go Start calls grpclog.SetLoggerV2, a gRPC global that
//     other members' gRPC goroutines read;
//   - cluster/member_list.go: Members() reads the member set without the
//     lock UpdateClusterTopology holds (the harness avoids it by
//     following the topology events instead).
//
// So these tests build without -race only: run them with
// `go test ./cluster/clustertest/`. The provider itself is race-tested on
// bare members (provider_test.go), which start no remote or gossip.

package clustertest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster/clustertest"
)

// echoAll asks every identity from every running member in from and
// returns the owner of each; members must agree.
func echoAll(ctx context.Context, t *testing.T, h *clustertest.Harness, from []int, ids []string) map[string]string {
	t.Helper()
	owner := map[string]string{}
	for _, f := range from {
		for _, id := range ids {
			got, err := h.Echo(ctx, f, id)
			if err != nil {
				t.Fatalf("echo %s from %s: %v", id, h.NodeID(f), err)
			}
			if prev, ok := owner[id]; ok && prev != got {
				t.Fatalf("echo %s: %s says %s hosts it, another member said %s", id, h.NodeID(f), got, prev)
			}
			owner[id] = got
		}
	}
	return owner
}

// echoConverge is echoAll for identities that were active before members
// joined: the old owner stops the activations it lost asynchronously, so
// for a moment two members may answer for one identity (protoactor #799;
// the journal's expected-version check is what keeps orders linear). It
// retries until all members agree or timeout passes.
func echoConverge(ctx context.Context, t *testing.T, h *clustertest.Harness, from []int, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		disagree := ""
	ask:
		for _, id := range ids {
			first := ""
			for _, f := range from {
				got, err := h.Echo(ctx, f, id)
				if err != nil {
					t.Fatalf("echo %s from %s: %v", id, h.NodeID(f), err)
				}
				if first == "" {
					first = got
				} else if got != first {
					disagree = fmt.Sprintf("%s: %s and %s answer", id, first, got)
					break ask
				}
			}
		}
		if disagree == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members still disagree on owners after %v: %s", timeout, disagree)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func identities(prefix string, n int) []string {
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("%s%d", prefix, k)
	}
	return ids
}

// TestRoutingAndFailover: every member reaches every identity and agrees on
// its owner; after Kill, the dead member's identities answer again from
// the survivors.
func TestRoutingAndFailover(t *testing.T) {
	const ttl, pollEvery = time.Second, 100 * time.Millisecond
	h := clustertest.Start(t, 3, clustertest.Options{TTL: ttl, Poll: pollEvery})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ids := identities("e", 24)
	owner := echoAll(ctx, t, h, []int{0, 1, 2}, ids)
	count := map[string]int{}
	for _, o := range owner {
		count[o]++
	}
	t.Logf("identities per member: %v", count)
	victim := 1
	if count[h.NodeID(2)] > count[h.NodeID(1)] {
		victim = 2
	}
	other := 3 - victim
	var orphans []string
	for _, id := range ids {
		if owner[id] == h.NodeID(victim) {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) == 0 {
		t.Fatalf("%s owns none of %d identities", h.NodeID(victim), len(ids))
	}

	killed := time.Now()
	h.Kill(victim)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	var detected [2]time.Duration
	for k, survivor := range []int{0, other} {
		wg.Go(func() {
			for len(h.Members(survivor)) != 2 && time.Since(killed) < 10*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			detected[k] = time.Since(killed)
		})
	}
	for k, id := range orphans {
		from := []int{0, other}[k%2]
		wg.Go(func() {
			got, err := h.Echo(ctx, from, id)
			took := time.Since(killed)
			if err != nil {
				t.Errorf("echo %s from %s after kill: %v", id, h.NodeID(from), err)
				return
			}
			if got == h.NodeID(victim) {
				t.Errorf("echo %s answered by the killed %s", id, got)
			}
			mu.Lock()
			worst = max(worst, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("failover: survivors dropped the killed %s after %v and %v; its %d identities, asked right after the kill, "+
		"answered from survivors within %v (ttl %v, poll %v)", h.NodeID(victim), detected[0].Round(time.Millisecond),
		detected[1].Round(time.Millisecond), len(orphans), worst.Round(time.Millisecond), ttl, pollEvery)
	// The survivors notice the death from the connection it dropped (its
	// port then refuses connections), not from its lease: well within the
	// TTL, and the requests in flight to it are retried at once.
	if max(detected[0], detected[1]) > ttl/2 {
		t.Errorf("survivors noticed the death after %v, want it from the dropped connection, well within the ttl %v", max(detected[0], detected[1]), ttl)
	}
	if worst > time.Second {
		t.Errorf("failover took %v, want under a second", worst)
	}

	// Requests that start after the view changed are served at once.
	start := time.Now()
	echoAll(ctx, t, h, []int{0, other}, orphans)
	t.Logf("after the view changed: %d requests in %v", 2*len(orphans), time.Since(start).Round(time.Millisecond))
}

// TestFullMembersLifecycle runs the membership scenarios on full members
// (real gRPC, gossip, grains) on each registry.
func TestFullMembersLifecycle(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const ttl, pollEvery = time.Second, 100 * time.Millisecond
			h := clustertest.Start(t, 3, clustertest.Options{Backend: b.make(t), TTL: ttl, Poll: pollEvery})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ids := identities("e", 6)
			echoAll(ctx, t, h, []int{0, 1, 2}, ids)

			killed := h.MemberID(2)
			h.Kill(2)
			took := h.WaitMembers(t, 0, 2, ttl+pollEvery+2*time.Second)
			t.Logf("killed member dropped after %v", took.Round(time.Millisecond))
			h.WaitMembers(t, 1, 2, time.Second)

			paused := h.MemberID(1)
			h.Pause(1, ttl+700*time.Millisecond)
			h.WaitMembers(t, 0, 1, ttl+2*time.Second)
			reason := h.WaitFenced(t, 1, 3*time.Second)
			t.Logf("paused member fenced: %s", reason)
			echoAll(ctx, t, h, []int{0}, ids) // node-0 alone serves everything

			h.Restart(1)
			h.Restart(2)
			for i := range 3 {
				h.WaitMembers(t, i, 3, 5*time.Second)
			}
			if now := h.MemberIDs(0); slices.Contains(now, killed) || slices.Contains(now, paused) {
				t.Fatalf("an old incarnation is back: %v", now)
			}
			echoAll(ctx, t, h, []int{0, 1, 2}, identities("fresh", 6))
			echoConverge(ctx, t, h, []int{0, 1, 2}, ids, 5*time.Second)

			// Graceful stop: protoactor deregisters first, then spends
			// seconds handing over and stopping gRPC.
			start := time.Now()
			left := make(chan struct{})
			go func() { h.Leave(0); close(left) }()
			took = h.WaitMembers(t, 1, 2, 5*time.Second)
			h.WaitMembers(t, 2, 2, time.Second)
			echoConverge(ctx, t, h, []int{1, 2}, ids, 5*time.Second)
			<-left
			t.Logf("gracefully stopped member left the others' view after %v; Leave took %v",
				took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("others saw the graceful leave after %v: it should not wait for the lease (%v)", took, ttl)
			}
		})
	}
}

// TestPlacementSpreadsEvenly: three full members on one host (loopback,
// ports that differ in their last digits, the README's --node-id cluster)
// each host about a third of the identities.
func TestPlacementSpreadsEvenly(t *testing.T) {
	h := clustertest.Start(t, 3, clustertest.Options{})
	defer h.Close()
	for i := range 3 {
		h.WaitMembers(t, i, 3, 15*time.Second)
	}
	ids := make([]string, 1500)
	for i := range ids {
		ids[i] = fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	count := map[string]int{}
	for _, owner := range echoAll(ctx, t, h, []int{0}, ids) {
		count[owner]++
	}
	third := float64(len(ids)) / 3
	for i := range 3 {
		c := count[h.NodeID(i)]
		if dev := (float64(c) - third) / third; dev > 0.15 || dev < -0.15 {
			t.Errorf("%s hosts %d of %d identities (%.0f %% off a third): %v", h.NodeID(i), c, len(ids), 100*dev, count)
		}
	}
	t.Logf("owners of %d identities: %v", len(ids), count)
}
