package node_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/transport"
	tnats "github.com/ordersystem/ordersystem/transport/nats"
	tredis "github.com/ordersystem/ordersystem/transport/redis"
)

// TestCommitToPublishLatency measures, per transport, the time from an
// order's commit (the createdAt the actor stamps before the journal append)
// to its OrderCreated arriving at an independent subscriber, under steady
// load from 8 clients, and how long the read model takes to show the last
// order after the load stops. Set ORDERSYSTEM_MEASURE=1 to run it.
func TestCommitToPublishLatency(t *testing.T) {
	if os.Getenv("ORDERSYSTEM_MEASURE") == "" {
		t.Skip("a measurement, not a check: set ORDERSYSTEM_MEASURE=1")
	}
	for _, tr := range []string{node.InMemory, node.Redis, node.NATS} {
		t.Run(tr, func(t *testing.T) {
			var sub transport.Transport
			tn := startNode(t, func(c *node.Config) {
				c.Transport, c.Persistence = tr, tr
				ctx := context.Background()
				switch tr {
				case node.Redis:
					c.Redis = testservers.StartRedis(t).Addr()
					s, err := tredis.New(ctx, tredis.Options{Addr: c.Redis})
					if err != nil {
						t.Fatal(err)
					}
					sub = s
				case node.NATS:
					c.NATS = testservers.StartNATS(t).URL()
				}
			})
			if tr == node.NATS {
				s, err := tnats.New(context.Background(), tnats.Options{URL: tn.n.Config().NATS})
				if err != nil {
					t.Fatal(err)
				}
				sub = s
			}
			var (
				mu   sync.Mutex
				lats []time.Duration
			)
			handler := func(_ context.Context, batch []transport.Message) error {
				now := time.Now()
				for _, m := range batch {
					var ev orderpb.Event
					if proto.Unmarshal(m.Payload, &ev) == nil && ev.GetCreated() != nil {
						mu.Lock()
						lats = append(lats, now.Sub(ev.GetCreated().GetCreatedAt().AsTime()))
						mu.Unlock()
					}
				}
				return nil
			}
			if sub != nil {
				defer sub.Close()
				s, err := sub.Subscribe(context.Background(), transport.SubscribeOptions{}, handler)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
			} else {
				s, err := tn.n.Transport().Subscribe(context.Background(), transport.SubscribeOptions{}, handler)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
			}
			const perClient, clients = 250, 8
			var wg sync.WaitGroup
			start := time.Now()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range perClient {
						tn.create(seedOrder)
					}
				}()
			}
			wg.Wait()
			loadDone := time.Now()
			waitFor(t, "the read model to show every order", func() bool {
				return tn.n.ReadModel().Stats().TotalOrders == perClient*clients
			})
			catchUp := time.Since(loadDone)
			waitFor(t, "every event at the subscriber", func() bool { mu.Lock(); defer mu.Unlock(); return len(lats) >= perClient*clients })
			mu.Lock()
			slices.Sort(lats)
			p := func(q float64) time.Duration { return lats[int(q*float64(len(lats)-1))].Round(10 * time.Microsecond) }
			msg := fmt.Sprintf("%s: %d creates at %.0f/s; commit-to-publish p50 %s p99 %s max %s; read model complete %s after the last 201",
				tr, len(lats), float64(perClient*clients)/loadDone.Sub(start).Seconds(), p(0.5), p(0.99), p(1), catchUp.Round(time.Millisecond))
			mu.Unlock()
			t.Log(msg)
		})
	}
}
