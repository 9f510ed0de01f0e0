package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// streamIn returns a stream id of partition p (of n), made from base.
func streamIn(base string, p, n int) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", base, i)
		if persistence.PartitionOf(id, n) == p {
			return id
		}
	}
}

// TestWaitReplicasGoesToTheWritingShard kills the replica of one shard of
// a 3x1 cluster and appends to every partition at once (so the group
// committer's batches mix shards): exactly the appends whose partition that
// shard owns fail as unreplicated; the others succeed. A WAIT sent to any
// other node than the one that wrote would count that node's replica and
// let the first kind pass.
func TestWaitReplicasGoesToTheWritingShard(t *testing.T) {
	cluster := testservers.StartRedisCluster(t, 3, 1)
	const parts = 16
	b := newBackend(t, cluster.Seeds(), redis.Options{Partitions: parts, WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Every partition's key tag; its primary and replica.
	victim, replicas, err := cluster.NodesForKey(ctx, "{p0}")
	if err != nil || len(replicas) != 1 {
		t.Fatalf("nodes of {p0}: %s %v %v", victim, replicas, err)
	}
	onVictim := map[int]bool{}
	for p := range parts {
		primary, err := cluster.PrimaryForKey(ctx, fmt.Sprintf("{p%d}", p))
		if err != nil {
			t.Fatal(err)
		}
		onVictim[p] = primary == victim
	}
	if err := cluster.Kill(replicas[0]); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		errs := make([]error, parts)
		var wg sync.WaitGroup
		for p := range parts {
			wg.Go(func() {
				id := streamIn(fmt.Sprintf("w%d", round), p, parts)
				_, errs[p] = b.Append(ctx, id, 0, []persistence.Record{{Type: "Ev"}})
			})
		}
		wg.Wait()
		failed := 0
		for p, err := range errs {
			switch {
			case onVictim[p] && (!errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas")):
				t.Fatalf("round %d: append to partition %d, whose primary %s lost its replica: %v, want ErrUnavailable naming 0 of 1 replicas", round, p, victim, err)
			case !onVictim[p] && err != nil:
				t.Fatalf("round %d: append to partition %d on a shard with its replica: %v", round, p, err)
			case err != nil:
				failed++
			}
		}
		if failed == 0 {
			t.Fatalf("no partition is on %s: the test proves nothing", victim)
		}
		if round == 0 {
			t.Logf("%d of %d partitions on the shard without its replica failed as unreplicated, the others were acknowledged", failed, parts)
		}
	}
	// Sync goes to the partition's primary too: it fails exactly on the
	// shard without its replica.
	for p := range parts {
		err := b.Sync(ctx, streamIn("w0", p, parts))
		switch {
		case onVictim[p] && (!errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas")):
			t.Fatalf("sync of partition %d, whose primary %s lost its replica: %v, want ErrUnavailable naming 0 of 1 replicas", p, victim, err)
		case !onVictim[p] && err != nil:
			t.Fatalf("sync of partition %d on a shard with its replica: %v", p, err)
		}
	}
}

// TestFailoverUnderAppends kills -9 one primary of a 3x1 cluster while 12
// writers append (WaitReplicas 1). The replica is promoted; as the shard
// then has no replica left, WAIT 1 keeps failing there (correctly) until the
// killed node, restarted, has rejoined as the new primary's replica. The
// journal goes on on that shard, and every acknowledged append is still
// there afterwards.
func TestFailoverUnderAppends(t *testing.T) {
	cluster := testservers.StartRedisCluster(t, 3, 1)
	const parts, writers = 16, 12
	b := newBackend(t, cluster.Seeds(), redis.Options{Partitions: parts, WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	victim, err := cluster.PrimaryForKey(ctx, "{p0}")
	if err != nil {
		t.Fatal(err)
	}
	var victimParts []int
	for p := range parts {
		if primary, err := cluster.PrimaryForKey(ctx, fmt.Sprintf("{p%d}", p)); err == nil && primary == victim {
			victimParts = append(victimParts, p)
		}
	}

	type ack struct {
		stream  string
		version uint64
		data    string
	}
	var (
		killedAt   atomic.Int64 // unix nanos, 0 before the kill
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		mu         sync.Mutex
		acks       []ack
		failures   int
		recoveries []time.Duration // per writer on the killed shard: kill to first ack after it
	)
	for w := range writers {
		stream := streamIn(fmt.Sprintf("fo%d", w), w%parts, parts)
		primary, err := cluster.PrimaryForKey(ctx, fmt.Sprintf("{p%d}", w%parts))
		if err != nil {
			t.Fatal(err)
		}
		onVictim := primary == victim
		wg.Go(func() {
			var version uint64
			recovered := false
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := fmt.Sprintf("%d-%d", w, i)
				v, err := b.Append(ctx, stream, version, []persistence.Record{{Type: "Ev", Data: []byte(data)}})
				if err == nil {
					mu.Lock()
					acks = append(acks, ack{stream, v, data})
					if k := killedAt.Load(); k != 0 && onVictim && !recovered {
						recovered = true
						recoveries = append(recoveries, time.Since(time.Unix(0, k)))
					}
					mu.Unlock()
					version = v
					continue
				}
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				failures++
				mu.Unlock()
				// The outcome is unknown (or a conflict after an unknown
				// one): learn the stream's version, then go on.
				time.Sleep(50 * time.Millisecond)
				for ctx.Err() == nil {
					rs, err := b.Load(ctx, stream, 0)
					if err == nil {
						version = uint64(len(rs))
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(time.Second)
	killedAt.Store(time.Now().UnixNano())
	if err := cluster.Kill(victim); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := len(acks)
	mu.Unlock()
	// The replica takes over; the shard then has no replica, so WAIT 1
	// fails there until the killed node is back (as the new primary's
	// replica): restart it once the promotion shows.
	var promoted time.Duration
	for {
		p, err := cluster.PrimaryForKey(ctx, "{p0}")
		if err == nil && p != victim {
			promoted = time.Since(time.Unix(0, killedAt.Load()))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the replica of %s was not promoted: %v", victim, ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cluster.Restart(victim); err != nil {
		t.Fatal(err)
	}
	restarted := time.Since(time.Unix(0, killedAt.Load()))
	// Wait until every writer on the killed shard had an append
	// acknowledged again, then let them all run one more second.
	onShard := 0
	for w := range writers {
		if slices.Contains(victimParts, w%parts) {
			onShard++
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(recoveries)
		mu.Unlock()
		if n > 0 && (n >= onShard || time.Now().After(deadline)) {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("no append on the killed shard was acknowledged within 15 s of restarting %s", victim)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	t.Logf("writers stopped %s after the kill; checking %d acknowledged appends", time.Since(time.Unix(0, killedAt.Load())).Round(time.Millisecond), len(acks))
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lost := 0
	loaded := map[string][]persistence.Record{}
	for _, a := range acks {
		rs, ok := loaded[a.stream]
		if !ok {
			if rs, err = b.Load(ctx, a.stream, 0); err != nil {
				t.Fatalf("load %s after the failover: %v", a.stream, err)
			}
			loaded[a.stream] = rs
		}
		if a.version > uint64(len(rs)) || string(rs[a.version-1].Data) != a.data {
			lost++
		}
	}
	slices.Sort(recoveries)
	t.Logf("killed primary %s: replica promoted %s after the kill, the killed node restarted (to be its replica) at %s; "+
		"%d appends acknowledged before the kill, %d in all, %d failed (retried); "+
		"appends on the killed shard acknowledged again %v after the kill (first to last writer); %d acknowledged appends lost",
		victim, promoted.Round(time.Millisecond), restarted.Round(time.Millisecond), before, len(acks), failures, recoveries, lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged appends are lost after the failover (WaitReplicas 1)", lost)
	}
	if slices.Max(recoveries) > 15*time.Second {
		t.Fatalf("appends on the killed shard took %s to succeed again", slices.Max(recoveries))
	}
}
