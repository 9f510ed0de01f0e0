package node

import (
	"context"

	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/readmodel"
	"github.com/ordersystem/ordersystem/transport"
)

// Accessors for the tests (package node_test) only.

// ReadModel is the node's read model.
func (n *Node) ReadModel() *readmodel.ReadModel { return n.readModel }

// Config is the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// Transport is the node's event transport.
func (n *Node) Transport() transport.Transport { return n.transport }

// WithBackend returns a context under which Start uses b as the node's
// persistence backend instead of opening the configured one.
func WithBackend(ctx context.Context, b persistence.Backend) context.Context {
	return context.WithValue(ctx, backendKey{}, b)
}

// Backend is the node's persistence backend (the journal).
func (n *Node) Backend() persistence.Backend { return n.backend }
