package actors

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Requester delivers a message to a cluster actor and returns its reply
// (cluster.Node implements it).
type Requester interface {
	Request(ctx context.Context, identity, kind string, msg any) (any, error)
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
func (c *OrderClient) Send(ctx context.Context, orderID string, msg proto.Message) (*orderpb.Reply, error) {
	res, err := c.r.Request(ctx, orderID, OrderKind, msg)
	if err != nil {
		return nil, err
	}
	reply, ok := res.(*orderpb.Reply)
	if !ok {
		return nil, fmt.Errorf("order %s answered %T, want *orderpb.Reply", orderID, res)
	}
	return reply, nil
}
