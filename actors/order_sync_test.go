package actors_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// syncingProbe is a journalProbe with persistence.Syncer: Sync fails as
// unavailable while unreplicated is set, as Redis's WAIT does on a
// primary that lost its replica.
type syncingProbe struct {
	*journalProbe
	unreplicated atomic.Bool
	syncs        atomic.Int64
}

func (j *syncingProbe) Sync(ctx context.Context, streamID string) error {
	j.syncs.Add(1)
	if j.unreplicated.Load() {
		return persistence.Unavailable("sync "+streamID, errors.New("only 0 of 1 replicas acknowledged"))
	}
	return nil
}

// TestOrderActorReplayWaitsForDurability: a command whose append failed as
// unavailable although its event is in the journal (written on the
// primary, not replicated) is not acknowledged by its retry while the
// journal cannot confirm it durable (Sync fails): the retry answers
// unavailable, and replays once Sync succeeds. A command this activation
// appended with success replays without a Sync.
func TestOrderActorReplayWaitsForDurability(t *testing.T) {
	var sp *syncingProbe
	f := newFixtureWith(t, time.Minute, func(c *actors.OrderConfig) {
		sp = &syncingProbe{journalProbe: c.Journal.(*journalProbe)}
		c.Journal = sp
	})
	f.send("o9", createCmd("c1"))
	if r := f.send("o9", createCmd("c1")); !r.GetReplayed() || sp.syncs.Load() != 0 {
		t.Fatalf("retry of an acknowledged create: replayed=%v after %d syncs, want a replay without one", r.GetReplayed(), sp.syncs.Load())
	}

	f.probe.ambiguous.Store(true) // the pay is journaled, its append fails
	sp.unreplicated.Store(true)
	wantCode(t, f.send("o9", payCmd("c2")), orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE)
	wantCode(t, f.send("o9", payCmd("c2")), orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE)
	if sp.syncs.Load() == 0 {
		t.Fatal("the retry of an unconfirmed pay answered without asking the journal to confirm it")
	}
	sp.unreplicated.Store(false)
	r := f.send("o9", payCmd("c2"))
	if !r.GetReplayed() || r.GetOrder().GetStatus() != orderpb.OrderStatus_ORDER_STATUS_PAID {
		t.Fatalf("retry of the pay once replicated: %v, want a replay of Paid", r)
	}
	if n := len(f.stream("o9")); n != 2 {
		t.Fatalf("journal has %d events, want 2", n)
	}
}
