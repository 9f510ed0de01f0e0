package actors_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/memory"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/proto/orderpb"
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
	on.driver = actors.NewOutboxDriver(req, backend.Partitions(), 50*time.Millisecond, nil)
	nudge := func(id string) { on.driver.Nudge(persistence.PartitionOf(id, backend.Partitions())) }
	member, err = cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
		actors.NewOrderKind(actors.OrderConfig{Journal: backend, NodeID: "n", Appended: nudge}),
		actors.NewOutboxKind(actors.OutboxConfig{Journal: backend, Publisher: pub, IOTimeout: time.Second}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	on.node, on.client = member, actors.NewOrderClient(member)
	go func() { _ = on.driver.Run(context.Background()) }()
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

func (f reqFunc) Forget(string, string) {}

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
		r, err := a.client.Command(ctx, id, createCmd(id))
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

// picky refuses one event for good and publishes the rest into a slice.
type picky struct {
	mu        sync.Mutex
	refuse    string
	published []string
}

func (p *picky) Publish(_ context.Context, batch []transport.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range batch {
		if m.ID() == p.refuse {
			return fmt.Errorf("message %s too large: %w", m.ID(), transport.ErrInvalidArgument)
		}
	}
	for _, m := range batch {
		p.published = append(p.published, m.ID())
	}
	return nil
}

// TestOutboxDeadLettersAPoisonEvent: an event the transport refuses for good
// is dead-lettered and the events after it are still published.
func TestOutboxDeadLettersAPoisonEvent(t *testing.T) {
	mem := memory.NewPartitioned(1)
	pub := &picky{refuse: "p-2:1"}
	stats := actors.NewOutboxStats(1)
	var member *cluster.Node
	req := reqFunc(func(ctx context.Context, id, kind string, msg any) (any, error) {
		return member.Request(ctx, id, kind, msg)
	})
	driver := actors.NewOutboxDriver(req, 1, time.Hour, nil)
	member, err := cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
		actors.NewOrderKind(actors.OrderConfig{Journal: mem, NodeID: "n"}),
		actors.NewOutboxKind(actors.OutboxConfig{Journal: mem, Publisher: pub, Stats: stats}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Stop(false) })
	client := actors.NewOrderClient(member)
	ctx := context.Background()
	for i := range 4 {
		id := fmt.Sprint("p-", i)
		if r, err := client.Command(ctx, id, createCmd(id)); err != nil || r.GetError() != nil {
			t.Fatalf("create: %v %v", err, r.GetError())
		}
	}
	st, err := driver.Drain(ctx, 0)
	if err != nil || st.GetError() != "" {
		t.Fatalf("drain: %v %s", err, st.GetError())
	}
	if got := fmt.Sprint(pub.published); got != "[p-0:1 p-1:1 p-3:1]" {
		t.Fatalf("published %s, want every event but the poison one", got)
	}
	if stats.DeadLettered.Load() != 1 || st.GetCheckpoint() != 4 {
		t.Fatalf("dead-lettered %d, checkpoint %d", stats.DeadLettered.Load(), st.GetCheckpoint())
	}
}

// TestOutboxesDrainTheirOwnPartition: with several partitions each outbox
// publishes its partition's events only, every event exactly once and each
// order's events in version order; an identity that names no partition is
// refused, not drained.
func TestOutboxesDrainTheirOwnPartition(t *testing.T) {
	const parts = 4
	mem := memory.NewPartitioned(parts)
	pub := &picky{}
	stats := actors.NewOutboxStats(parts)
	var member *cluster.Node
	req := reqFunc(func(ctx context.Context, id, kind string, msg any) (any, error) {
		return member.Request(ctx, id, kind, msg)
	})
	driver := actors.NewOutboxDriver(req, parts, time.Hour, nil)
	member, err := cluster.Start(cluster.Config{NodeID: "n", Kinds: []*pcluster.Kind{
		actors.NewOrderKind(actors.OrderConfig{Journal: mem, NodeID: "n"}),
		actors.NewOutboxKind(actors.OutboxConfig{Journal: mem, Publisher: pub, Stats: stats}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Stop(false) })
	client := actors.NewOrderClient(member)
	ctx := context.Background()
	var ids []string
	for i := range 24 {
		id := fmt.Sprint("part-", i)
		ids = append(ids, id)
		if r, err := client.Command(ctx, id, createCmd(id)); err != nil || r.GetError() != nil {
			t.Fatalf("create: %v %v", err, r.GetError())
		}
		if r, err := client.Command(ctx, id, payCmd(id+"-pay")); err != nil || r.GetError() != nil {
			t.Fatalf("pay: %v %v", err, r.GetError())
		}
	}
	// One partition first: only its orders are published.
	target := persistence.PartitionOf(ids[0], parts)
	st, err := driver.Drain(ctx, target)
	if err != nil || st.GetError() != "" {
		t.Fatalf("drain partition %d: %v %s", target, err, st.GetError())
	}
	for _, ev := range pub.published {
		id := ev[:strings.LastIndex(ev, ":")]
		if p := persistence.PartitionOf(id, parts); p != target {
			t.Fatalf("draining partition %d published %s of partition %d", target, ev, p)
		}
	}
	if n, err := driver.DrainAll(ctx); err != nil || n+st.GetPublished() != 48 {
		t.Fatalf("drain all: %d more published (%d before), %v; want 48 in all", n, st.GetPublished(), err)
	}
	seen := map[string]bool{}
	for _, ev := range pub.published {
		if seen[ev] {
			t.Fatalf("%s published twice", ev)
		}
		seen[ev] = true
		if strings.HasSuffix(ev, ":2") && !seen[strings.TrimSuffix(ev, ":2")+":1"] {
			t.Fatalf("%s published before version 1", ev)
		}
	}
	for p := range parts {
		if lag := stats.Partition(p).Lag(); lag != 0 {
			t.Fatalf("partition %d lag %d after draining", p, lag)
		}
	}
	// An outbox identity past the partitions answers with an error.
	res, err := member.Request(ctx, actors.OutboxIdentity(parts), actors.OutboxKind, &orderpb.DrainOutbox{})
	if s, ok := res.(*orderpb.OutboxStatus); err != nil || !ok || !strings.Contains(s.GetError(), "names no partition") {
		t.Fatalf("drain of %s: %v %v", actors.OutboxIdentity(parts), res, err)
	}
}
