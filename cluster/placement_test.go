package cluster

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/persistence/memory"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// idleActor answers "ok" and stops after 50 ms without messages, like a
// passivating order actor. Its finalizer counts it collected.
type idleActor struct{ _ [4096]byte }

type ping struct{}

var collected atomic.Int64

func newIdleKind(spawned *atomic.Int64) *pcluster.Kind {
	return pcluster.NewKind("idle", actor.PropsFromProducer(func() actor.Actor {
		a := &idleActor{}
		spawned.Add(1)
		runtime.SetFinalizer(a, func(*idleActor) { collected.Add(1) })
		return a
	}))
}

func (a *idleActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		ctx.SetReceiveTimeout(50 * time.Millisecond)
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self())
	case *ping:
		ctx.Respond("ok")
	}
}

// Passivated activations leave the placement's maps and the heap: nothing
// keeps a stopped actor reachable (protoactor's disthash lookup kept every
// one that was ever active at the same time).
func TestPlacementForgetsPassivatedActors(t *testing.T) {
	var spawned atomic.Int64
	collected.Store(0)
	n, err := Start(Config{NodeID: "placement-test", Kinds: []*pcluster.Kind{newIdleKind(&spawned)}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)

	const count = 500
	for i := range count {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := n.Request(ctx, fmt.Sprintf("a-%d", i), "idle", &ping{})
		cancel()
		if err != nil || res != "ok" {
			t.Fatalf("request %d: %v %v", i, res, err)
		}
	}
	if got := spawned.Load(); got != count {
		t.Fatalf("%d activations for %d identities", got, count)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		runtime.GC()
		if collected.Load() >= count*9/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d passivated actors collected: stopped actors are still reachable", collected.Load(), count)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The identities activate again, each once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := n.Request(ctx, "a-1", "idle", &ping{}); err != nil || res != "ok" {
		t.Fatalf("request after passivation: %v %v", res, err)
	}
	if got := spawned.Load(); got != count+1 {
		t.Fatalf("%d activations after one more request, want %d", got, count+1)
	}
}

// whoActor answers with the identity its ClusterInit named and the one its
// context holds.
type whoActor struct{ init *pcluster.ClusterIdentity }

type who struct{}

func (a *whoActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *pcluster.ClusterInit:
		a.init = ctx.Message().(*pcluster.ClusterInit).Identity
	case *who:
		ctx.Respond(a.init.Kind + "/" + a.init.Identity + " " + pcluster.GetClusterIdentity(ctx).AsKey())
	}
}

// Activations of a kind share one props, made once, and each still learns
// its own identity, from ClusterInit and from its context, when many are
// activated at once.
func TestActivationsShareTheirKindsProps(t *testing.T) {
	kinds := []*pcluster.Kind{
		pcluster.NewKind("who-a", actor.PropsFromProducer(func() actor.Actor { return &whoActor{} })),
		pcluster.NewKind("who-b", actor.PropsFromProducer(func() actor.Actor { return &whoActor{} })),
	}
	n, err := Start(Config{NodeID: "props-test", Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)

	const workers, each = 16, 25
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				kind := kinds[(w+i)%2].Kind
				id := fmt.Sprintf("o-%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := n.Request(ctx, id, kind, &who{})
				cancel()
				want := kind + "/" + id + " " + kind + "/" + id
				if err != nil || res != want {
					errs <- fmt.Errorf("%s/%s answered %v (%v), want %q", kind, id, res, err, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p := n.lookupImpl
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.props) != len(kinds) || p.lenLocked() != workers*each {
		t.Fatalf("%d props for %d kinds and %d activations, want %d and %d", len(p.props), len(kinds), p.lenLocked(), len(kinds), workers*each)
	}
}

// An order actor's mailbox holds the Started of its spawn for the message
// that follows. An activation spawned for a lookup whose requester never
// sends one still starts (the placement wakes it): it passivates after its
// idle timeout like any other, instead of staying activated forever.
func TestActivationForALookupStartsWithoutAMessage(t *testing.T) {
	kind := actors.NewOrderKind(actors.OrderConfig{Journal: memory.New(), IdleTimeout: 50 * time.Millisecond, InlineCalls: true})
	n, err := Start(Config{NodeID: "wake-test", Kinds: []*pcluster.Kind{kind}, LocalCalls: []string{actors.OrderKind}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)
	active := func() int {
		n.lookupImpl.mu.Lock()
		defer n.lookupImpl.mu.Unlock()
		return n.lookupImpl.lenLocked()
	}
	for i := range 3 {
		if pid := n.lookupImpl.Get(pcluster.NewClusterIdentity(fmt.Sprintf("lookup-%d", i), actors.OrderKind)); pid == nil {
			t.Fatal("the lookup activated nothing")
		}
	}
	if got := active(); got != 3 {
		t.Fatalf("%d activations after 3 lookups, want 3", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for active() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d activations spawned for a lookup never passivated: their Started is held", active())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// One spawned for this member's own request starts with it, inline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := n.Request(ctx, "local-1", actors.OrderKind, &orderpb.GetOrder{})
	if err != nil {
		t.Fatal(err)
	}
	if code := res.(*orderpb.Reply).GetError().GetCode(); code != orderpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("a get of an order never created answered %v, want not found", res)
	}
}
