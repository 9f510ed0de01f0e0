package redis_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// roundTrips counts the calls that carry an append script: one per single
// command, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for _, c := range cmds {
			if strings.HasPrefix(strings.ToLower(c.Name()), "eval") {
				r.n.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestGroupCommitTakesTheReadyAppends: appends made at the same moment by
// goroutines that are all ready to run go in the committers' first round
// trips, even on one CPU, where a committer woken by the first append used
// to send it alone before the others had run (three round trips for 16
// appends here: 1, 1, then 14).
func TestGroupCommitTakesTheReadyAppends(t *testing.T) {
	addr := testservers.Redis(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var rt roundTrips
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	c.AddHook(&rt)
	defer c.Close()
	b := newBackend(t, addr, redis.Options{Client: c})
	ctx := context.Background()
	// Warm up: the script is loaded and a connection per committer dialed.
	var warm sync.WaitGroup
	for i := range 2 {
		warm.Go(func() {
			if _, err := b.Append(ctx, "warm-"+strconv.Itoa(i), 0, []persistence.Record{{Type: "T", Data: []byte{1}}}); err != nil {
				t.Error(err)
			}
		})
	}
	warm.Wait()
	// Without the yield every round takes at least three round trips (1,
	// 1, then the rest); with it mostly two, sometimes three when a
	// committer is back before the last appends were queued. Over ten
	// rounds: at most 25.
	const appenders, rounds = 16, 10
	trips := make([]int64, rounds)
	for round := range rounds {
		rt.n.Store(0)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range appenders {
			wg.Go(func() {
				<-start
				id := "s-" + strconv.Itoa(round) + "-" + strconv.Itoa(i)
				if _, err := b.Append(ctx, id, 0, []persistence.Record{{Type: "T", Data: []byte{1}}}); err != nil {
					t.Error(err)
				}
			})
		}
		runtime.Gosched() // every appender waits on start
		close(start)
		wg.Wait()
		trips[round] = rt.n.Load()
	}
	var total int64
	for _, n := range trips {
		total += n
	}
	if total > 25 {
		t.Fatalf("%d appends ready at once, %d times: %d round trips in all (%v), want at most 25", appenders, rounds, total, trips)
	}
}
