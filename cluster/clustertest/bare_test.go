package clustertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/poll"
)

// Provider lifecycle rules that need a protoactor cluster but no harness.

func TestLeaseProviderStartRules(t *testing.T) {
	reg := registry.NewMemoryRegistry()

	bad := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{TTL: time.Second, Heartbeat: 2 * time.Second})
	if _, err := startBare(bad); err == nil {
		t.Fatal("StartMember accepted a heartbeat above the ttl")
	}

	p := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "n1", TTL: time.Second})
	c, err := startBare(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.ActorSystem.Shutdown()
	if err := p.StartMember(c); !errors.Is(err, cluster.ErrProviderUsed) {
		t.Fatalf("second StartMember = %v, want ErrProviderUsed", err)
	}
	if err := p.Shutdown(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if recs, _ := reg.List(ctx); len(recs) != 0 {
		t.Fatalf("records after Shutdown(true): %+v", recs)
	}
	if valid, _ := p.Lease(); valid {
		t.Fatal("Lease() valid after Shutdown")
	}
	// A provider serves one incarnation: no second start after Shutdown.
	if err := p.StartMember(c); !errors.Is(err, cluster.ErrProviderUsed) {
		t.Fatalf("StartMember after Shutdown = %v, want ErrProviderUsed", err)
	}

	// The same member id cannot register twice (a live record exists).
	q := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "n2", TTL: time.Second})
	c2, err := startBare(q)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.ActorSystem.Shutdown()
	defer q.Shutdown(true)
	dup := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "n2", TTL: time.Second})
	if err := dup.StartMember(c2); !errors.Is(err, registry.ErrMemberExists) {
		t.Fatalf("StartMember with a registered member id = %v, want ErrMemberExists", err)
	}
}

// OnFenced may shut the provider down from inside the callback.
func TestOnFencedMayShutdown(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	done := make(chan string, 1)
	var p *cluster.LeaseProvider
	p = cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "n1", TTL: time.Second, Poll: 50 * time.Millisecond,
		OnFenced: func(reason string) {
			_ = p.Shutdown(true)
			done <- reason
		}})
	c, err := startBare(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.ActorSystem.Shutdown()
	p.SimulatePause(1200 * time.Millisecond)
	select {
	case reason := <-done:
		t.Logf("fenced: %s", reason)
	case <-time.After(5 * time.Second):
		t.Fatal("OnFenced not called")
	}
	if !p.Fenced() {
		t.Fatal("Fenced() = false")
	}
}

// A client provider lists the members without registering itself.
func TestLeaseProviderClient(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	member := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "n1", TTL: time.Second, Poll: 50 * time.Millisecond})
	mc, err := startBare(member)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.ActorSystem.Shutdown()
	defer member.Shutdown(true)

	client := cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: "client", TTL: time.Second, Poll: 50 * time.Millisecond})
	cc := newBare(client)
	defer cc.ActorSystem.Shutdown()
	view := &memberView{}
	view.subscribe(cc)
	if err := client.StartClient(cc); err != nil {
		t.Fatal(err)
	}
	defer client.Shutdown(true)
	if err := poll.Until(2*time.Second, poll.True("the member", func() bool { return len(view.get()) == 1 })); err != nil {
		t.Fatalf("client view %v, want the one member", view.get())
	}
	if got := view.get()[0].ID; got != member.MemberID() {
		t.Fatalf("client sees %s, want %s", got, member.MemberID())
	}
	if valid, _ := client.Lease(); valid {
		t.Fatal("a client holds no lease")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if recs, _ := reg.List(ctx); len(recs) != 1 {
		t.Fatalf("registry lists %+v: the client registered itself", recs)
	}
}
