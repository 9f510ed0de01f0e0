package actors

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/proto/orderpb"
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
type OrderClient struct {
	r Requester
}

// NewOrderClient returns a client that sends through r.
func NewOrderClient(r Requester) *OrderClient { return &OrderClient{r: r} }

// Command delivers a command (create, pay, ship, deliver, cancel) to the
// actor of orderID and returns the reply with the order after it.
func (c *OrderClient) Command(ctx context.Context, orderID string, cmd *orderpb.Command) (*orderpb.Reply, error) {
	return c.send(ctx, orderID, cmd)
}

// Get returns the order's current state in Reply.Order.
func (c *OrderClient) Get(ctx context.Context, orderID string) (*orderpb.Reply, error) {
	return c.send(ctx, orderID, &orderpb.GetOrder{})
}

// History returns the order's events in Reply.History, in version order.
func (c *OrderClient) History(ctx context.Context, orderID string) (*orderpb.Reply, error) {
	return c.send(ctx, orderID, &orderpb.GetHistory{})
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
