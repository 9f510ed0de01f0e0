//go:build !race

// Several full members in one process: protoactor's remote and gossip code
// races between in-process members (see cluster/clustertest), so this file
// builds without -race only: `go test -run TestMemberCutOff ./cluster/`.

package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/backoff"
)

// TestMemberCutOffFencesAndRejoinsWhenReachable cuts one of three members'
// node-to-node traffic: it turns not-ready, fences (removing its record),
// and its next incarnations do not register while it still cannot reach
// the others; once the cut ends, it rejoins as a new incarnation that every
// member lists.
func TestMemberCutOffFencesAndRejoinsWhenReachable(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	var cut atomic.Bool
	var gated atomic.Int32
	members := make([]*cluster.Member, 3)
	for i := range members {
		nodeID := fmt.Sprintf("n%d", i)
		cfg := cluster.MemberConfig{
			Node: cluster.Config{NodeID: nodeID, Kinds: []*pcluster.Kind{
				pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return echo{} })),
			}, AttemptTimeout: 500 * time.Millisecond,
				ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond,
				IsolationBound: 2 * time.Second, DivergenceBound: 500 * time.Millisecond},
			NewProvider: func(_ context.Context, fenced func(string)) (pcluster.ClusterProvider, error) {
				return cluster.NewLeaseProvider(reg, cluster.LeaseOptions{NodeID: nodeID, TTL: time.Second, Poll: 100 * time.Millisecond, OnFenced: fenced}), nil
			},
			Backoff: backoff.Policy{Base: 100 * time.Millisecond, Max: 200 * time.Millisecond},
		}
		if i == 2 {
			// The simulated cut drops messages, not connections: the
			// reachability check before a rejoin sees it through this.
			cfg.Dial = func(context.Context, string) error {
				if cut.Load() {
					gated.Add(1)
					return errors.New("cut off")
				}
				return nil
			}
		}
		members[i] = cluster.NewMember(cfg)
		if err := members[i].Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer members[i].Stop(false)
	}
	for i, m := range members {
		waitUntil(t, 10*time.Second, fmt.Sprintf("n%d sees 3 members", i), func() bool { return len(m.Members()) == 3 })
	}
	first := members[2].System().ID
	addr := members[2].Address()

	cut.Store(true)
	cluster.SimulateCut(addr, true)
	defer cluster.SimulateCut(addr, false)
	var err error
	waitUntil(t, 6*time.Second, "n2 not ready", func() bool { return members[2].Ready() != nil })
	err = members[2].Ready()
	if !strings.Contains(err.Error(), "cut off") && !strings.Contains(err.Error(), "rejoining") {
		t.Fatalf("n2 not ready for another reason: %v", err)
	}
	// Its record is gone: the others list two members.
	for i := range 2 {
		waitUntil(t, 5*time.Second, fmt.Sprintf("n%d drops n2", i), func() bool { return len(members[i].Members()) == 2 })
	}
	waitUntil(t, 5*time.Second, "a rejoin held back", func() bool { return gated.Load() >= 2 })
	recs, err := reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.NodeID == "n2" {
			t.Fatalf("n2 registered while cut off: %+v", r)
		}
	}
	for i := range 2 {
		if err := members[i].Ready(); err != nil {
			t.Fatalf("n%d not ready while only n2 is cut: %v", i, err)
		}
	}

	cut.Store(false)
	cluster.SimulateCut(addr, false)
	waitUntil(t, 10*time.Second, "n2 rejoined", func() bool { return members[2].Ready() == nil })
	if id := members[2].System().ID; id == first {
		t.Fatalf("n2 rejoined with its old member id %s", id)
	}
	for i, m := range members {
		waitUntil(t, 10*time.Second, fmt.Sprintf("n%d sees 3 members again", i), func() bool { return len(m.Members()) == 3 })
	}
	echoVia(t, members[0], "after-the-cut")
}
