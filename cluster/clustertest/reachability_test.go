//go:build !race

// Full members only (see harness_test.go for why these build without -race).

package clustertest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/clustertest"
	"github.com/ordersystem/ordersystem/internal/poll"
)

// logTee sends every log line to t.Log and keeps them for the test to read.
type logTee struct {
	t    *testing.T
	mu   sync.Mutex
	buf  bytes.Buffer
	done atomic.Bool
}

func newLogTee(t *testing.T) (*logTee, *slog.Logger) {
	w := &logTee{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return w, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (w *logTee) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// count is how many log lines contain s.
func (w *logTee) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Count(w.buf.String(), s)
}

// ownedBy returns n identities that member from routes to member owner.
func ownedBy(t *testing.T, h *clustertest.Harness, from, owner, n int) []string {
	t.Helper()
	addr := h.Node(owner).Address()
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if i > 10000 {
			t.Fatalf("no identity of %s found", h.NodeID(owner))
		}
		id := fmt.Sprintf("probe-%d", i)
		if h.Node(from).Owner(id, clustertest.EchoKind) == addr {
			ids = append(ids, id)
		}
	}
	return ids
}

func assertNotFenced(t *testing.T, h *clustertest.Harness, members ...int) {
	t.Helper()
	for _, i := range members {
		if reason, fenced := h.Fenced(i); fenced {
			t.Fatalf("%s fenced itself: %s", h.NodeID(i), reason)
		}
	}
}

// TestCutMemberFencesAndOthersFailFast cuts one member's node-to-node
// traffic (its registry connection stays up, so its lease stays valid):
// the others fail fast on its actors while it is suspect, it fences itself
// within the isolation bound, and once its record is gone the others serve
// its actors from the new owner.
func TestCutMemberFencesAndOthersFailFast(t *testing.T) {
	t.Parallel()
	h := clustertest.Start(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := ownedBy(t, h, 0, 2, 3)
	for _, id := range ids {
		if got, err := h.Echo(ctx, 0, id); err != nil || got != h.NodeID(2) {
			t.Fatalf("echo %s before the cut: %q, %v (want %s)", id, got, err, h.NodeID(2))
		}
	}

	cutAt := time.Now()
	h.Cut(2, true)
	// While node-2 is suspect and still listed, node-0 refuses its actors
	// at once (ErrOwnerUnreachable) instead of waiting out the attempt.
	var fastErr error
	err := poll.Until(5*time.Second, poll.True("fail fast", func() bool {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, fastErr = h.Echo(reqCtx, 0, ids[0])
		return errors.Is(fastErr, cluster.ErrOwnerUnreachable)
	}))
	if err != nil {
		t.Fatalf("node-0 never failed fast on %s after the cut: last error %v", ids[0], fastErr)
	}
	if !errors.Is(fastErr, cluster.ErrUnavailable) {
		t.Fatalf("ErrOwnerUnreachable is not an ErrUnavailable: %v", fastErr)
	}
	suspectAfter := time.Since(cutAt)
	var r cluster.PeerReachability
	for _, p := range h.Node(0).Reachability() {
		if p.ID == h.MemberID(2) {
			r = p
		}
	}
	if !r.Suspect || r.Reachable {
		t.Fatalf("node-0's reachability of node-2 after the cut: %+v, want suspect and unreachable", r)
	}

	reason := h.WaitFenced(t, 2, h.Options().IsolationBound+5*time.Second)
	fencedAfter := time.Since(cutAt)
	if !strings.Contains(reason, "reached 0 of the 2 other members") {
		t.Fatalf("node-2 fenced for another reason: %s", reason)
	}
	t.Logf("after the cut: node-0 failed fast after %v, node-2 fenced after %v (isolation bound %v)",
		suspectAfter.Round(time.Millisecond), fencedAfter.Round(time.Millisecond), h.Options().IsolationBound)

	// node-2 removed its record: the others drop it and serve its actors.
	h.WaitMembers(t, 0, 2, 5*time.Second)
	h.WaitMembers(t, 1, 2, 5*time.Second)
	for _, id := range ids {
		var got string
		err := poll.Until(5*time.Second, poll.True("new owner", func() bool {
			reqCtx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			got, err = h.Echo(reqCtx, 0, id)
			return err == nil
		}))
		if err != nil || got == h.NodeID(2) {
			t.Fatalf("echo %s after node-2 left: %q, %v", id, got, err)
		}
	}
	assertNotFenced(t, h, 0, 1)
}

// TestNoFenceWhileAllReachable runs requests between three members for
// longer than the isolation bound: nobody is suspect and nobody fences.
func TestNoFenceWhileAllReachable(t *testing.T) {
	t.Parallel()
	h := clustertest.Start(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	until := time.Now().Add(h.Options().IsolationBound + time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for from := range 3 {
		wg.Go(func() {
			for i := 0; time.Now().Before(until); i++ {
				if _, err := h.Echo(ctx, from, fmt.Sprintf("load-%d", i%200)); err != nil {
					failed.Add(1)
					t.Logf("echo from %s: %v", h.NodeID(from), err)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests failed while every member was reachable", n)
	}
	assertNotFenced(t, h, 0, 1, 2)
	for i := range 3 {
		rs := h.Node(i).Reachability()
		if len(rs) != 2 {
			t.Fatalf("%s knows the reachability of %d members, want 2: %+v", h.NodeID(i), len(rs), rs)
		}
		for _, r := range rs {
			if !r.Reachable || r.Suspect || r.RoundTrip <= 0 {
				t.Fatalf("%s sees %s as %+v, want reachable with a round trip", h.NodeID(i), r.Address, r)
			}
		}
		if s := h.Node(i).ProbeStats(); s.Sent == 0 || s.FailedFast != 0 || s.Divergences != 0 {
			t.Fatalf("%s probe stats %+v, want probes sent and nothing failed fast or diverged", h.NodeID(i), s)
		}
	}
}

// TestDivergenceDetectedAndHealed drops node-2 from node-0's member list
// directly (what protoactor's gossip did to a member whose heartbeat looked
// stale): protoactor blocks that member id at node-0 for good, so listing
// the registry again cannot heal it there. The members see the digests
// differ, log it once and count it; node-2 sees that node-0 dropped it and
// fences itself, and its next incarnation is in every view again.
func TestDivergenceDetectedAndHealed(t *testing.T) {
	t.Parallel()
	logs, log := newLogTee(t)
	h := clustertest.Start(t, 3, clustertest.Options{Logger: log})
	dropped := h.MemberID(2)
	start := time.Now()
	h.Node(0).SimulateDrop(dropped)
	h.WaitMembers(t, 0, 2, 5*time.Second)

	reason := h.WaitFenced(t, 2, 10*time.Second)
	if !strings.Contains(reason, "dropped this member from its view") {
		t.Fatalf("node-2 fenced for another reason: %s", reason)
	}
	detected := time.Since(start)
	var divergences uint64
	for i := range 3 {
		divergences += h.Node(i).ProbeStats().Divergences
	}
	if divergences == 0 {
		t.Fatal("no member counted the divergence")
	}
	if n := logs.count("member views diverge"); n == 0 {
		t.Fatal("no member logged the divergence")
	}
	// node-2 removed its record: the views agree again without it.
	h.WaitMembers(t, 1, 2, 5*time.Second)

	h.Restart(2)
	for i := range 3 {
		h.WaitMembers(t, i, 3, 10*time.Second)
	}
	if slices.Contains(h.MemberIDs(0), dropped) {
		t.Fatalf("node-0 lists the dropped incarnation %s again", dropped)
	}
	err := poll.Until(5*time.Second, poll.True("one view", func() bool {
		d := h.Node(0).View().Digest
		return h.Node(1).View().Digest == d && h.Node(2).View().Digest == d
	}))
	if err != nil {
		t.Fatalf("views still differ after the rejoin: %v %v %v", h.Node(0).View(), h.Node(1).View(), h.Node(2).View())
	}
	t.Logf("divergence detected and the dropped member fenced after %v (%d divergences counted)", detected.Round(time.Millisecond), divergences)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	echoAll(ctx, t, h, []int{0, 1, 2}, []string{"a", "b", "c", "d", "e", "f"})
	assertNotFenced(t, h, 0, 1)
}

// TestGossipCannotDropALeasedMember stops one member's protoactor gossip,
// so that its heartbeat ages on the others past protoactor's default
// expiration (20 s), then makes the others hand their views to protoactor
// again (protoactor drops blocked members there): the member stays in
// every view, because its lease is valid. Before the heartbeat expiry was
// turned off, node-0 and node-1 dropped it here for good.
func TestGossipCannotDropALeasedMember(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out protoactor's 20 s heartbeat expiration")
	}
	t.Parallel()
	h := clustertest.Start(t, 3, clustertest.Options{})
	h.Node(2).SimulateGossipStall()
	// Wait past the expiration and a few gossip rounds (300 ms each).
	deadline := time.Now().Add(22 * time.Second)
	for time.Now().Before(deadline) {
		for i := range 3 {
			if got := len(h.Members(i)); got != 3 {
				t.Fatalf("%s sees %d members while node-2's gossip is stalled", h.NodeID(i), got)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.Provider(0).Relist()
	h.Provider(1).Relist()
	time.Sleep(time.Second) // a few listings; a drop would show now
	for i := range 3 {
		if got := h.MemberIDs(i); len(got) != 3 || !slices.Contains(got, h.MemberID(2)) {
			t.Fatalf("%s sees %v after node-2's gossip heartbeat aged, want all three", h.NodeID(i), got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range ownedBy(t, h, 0, 2, 2) {
		if got, err := h.Echo(ctx, 0, id); err != nil || got != h.NodeID(2) {
			t.Fatalf("echo %s: %q, %v (want %s)", id, got, err, h.NodeID(2))
		}
	}
	assertNotFenced(t, h, 0, 1, 2)
}

// TestAsymmetricPartitionFencesNobody cuts only the link between node-0
// and node-1: each still reaches the other through node-2, so nobody
// fences; node-0 fails fast on node-1's actors (it cannot reach them),
// node-2 serves them, and once the link is back node-0 does too.
func TestAsymmetricPartitionFencesNobody(t *testing.T) {
	t.Parallel()
	h := clustertest.Start(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := ownedBy(t, h, 0, 1, 2)
	// Activate them first: a request to a known activation is bounded by
	// its attempt, while an activation request through a cut link leaves a
	// lookup waiting out protoactor's 5 s (goleak would see it at the end).
	for _, id := range ids {
		for _, from := range []int{0, 2} {
			if got, err := h.Echo(ctx, from, id); err != nil || got != h.NodeID(1) {
				t.Fatalf("echo %s before the cut: %q, %v", id, got, err)
			}
		}
	}
	a, b := h.Node(0).Address(), h.Node(1).Address()
	cluster.SimulateLinkCut(a, b, true)
	defer cluster.SimulateLinkCut(a, b, false)

	var fastErr error
	err := poll.Until(5*time.Second, poll.True("fail fast", func() bool {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, fastErr = h.Echo(reqCtx, 0, ids[0])
		return errors.Is(fastErr, cluster.ErrOwnerUnreachable)
	}))
	if err != nil {
		t.Fatalf("node-0 never failed fast on node-1's %s: last error %v", ids[0], fastErr)
	}
	// Past the isolation bound: nobody fenced, node-1 is reachable from
	// node-0 through node-2 only, and node-2 serves node-1's actors.
	time.Sleep(h.Options().IsolationBound + time.Second)
	assertNotFenced(t, h, 0, 1, 2)
	for _, r := range h.Node(0).Reachability() {
		if r.ID == h.MemberID(1) && (r.Direct || !r.Reachable || !r.Suspect) {
			t.Fatalf("node-0 sees node-1 as %+v, want reachable through node-2 only, and suspect", r)
		}
	}
	for _, id := range ids {
		if got, err := h.Echo(ctx, 2, id); err != nil || got != h.NodeID(1) {
			t.Fatalf("echo %s through node-2: %q, %v (want %s)", id, got, err, h.NodeID(1))
		}
	}

	cluster.SimulateLinkCut(a, b, false)
	err = poll.Until(5*time.Second, poll.True("node-0 reaches node-1", func() bool {
		reqCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		got, err := h.Echo(reqCtx, 0, ids[0])
		return err == nil && got == h.NodeID(1)
	}))
	if err != nil {
		t.Fatalf("node-0 does not reach node-1's actors after the link is back: %v", err)
	}
	assertNotFenced(t, h, 0, 1, 2)
}
