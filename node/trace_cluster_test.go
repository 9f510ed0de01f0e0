//go:build !race

// Two cluster members in one process cannot run under the race detector
// (see namespace_test.go); .ci/run runs this file without it.

package node_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// A traceparent sent to one member is continued on the member that owns
// the order: the cluster call carries it over gRPC, the owner's actor spans
// are children of the caller's call span, and the event on the transport
// carries the owner's span context.
func TestTraceparentCrossesMembers(t *testing.T) {
	redis := testservers.StartRedis(t)
	name := randomClusterName(t, "trace")
	// One exporter per member: the spans of the two members meet only
	// through the trace context on the wire.
	exps := []*tracetest.InMemoryExporter{tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()}
	nodes := make([]*testNode, 2)
	for i := range nodes {
		nodes[i] = startNode(t, clusterOn(node.Redis, redis.Addr(), name), tracingTo(exps[i]),
			func(c *node.Config) { c.NodeID = fmt.Sprintf("%s-n%d", name, i+1) })
	}
	for _, tn := range nodes {
		poll.Eventually(t, 15*time.Second, poll.True("both members in the view", func() bool {
			var info struct{ Members []struct{ ID string } }
			tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
			return len(info.Members) == 2
		}))
	}
	w := watchWire(t, nodes[0].n.Transport())
	entry, owner := nodes[0], nodes[1]
	ownerID := owner.n.Config().NodeID
	// Create orders through the first member until the second owns one.
	for i := 0; ; i++ {
		traceID := fmt.Sprintf("%032x", 0xabc000+i)
		parent := "00-" + traceID + "-" + clientSpanID + "-01"
		r := entry.expect(entry.do("POST", "/orders", seedOrder, "traceparent", parent), http.StatusCreated)
		if got, _ := traceOf(t, r.header.Get("traceparent")); got != traceID {
			t.Fatalf("response traceparent %q, want trace %s", r.header.Get("traceparent"), traceID)
		}
		if r.header.Get("X-Order-Owner") != ownerID {
			if i > 50 {
				t.Fatal("the second member owns none of 50 orders")
			}
			continue
		}
		var c struct{ OrderID string }
		r.json(t, &c)

		server := spanNamed(t, exps[0], traceID, "POST /orders")
		call := childSpan(t, exps[0], traceID, server.SpanContext.SpanID().String(), "order.call command")
		// The owner's spans, recorded by the owner's exporter, continue the
		// entry member's call span.
		actor := childSpan(t, exps[1], traceID, call.SpanContext.SpanID().String(), "order.command create")
		if !actor.Parent.IsRemote() {
			t.Error("the owner's actor span does not have the caller's span as a remote parent")
		}
		childSpan(t, exps[1], traceID, actor.SpanContext.SpanID().String(), "journal.append")
		for _, s := range exps[0].GetSpans() {
			if s.Name == "order.command create" && s.SpanContext.TraceID().String() == traceID {
				t.Errorf("the entry member handled the command of an order the other member owns")
			}
		}
		ev := w.event(t, c.OrderID, 1)
		if tid, sid := traceOf(t, ev.GetMetadata().GetTraceParent()); tid != traceID || sid != actor.SpanContext.SpanID().String() {
			t.Errorf("the event on the transport carries trace %s span %s, want %s and the owner's actor span %s", tid, sid, traceID, actor.SpanContext.SpanID())
		}
		// Whichever member drains the order's partition publishes in the
		// same trace, as a child of the owner's actor span.
		publishedBy := -1
		poll.Eventually(t, 10*time.Second, poll.True("outbox.publish of the event on a member", func() bool {
			for i, exp := range exps {
				for _, s := range exp.GetSpans() {
					if s.Name == "outbox.publish" && s.SpanContext.TraceID().String() == traceID && s.Parent.SpanID() == actor.SpanContext.SpanID() {
						publishedBy = i
						return true
					}
				}
			}
			return false
		}))
		t.Logf("order %s owned by %s, published by member %d", c.OrderID, ownerID, publishedBy+1)
		// Both members' read models apply it in the trace.
		for _, exp := range exps {
			childSpan(t, exp, traceID, actor.SpanContext.SpanID().String(), "readmodel.apply")
		}
		return
	}
}
