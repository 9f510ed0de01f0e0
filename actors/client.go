package actors

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/tracing"
)

// Requester delivers a message to a cluster actor and returns its reply
// (cluster.Member and cluster.Node implement it). It must be safe for
// concurrent use.
type Requester interface {
	Request(ctx context.Context, identity, kind string, msg any) (any, error)
	// Forget drops what the requester remembers of where the actor
	// identity of kind lives, so that the next Request asks its owner
	// again. A requester that caches nothing does nothing.
	Forget(identity, kind string)
}

// OrderClient reaches order actors wherever they live in the cluster.
//
// A returned error means the actor could not be reached; refusals by the
// actor (not found, a forbidden transition, invalid input) come back in
// Reply.Error. An activation that does not serve any more (its node lost
// its lease) answers NOT_SERVING and stops; the client then forgets where
// the order lived and asks again, so the message (a command keeps its id)
// reaches the current owner, until ctx ends.
//
// Every message carries the W3C trace context of ctx (its trace_parent and
// trace_state fields), so that the order actor continues the caller's trace
// on whichever member it lives.
type OrderClient struct {
	r      Requester
	tracer trace.Tracer
}

// NewOrderClient returns a client that sends through r.
func NewOrderClient(r Requester) *OrderClient { return &OrderClient{r: r} }

// WithTracer makes the client record a client span per call ("order.call
// <message>") with tracer, the parent of the order actor's span; without
// one the trace context of ctx is handed on as it is. It returns c.
func (c *OrderClient) WithTracer(tracer trace.Tracer) *OrderClient {
	c.tracer = tracer
	return c
}

// Command delivers a command (create, pay, ship, deliver, cancel) to the
// actor of orderID and returns the reply with the order after it. It sets
// cmd's trace fields.
func (c *OrderClient) Command(ctx context.Context, orderID string, cmd *orderpb.Command) (*orderpb.Reply, error) {
	ctx, span := c.start(ctx, "order.call command", orderID)
	cmd.TraceParent, cmd.TraceState = tracing.Inject(ctx)
	reply, err := c.send(ctx, orderID, cmd)
	return endCall(span, reply, err)
}

// Get returns the order's current state in Reply.Order.
func (c *OrderClient) Get(ctx context.Context, orderID string) (*orderpb.Reply, error) {
	ctx, span := c.start(ctx, "order.call get", orderID)
	msg := &orderpb.GetOrder{}
	msg.TraceParent, msg.TraceState = tracing.Inject(ctx)
	reply, err := c.send(ctx, orderID, msg)
	return endCall(span, reply, err)
}

// History returns the order's events in Reply.History, in version order.
func (c *OrderClient) History(ctx context.Context, orderID string) (*orderpb.Reply, error) {
	ctx, span := c.start(ctx, "order.call history", orderID)
	msg := &orderpb.GetHistory{}
	msg.TraceParent, msg.TraceState = tracing.Inject(ctx)
	reply, err := c.send(ctx, orderID, msg)
	return endCall(span, reply, err)
}

// AsOf returns in Reply.Order the order as it was at the point q names
// (after a version, or at a time), with Order.Version the last event folded
// in. It sets q's trace fields.
func (c *OrderClient) AsOf(ctx context.Context, orderID string, q *orderpb.GetOrderAsOf) (*orderpb.Reply, error) {
	ctx, span := c.start(ctx, "order.call as_of", orderID)
	q.TraceParent, q.TraceState = tracing.Inject(ctx)
	reply, err := c.send(ctx, orderID, q)
	return endCall(span, reply, err)
}

// start starts the client span of a call, or hands ctx on without a tracer.
func (c *OrderClient) start(ctx context.Context, name, orderID string) (context.Context, trace.Span) {
	if c.tracer == nil {
		return ctx, nil
	}
	ctx, span := c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("order_id", orderID))
	}
	return ctx, span
}

// endCall ends a call's span (if any) with its outcome.
func endCall(span trace.Span, reply *orderpb.Reply, err error) (*orderpb.Reply, error) {
	if span == nil {
		return reply, err
	}
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case reply.GetError() != nil:
		span.SetAttributes(attribute.String("order.error_code", reply.GetError().GetCode().String()))
	}
	if owner := reply.GetOwner(); owner != "" {
		span.SetAttributes(attribute.String("order.owner", owner))
	}
	span.End()
	return reply, err
}

func (c *OrderClient) send(ctx context.Context, orderID string, msg proto.Message) (*orderpb.Reply, error) {
	for attempt := 1; ; attempt++ {
		res, err := c.r.Request(ctx, orderID, OrderKind, msg)
		if err != nil {
			return nil, err
		}
		reply, ok := res.(*orderpb.Reply)
		if !ok {
			return nil, fmt.Errorf("order %s answered %T, want *orderpb.Reply", orderID, res)
		}
		if reply.GetError().GetCode() != orderpb.ErrorCode_ERROR_CODE_NOT_SERVING {
			return reply, nil
		}
		c.r.Forget(orderID, OrderKind)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("order %s: %s: %w", orderID, reply.GetError().GetMessage(), ctx.Err())
		case <-time.After(min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond)):
		}
	}
}
