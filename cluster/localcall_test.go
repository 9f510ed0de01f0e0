package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/internal/localcall"
)

// localEcho answers a StringValue whether it comes as a local call or with
// a sender, and counts the local calls it answered.
type localEcho struct{ calls chan struct{} }

func (e localEcho) Receive(ctx actor.Context) {
	m, call := localcall.Unwrap(ctx.Message())
	if s, ok := m.(*wrapperspb.StringValue); ok {
		if call != nil {
			e.calls <- struct{}{}
		}
		localcall.Respond(ctx, call, s)
	}
}

// A Request to a local activation of a kind in LocalCalls is answered
// through a local call; one whose cached activation stopped is answered
// by the dead letter path at once and retried at a new activation, not
// after the attempt timeout; a kind not in LocalCalls gets futures (its
// actor, which knows nothing of local calls, answers them).
func TestLocalCalls(t *testing.T) {
	calls := make(chan struct{}, 100)
	n, err := cluster.Start(cluster.Config{
		NodeID: "n1", LocalOnly: true, AttemptTimeout: 5 * time.Second,
		Kinds: []*pcluster.Kind{
			pcluster.NewKind("local", actor.PropsFromProducer(func() actor.Actor { return localEcho{calls: calls} })),
			echoKind(),
		},
		LocalCalls: []string{"local"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)
	ask := func(identity, kind, text string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := n.Request(ctx, identity, kind, wrapperspb.String(text))
		if err != nil {
			t.Fatalf("request %s/%s: %v", kind, identity, err)
		}
		if s, ok := res.(*wrapperspb.StringValue); !ok || s.Value != text {
			t.Fatalf("request %s/%s answered %v, want %q", kind, identity, res, text)
		}
	}
	ask("a", "local", "one")
	select {
	case <-calls:
	default:
		t.Fatal("the local kind's request was not a local call")
	}

	// An activation that stopped before its termination reached the
	// placement: the call dead-letters, the dead letter is answered at
	// once, and Request retries until the termination arrives and a new
	// activation answers, well within the 5 s attempt timeout that a lost
	// call would wait out.
	_, end := n.StaleActivation("b", "local")
	time.AfterFunc(100*time.Millisecond, end)
	start := time.Now()
	ask("b", "local", "two")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a request to a stopped activation took %v, want well under the 5 s attempt timeout", took)
	} else if took < 100*time.Millisecond {
		t.Errorf("a request to a stopped activation answered after %v, before its termination arrived", took)
	}

	// A stale PID in protoactor's cache is not used for an identity this
	// member owns: its placement is the cache.
	n.CachePID("d", "local", actor.NewPID(n.Address(), "gone-activation"))
	start = time.Now()
	ask("d", "local", "four")
	if took := time.Since(start); took > time.Second {
		t.Errorf("a request with a stale cached PID took %v", took)
	}

	ask("c", "echo", "three") // futures: echo answers ctx.Respond only
	if len(calls) != 2 {
		t.Errorf("%d more local calls answered, want 2 (the retried request for b, d)", len(calls))
	}
}
