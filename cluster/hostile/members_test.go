//go:build !race

// Two full members in one process cannot run under the race detector
// (protoactor's remote and gossip code race between in-process members:
// see cluster/clustertest); .ci/run runs this file without it.

package hostile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/clustertest"
)

// Two in-process members (memory registry, random secret): every probe at
// member 0 is refused, and echo requests through both members (which cross
// the node-to-node port both ways) work after each.
func TestHostileTwoMembers(t *testing.T) {
	h := clustertest.Start(t, 2, clustertest.Options{})
	n0 := h.Node(0)
	seq := 0
	tg := &target{name: "member 0 of 2", addr: n0.Address(), serves: func(ctx context.Context) error {
		if err := n0.PlacementAlive(time.Second); err != nil {
			return err
		}
		for from := range 2 {
			for range 4 { // identities spread over both members
				seq++
				if _, err := h.Echo(ctx, from, fmt.Sprintf("h%d", seq)); err != nil {
					return fmt.Errorf("echo through member %d: %w", from, err)
				}
			}
		}
		return nil
	}}
	attacks(t, tg, h.Secret())
	tg.report(t)
	st := n0.WireStats()
	t.Logf("member 0's guard: %s", st)
	for _, k := range []string{cluster.RefusedUnauthenticated, cluster.RefusedUnimplemented, cluster.RefusedMalformed, cluster.RefusedNotAllowed} {
		if st[k] == 0 {
			t.Errorf("the guard counted no %s refusal: %s", k, st)
		}
	}
	if st[cluster.RecoveredPanic] != 0 {
		t.Errorf("the guard recovered %d panics: some probe reached protoactor and crashed a handler", st[cluster.RecoveredPanic])
	}
}
