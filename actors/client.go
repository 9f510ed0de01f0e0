package actors

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Requester delivers a message to a cluster actor and returns its reply
// (cluster.Node implements it).
type Requester interface {
	Request(ctx context.Context, identity, kind string, msg any) (any, error)
}

// forgetter is implemented by requesters that cache where actors live.
type forgetter interface {
	Forget(identity, kind string)
}

// OrderClient reaches order actors wherever they live in the cluster.
type OrderClient struct {
	r Requester
}

// NewOrderClient returns a client that sends through r.
func NewOrderClient(r Requester) *OrderClient { return &OrderClient{r: r} }

// Send delivers a Command, GetOrder or GetHistory to the actor of orderID.
// A returned error means the actor could not be reached; refusals by the
// actor come back as Reply.Error.
//
// An activation that does not serve any more (its node lost its lease)
// answers NOT_SERVING and stops; Send then forgets where the order lived and
// asks again, so the command (same id) reaches the current owner.
func (c *OrderClient) Send(ctx context.Context, orderID string, msg proto.Message) (*orderpb.Reply, error) {
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
		if f, ok := c.r.(forgetter); ok {
			f.Forget(orderID, OrderKind)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("order %s: %s: %w", orderID, reply.GetError().GetMessage(), ctx.Err())
		case <-time.After(min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond)):
		}
	}
}
