package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/internal/testservers"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/transport"
	tredis "github.com/ordersystem/ordersystem/transport/redis"
)

// stuckPublisher never returns: the process "dies" with the events journaled
// and acknowledged but not published.
type stuckPublisher struct{ entered chan struct{} }

func (s stuckPublisher) Publish(ctx context.Context, _ []transport.Message) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

type outboxNode struct {
	killOnce sync.Once
	node     *cluster.Node
	driver   *actors.OutboxDriver
	client   *actors.OrderClient
}

func startOutboxNode(t *testing.T, redisAddr string, pub actors.Publisher) *outboxNode {
	t.Helper()
	ctx := context.Background()
	backend, err := predis.New(ctx, predis.Options{Addr: redisAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	if pub == nil {
		tr, err := tredis.New(ctx, tredis.Options{Addr: redisAddr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		pub = tr
	}
	on := &outboxNode{}
	var member *cluster.Node
	req := reqFunc(func(ctx context.Context, id, kind string, msg any) (any, error) {
		return member.Request(ctx, id, kind, msg)
	})
	on.driver = actors.NewOutboxDriver(req, 50*time.Millisecond, nil)
	member, err = cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
		actors.NewOrderKind(actors.OrderConfig{Journal: backend, NodeID: "n", Appended: on.driver.Nudge}),
		actors.NewOutboxKind(actors.OutboxConfig{Log: backend, Publisher: pub, IOTimeout: time.Second}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	on.node, on.client = member, actors.NewOrderClient(member)
	go on.driver.Run()
	t.Cleanup(on.kill)
	return on
}

// kill stops the node at once (no outbox flush); idempotent. Every member a
// test starts must be stopped before the next starts: protoactor's remote
// sets grpc's global logger on start, which races with a running server.
func (on *outboxNode) kill() {
	on.killOnce.Do(func() {
		on.driver.Stop()
		on.node.Stop(false)
	})
}

type reqFunc func(ctx context.Context, id, kind string, msg any) (any, error)

func (f reqFunc) Request(ctx context.Context, id, kind string, msg any) (any, error) {
	return f(ctx, id, kind, msg)
}

// TestOutboxPublishesAfterThePublisherDied: events acknowledged to the client
// but not yet published when the node dies are published by the next node,
// each exactly once by id.
func TestOutboxPublishesAfterThePublisherDied(t *testing.T) {
	redis := testservers.StartRedis(t)
	stuck := stuckPublisher{entered: make(chan struct{}, 1)}
	a := startOutboxNode(t, redis.Addr(), stuck)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id := fmt.Sprint("ob-", i)
		r, err := a.client.Send(ctx, id, createCmd(id))
		if err != nil || r.GetError() != nil {
			t.Fatalf("create: %v %v", err, r.GetError())
		}
		ids = append(ids, id)
	}
	select {
	case <-stuck.entered: // the outbox is inside Publish: kill the node now
	case <-time.After(5 * time.Second):
		t.Fatal("outbox never tried to publish")
	}
	a.kill()

	rdb := goredis.NewClient(&goredis.Options{Addr: redis.Addr()})
	defer rdb.Close()
	if n, _ := rdb.XLen(ctx, "orders:events").Result(); n != 0 {
		t.Fatalf("%d events published by the dead node", n)
	}

	startOutboxNode(t, redis.Addr(), nil)
	want := map[string]bool{}
	for _, id := range ids {
		want[id+":1"] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, err := rdb.XRange(ctx, "orders:events", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, m := range msgs {
			count[m.Values["eventId"].(string)]++
		}
		complete := len(count) == len(want)
		for id, n := range count {
			if !want[id] {
				t.Fatalf("unexpected event %s", id)
			}
			if n != 1 {
				t.Fatalf("event %s published %d times", id, n)
			}
		}
		if complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart only %d of %d events were published", len(count), len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
