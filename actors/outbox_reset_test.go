package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
)

// lossyLog is a journal that can lose everything at once, like a Redis
// that restarts empty.
type lossyLog struct {
	mu  sync.Mutex
	cur *memory.Backend
}

func (l *lossyLog) j() *memory.Backend {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

func (l *lossyLog) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = memory.NewPartitioned(1)
}

func (l *lossyLog) Partitions() int { return 1 }

// Log returns a log that reads whichever journal is current at each call.
func (l *lossyLog) Log(p int) persistence.Log { return lossyPartition{l: l, p: p} }

type lossyPartition struct {
	l *lossyLog
	p int
}

func (lp lossyPartition) Partition() int { return lp.p }
func (lp lossyPartition) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	return lp.l.j().Log(lp.p).ReadAll(ctx, after, limit)
}
func (lp lossyPartition) Head(ctx context.Context) (uint64, error) {
	return lp.l.j().Log(lp.p).Head(ctx)
}
func (lp lossyPartition) Behind(ctx context.Context, after uint64) (uint64, error) {
	return lp.l.j().Log(lp.p).Behind(ctx, after)
}
func (l *lossyLog) LoadCheckpoint(ctx context.Context, name string) (uint64, error) {
	return l.j().LoadCheckpoint(ctx, name)
}
func (l *lossyLog) SaveCheckpoint(ctx context.Context, name string, pos uint64) error {
	return l.j().SaveCheckpoint(ctx, name, pos)
}

func (l *lossyLog) appendN(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.j().Append(context.Background(), fmt.Sprint(prefix, i), 0, []persistence.Record{{Type: "OrderCreated", Data: []byte{1}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutboxResetsACheckpointAheadOfTheLog: after the backend lost its data
// under a running outbox, the outbox notices (its checkpoint is ahead of the
// head, or the stored checkpoint is gone), records it, and publishes every
// event journaled since, however many were appended before it drained.
func TestOutboxResetsACheckpointAheadOfTheLog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // events appended after the loss, before the next drain
	}{
		{"nothing appended yet", 0},
		{"fewer than before", 2},
		{"more than before", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &lossyLog{cur: memory.NewPartitioned(1)}
			pub := &picky{}
			stats := actors.NewOutboxStats(1)
			var member *cluster.Node
			driver := actors.NewOutboxDriver(reqFunc(func(ctx context.Context, id, kind string, msg any) (any, error) {
				return member.Request(ctx, id, kind, msg)
			}), 1, time.Hour, nil)
			member, err := cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
				actors.NewOutboxKind(actors.OutboxConfig{Journal: log, Publisher: pub, Stats: stats}),
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer member.Stop(false)
			drain := func() uint64 {
				t.Helper()
				st, err := driver.Drain(context.Background(), 0)
				if err != nil || st.GetError() != "" {
					t.Fatalf("drain: %v %s", err, st.GetError())
				}
				return st.GetCheckpoint()
			}

			log.appendN(t, "old-", 3)
			if cp := drain(); cp != 3 || stats.Partition(0).LastReset() != nil {
				t.Fatalf("checkpoint %d, reset %+v before any loss", cp, stats.Partition(0).LastReset())
			}
			log.lose()
			log.appendN(t, "new-", tc.after)
			drain()
			r := stats.Partition(0).LastReset()
			if r == nil || r.Checkpoint != 3 || r.Stored != 0 || r.Head != uint64(tc.after) {
				t.Fatalf("reset %+v, want checkpoint 3, stored 0, head %d", r, tc.after)
			}
			log.appendN(t, "later-", 1)
			if cp := drain(); cp != uint64(tc.after)+1 {
				t.Fatalf("checkpoint %d after the loss, want %d", cp, tc.after+1)
			}
			want := []string{"old-0:1", "old-1:1", "old-2:1"}
			for i := range tc.after {
				want = append(want, fmt.Sprintf("new-%d:1", i))
			}
			want = append(want, "later-0:1")
			if got := fmt.Sprint(pub.published); got != fmt.Sprint(want) {
				t.Fatalf("published %s, want %s", got, want)
			}
			if stats.Partition(0).LastReset() != r {
				t.Fatal("a drain without loss recorded another reset")
			}
		})
	}
}
