package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/persistence"
)

// TestFailoverKillPartitionLeader runs writers against a three-server R3
// cluster, kills (SIGKILL) the server that leads partition 0's stream and
// keeps it down: appends to that partition resume (the time is logged),
// every partition's log reads to its head while the server is down (what
// the outbox needs), and every acknowledged append is loadable; then the
// server returns and all of it holds again, read through that server.
func TestFailoverKillPartitionLeader(t *testing.T) {
	c := cluster(t)
	b := newBackend(t, c.URLs(), Options{Replicas: 3, Partitions: 4, Timeout: 2 * time.Second})
	const writers, ordersPerWriter = 8, 4

	type ack struct {
		order   string
		version uint64
		data    string
	}
	var (
		mu       sync.Mutex
		acked    []ack
		ambig    atomic.Int64 // appends that failed unavailable, then were found to have landed
		killedAt atomic.Int64 // unix nanos; 0 before the kill
		resumed  = make(chan time.Duration, 1)
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := make([]uint64, ordersPerWriter)
			for i := 0; ctx.Err() == nil; i++ {
				k := i % ordersPerWriter
				order := fmt.Sprintf("fo-%d-%d", w, k)
				data := fmt.Sprintf("%s@%d", order, versions[k]+1)
				rec := []persistence.Record{{Type: "Ev", Data: []byte(data)}}
				for ctx.Err() == nil {
					v, err := b.Append(ctx, order, versions[k], rec)
					if errors.Is(err, persistence.ErrVersionConflict) {
						// Only this writer writes the order: an earlier try
						// that failed unavailable did land.
						rs, lerr := b.Load(ctx, order, versions[k]+1)
						if lerr != nil || len(rs) == 0 || string(rs[0].Data) != data {
							if ctx.Err() == nil {
								t.Errorf("conflict on %s at %d and the record is not there: %v %v", order, versions[k], rs, lerr)
							}
							return
						}
						v, err = versions[k]+1, nil
						ambig.Add(1)
					}
					if err != nil {
						if !errors.Is(err, persistence.ErrUnavailable) {
							t.Errorf("append to %s: %v", order, err)
							return
						}
						continue // retry with the same expected version
					}
					versions[k] = v
					mu.Lock()
					acked = append(acked, ack{order, v, data})
					mu.Unlock()
					if at := killedAt.Load(); at != 0 && b.partitionOf(order) == 0 {
						select {
						case resumed <- time.Since(time.Unix(0, at)):
						default:
						}
					}
					break
				}
			}
		}()
	}

	waitAcked := func(n int) {
		poll.Eventually(t, 10*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < n {
				return fmt.Errorf("%d appends acknowledged, want %d", len(acked), n)
			}
			return nil
		})
	}
	waitAcked(200)
	leader := c.StreamLeader(b.opts.partitionStream(0))
	c.Kill(leader)
	killedAt.Store(time.Now().UnixNano())
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	t.Logf("killed %s, the leader of %s, after %d acknowledged appends", c.Name(leader), b.opts.partitionStream(0), before)
	select {
	case d := <-resumed:
		t.Logf("appends to partition 0 succeed again %s after the kill", d.Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatalf("no append to partition 0 succeeded within 20 s of killing its leader")
	}
	waitAcked(before + 200)
	stop()
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d appends acknowledged (%d found landed after an unavailable reply)", len(acked), ambig.Load())

	check := func(b *Backend, when string) {
		t.Helper()
		// Every partition reads to its head.
		start := time.Now()
		logged := map[string]bool{}
		for p := range b.Partitions() {
			var got []persistence.Record
			poll.Eventually(t, 20*time.Second, func() error {
				got = got[:0]
				var after uint64
				head, err := b.Log(p).Head(context.Background())
				if err != nil {
					return err
				}
				for after < head {
					page, err := b.Log(p).ReadAll(context.Background(), after, 500)
					if err != nil {
						return err
					}
					if len(page) == 0 {
						return fmt.Errorf("partition %d: read stopped at %d before head %d", p, after, head)
					}
					got = append(got, page...)
					after = page[len(page)-1].Position
				}
				return nil
			})
			for _, r := range got {
				logged[fmt.Sprintf("%s@%d", r.StreamID, r.Version)] = string(r.Data) == fmt.Sprintf("%s@%d", r.StreamID, r.Version)
			}
		}
		readTook := time.Since(start)
		lost := 0
		for _, a := range acked {
			if ok := logged[a.data]; !ok {
				lost++
			}
		}
		// Every acknowledged append is loadable.
		want := map[string]uint64{}
		for _, a := range acked {
			want[a.order] = max(want[a.order], a.version)
		}
		notLoaded := 0
		for order, v := range want {
			var rs []persistence.Record
			poll.Eventually(t, 10*time.Second, func() error {
				var err error
				rs, err = b.Load(context.Background(), order, 1)
				return err
			})
			if uint64(len(rs)) < v {
				notLoaded++
				continue
			}
			for _, r := range rs {
				if string(r.Data) != fmt.Sprintf("%s@%d", order, r.Version) {
					t.Errorf("%s: %s version %d holds %q", when, order, r.Version, r.Data)
				}
			}
		}
		t.Logf("%s: all %d partitions read to their heads in %s; acknowledged appends missing from the logs: %d, orders missing acknowledged versions on Load: %d",
			when, b.Partitions(), readTook.Round(time.Millisecond), lost, notLoaded)
		if lost != 0 || notLoaded != 0 {
			t.Fatalf("%s: %d acknowledged appends missing from the logs, %d orders short on Load", when, lost, notLoaded)
		}
	}
	check(b, "server down")

	c.Restart(leader)
	o := b.opts
	o.URL = c.URL(leader) // read through the server that was killed
	again, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("open through the restarted server: %v", err)
	}
	defer again.Close()
	check(again, "server back")
}
