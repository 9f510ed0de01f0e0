package cluster_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/backoff"
)

// echo answers a StringValue with itself.
type echo struct{}

func (echo) Receive(ctx actor.Context) {
	if s, ok := ctx.Message().(*wrapperspb.StringValue); ok {
		ctx.Respond(s)
	}
}

// leases makes the lease providers of a member's incarnations on one
// memory registry and keeps them, so that a test can pause the newest one;
// past failAfter providers (if set) it fails, as a registry that went away.
type leases struct {
	reg       *registry.MemoryRegistry
	failAfter int

	mu        sync.Mutex
	providers []*cluster.LeaseProvider
	calls     int
}

func (l *leases) newProvider(_ context.Context, fenced func(string)) (pcluster.ClusterProvider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.failAfter > 0 && l.calls > l.failAfter {
		return nil, errors.New("registry unreachable")
	}
	p := cluster.NewLeaseProvider(l.reg, cluster.LeaseOptions{NodeID: "n1", TTL: time.Second, Poll: 50 * time.Millisecond, OnFenced: fenced})
	l.providers = append(l.providers, p)
	return p, nil
}

func (l *leases) newest() *cluster.LeaseProvider {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.providers[len(l.providers)-1]
}

func (l *leases) count() (providers, calls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.providers), l.calls
}

func newMember(l *leases, rejoined func()) *cluster.Member {
	return cluster.NewMember(cluster.MemberConfig{
		Node: cluster.Config{NodeID: "n1", Kinds: []*pcluster.Kind{
			pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return echo{} })),
		}},
		NewProvider: l.newProvider,
		Rejoined:    rejoined,
		Backoff:     backoff.Policy{Base: 20 * time.Millisecond, Max: 50 * time.Millisecond},
	})
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func echoVia(t *testing.T, m *cluster.Member, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := m.Request(ctx, id, "echo", wrapperspb.String(id))
	if err != nil {
		t.Fatalf("request %s: %v", id, err)
	}
	if s, ok := res.(*wrapperspb.StringValue); !ok || s.GetValue() != id {
		t.Fatalf("request %s answered %v", id, res)
	}
}

// A member whose lease ran out refuses to serve, stops the fenced
// incarnation and joins again as a new one (a new member id), by itself.
func TestMemberRejoinsAfterFencing(t *testing.T) {
	l := &leases{reg: registry.NewMemoryRegistry()}
	var rejoined atomic.Int32
	m := newMember(l, func() { rejoined.Add(1) })
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(false)
	if err := m.Start(context.Background()); !errors.Is(err, cluster.ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	echoVia(t, m, "a")
	if err := m.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	ms := m.Members()
	if len(ms) != 1 || ms[0].NodeID != "n1" || ms[0].Address != m.Address() {
		t.Fatalf("members %+v, address %s", ms, m.Address())
	}
	first := ms[0].ID

	// SIGSTOP of the membership loop: the lease runs out, the member
	// refuses to serve and fences when it runs again.
	var refused atomic.Bool
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := m.Serving(); err != nil && strings.Contains(err.Error(), "lost its cluster lease") {
				refused.Store(true)
			}
		}
	}()
	l.newest().SimulatePause(1500 * time.Millisecond)
	waitUntil(t, 10*time.Second, "a new incarnation", func() bool {
		n, _ := l.count()
		return n == 2 && m.Ready() == nil
	})
	close(stopWatch)
	<-watched
	if !refused.Load() {
		t.Fatal("the member served while its lease was lost")
	}
	if got := rejoined.Load(); got != 1 {
		t.Fatalf("Rejoined called %d times, want 1", got)
	}
	ms = m.Members()
	if len(ms) != 1 || ms[0].ID == first || ms[0].NodeID != "n1" {
		t.Fatalf("members after the rejoin %+v (first incarnation %s)", ms, first)
	}
	echoVia(t, m, "b")
}

// Stop during a rejoin that keeps failing ends it, leaves no goroutine of
// the member, and the member refuses requests afterwards.
func TestMemberStopDuringFailingRejoin(t *testing.T) {
	before := goleak.IgnoreCurrent()
	l := &leases{reg: registry.NewMemoryRegistry(), failAfter: 1}
	m := newMember(l, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.newest().SimulatePause(1500 * time.Millisecond)
	waitUntil(t, 10*time.Second, "failing rejoins", func() bool { _, calls := l.count(); return calls >= 3 })
	if err := m.Ready(); err == nil {
		t.Fatal("ready while rejoins fail")
	}
	stopped := make(chan struct{})
	go func() { m.Stop(true); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop during a failing rejoin did not return")
	}
	_, calls := l.count()
	time.Sleep(100 * time.Millisecond) // twice the backoff: no attempt after Stop
	if _, after := l.count(); after != calls {
		t.Fatalf("%d rejoin attempts after Stop", after-calls)
	}
	leftAfter(t, before)
	if _, err := m.Request(context.Background(), "a", "echo", wrapperspb.String("a")); !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("request after Stop = %v, want ErrUnavailable", err)
	}
	m.Stop(false) // idempotent
}

// Stop before Start is allowed; the member then never starts.
func TestMemberStopBeforeStart(t *testing.T) {
	l := &leases{reg: registry.NewMemoryRegistry()}
	m := newMember(l, nil)
	m.Stop(true)
	if err := m.Start(context.Background()); !errors.Is(err, cluster.ErrStarted) {
		t.Fatalf("Start after Stop = %v, want ErrStarted", err)
	}
	if _, calls := l.count(); calls != 0 {
		t.Fatalf("%d providers made", calls)
	}
	if ms := m.Members(); ms != nil || m.Address() != "" {
		t.Fatalf("members %v, address %q of a stopped member", ms, m.Address())
	}
	if err := m.Ready(); err == nil {
		t.Fatal("a stopped member is ready")
	}
}

// leftAfter fails t if goroutines of the member's code that did not run
// when before was taken are still running (protoactor's own leftovers,
// listed in clustertest's TestMain, are not the member's business here).
func leftAfter(t *testing.T, before goleak.Option) {
	t.Helper()
	err := goleak.Find(before)
	if err != nil && strings.Contains(err.Error(), "cluster.(*Member)") {
		t.Fatalf("goroutines of the member after Stop: %v", err)
	}
}
