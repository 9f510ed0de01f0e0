package node

import (
	"context"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/cluster"
)

// newProvider returns the membership provider of a new incarnation: nil (a
// one-member cluster) in standalone mode.
func (n *Node) newProvider(ctx context.Context) (pcluster.ClusterProvider, error) {
	if !n.cfg.Cluster {
		return nil, nil
	}
	return nil, nil
}

// members lists the members this node sees.
func (n *Node) members() []cluster.Member {
	m := n.member.Load()
	if m == nil {
		return nil
	}
	return m.Members()
}
