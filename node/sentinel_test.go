package node_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/persistence"
)

// sentinelMaster is the master name the tests' Sentinels watch.
const sentinelMaster = "ordersystem-test"

// onSentinel makes a standalone node keep its journal and transport on the
// master that the Sentinel at sentinel watches (--redis <sentinel>
// --redis-master-name), under the default cluster name's keys.
func onSentinel(sentinel string) func(*node.Config) {
	return func(c *node.Config) {
		c.Persistence, c.Transport = node.Redis, node.Redis
		c.Redis, c.RedisMasterName = sentinel, sentinelMaster
	}
}

// sentinelSetup is a private primary, a replica of it and a Sentinel that
// watches the primary and knows the replica (so that it can promote it).
type sentinelSetup struct {
	primary, replica *testservers.RedisServer
	sentinel         string
}

func startSentinelSetup(t *testing.T) sentinelSetup {
	t.Helper()
	s := sentinelSetup{primary: testservers.StartRedis(t)}
	s.replica = testservers.StartRedisReplica(t, s.primary.Addr())
	s.sentinel = testservers.StartRedisSentinel(t, s.primary.Addr(), sentinelMaster)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: s.sentinel})
	defer sc.Close()
	// The Sentinel learns the replicas from the primary's INFO, which it
	// reads every 10 s once it runs (at once when it starts).
	poll.Eventually(t, 20*time.Second, func() error {
		reps, err := sc.Replicas(context.Background(), sentinelMaster).Result()
		if err != nil {
			return err
		}
		for _, r := range reps {
			if net.JoinHostPort(r["ip"], r["port"]) == s.replica.Addr() && !strings.Contains(r["flags"], "down") {
				return nil
			}
		}
		return fmt.Errorf("sentinel lists replicas %v, not %s up", reps, s.replica.Addr())
	})
	return s
}

// sentinelMasterAddr is the master's address as the Sentinel reports it.
func sentinelMasterAddr(ctx context.Context, sentinel string) (string, error) {
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel})
	defer sc.Close()
	got, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err != nil {
		return "", err
	}
	if len(got) != 2 {
		return "", fmt.Errorf("sentinel answered %v for the master's address", got)
	}
	return net.JoinHostPort(got[0], got[1]), nil
}

// plainRedis is a go-redis client of one server, closed when the test ends.
func plainRedis(t *testing.T, addr string) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// checkJournaledOn fails unless every order of want has its stream on the
// server at addr under key prefix with want[id] events: the list
// <prefix>{p<N>}:stream:<id> of its positions in partition N's log.
func checkJournaledOn(t *testing.T, addr, prefix string, want map[string]int64) {
	t.Helper()
	rdb := plainRedis(t, addr)
	ctx := context.Background()
	for id, n := range want {
		key := fmt.Sprintf("%s{p%d}:stream:%s", prefix, persistence.PartitionOf(id, persistence.DefaultPartitions), id)
		got, err := rdb.LLen(ctx, key).Result()
		if err != nil || got != n {
			t.Errorf("%s on %s: LLEN %d, %v; want %d events", key, addr, got, err, n)
		}
	}
}

// listsAll reports an error unless GET /orders lists every order of ids.
func listsAll(tn *testNode, ids []string) error {
	var list []struct{ OrderID string }
	tn.expect(tn.do("GET", "/orders?limit=100", ""), http.StatusOK).json(tn.t, &list)
	for _, id := range ids {
		if !slices.ContainsFunc(list, func(o struct{ OrderID string }) bool { return o.OrderID == id }) {
			return fmt.Errorf("order %s not listed (%d listed)", id, len(list))
		}
	}
	return nil
}

// orderStatus reads GET /orders/{id} and returns its status and version.
func orderStatus(tn *testNode, id string) (string, uint64) {
	var o struct {
		Status  string
		Version uint64
	}
	tn.expect(tn.do("GET", "/orders/"+id, ""), http.StatusOK).json(tn.t, &o)
	return o.Status, o.Version
}

// TestNodeOnRedisSentinel: a standalone node given a Sentinel and a master
// name (--redis <sentinel> --redis-master-name) journals, publishes and
// lists orders on the master the Sentinel names: the keys are on the
// primary (read with a plain client), GET / names the Redis backend with
// the primary's durability, /stats reports every event published, and a
// restarted node rebuilds its read model from the journal.
func TestNodeOnRedisSentinel(t *testing.T) {
	s := startSentinelSetup(t)
	tn := startNode(t, onSentinel(s.sentinel))
	var ids []string
	want := map[string]int64{}
	for range 10 {
		id := tn.create(seedOrder)
		ids, want[id] = append(ids, id), 1
	}
	for _, id := range ids[:3] {
		tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
		want[id] = 2
	}
	for _, id := range ids {
		status, version := orderStatus(tn, id)
		if wantStatus := map[int64]string{1: "Pending", 2: "Paid"}[want[id]]; status != wantStatus || version != uint64(want[id]) {
			t.Errorf("order %s: %s v%d, want %s v%d", id, status, version, wantStatus, want[id])
		}
	}
	var hist []struct{ Type string }
	tn.expect(tn.do("GET", "/orders/"+ids[0]+"/history", ""), http.StatusOK).json(t, &hist)
	if len(hist) != 2 || hist[0].Type != "OrderCreated" || hist[1].Type != "OrderPaid" {
		t.Errorf("history of a paid order: %+v, want OrderCreated, OrderPaid", hist)
	}
	poll.Eventually(t, 15*time.Second, func() error { return listsAll(tn, ids) })
	poll.Eventually(t, 15*time.Second, func() error {
		st, _, gauge := outboxOf(t, tn)
		if st.Lag != 0 || gauge != 0 || st.Head != 13 || len(st.Partitions) != persistence.DefaultPartitions {
			return fmt.Errorf("outbox %+v, gauge %d: want 13 events published over %d partitions", st, gauge, persistence.DefaultPartitions)
		}
		return nil
	})
	var info struct {
		Mode, Transport string
		Persistence     struct{ Name, Address, Durability, Profile string }
	}
	tn.expect(tn.do("GET", "/", ""), http.StatusOK).json(t, &info)
	if info.Persistence.Name != "redis" || info.Transport != "redis" ||
		!strings.Contains(info.Persistence.Durability, "appendfsync=always") || info.Persistence.Profile != persistence.ProfileDefault {
		t.Errorf("GET / on Sentinel: transport %q, persistence %+v; want redis, appendfsync=always of the primary, profile default", info.Transport, info.Persistence)
	}
	if !strings.Contains(info.Persistence.Address, s.sentinel) {
		t.Errorf("GET / names the persistence address %q, want the Sentinel %s it was given", info.Persistence.Address, s.sentinel)
	}
	checkJournaledOn(t, s.primary.Addr(), "ordersystem:", want)
	if n, err := plainRedis(t, s.primary.Addr()).XLen(context.Background(), "orders:events").Result(); err != nil || n != 13 {
		t.Errorf("transport stream orders:events on the primary: XLEN %d, %v; want the 13 events published", n, err)
	}

	stopNode(t, tn.n)
	tn = startNode(t, onSentinel(s.sentinel))
	poll.Eventually(t, 15*time.Second, func() error { return listsAll(tn, ids) })
	var paid []struct{ OrderID string }
	tn.expect(tn.do("GET", "/orders?status=Paid", ""), http.StatusOK).json(t, &paid)
	if len(paid) != 3 {
		t.Fatalf("%d paid orders after a restart, want 3", len(paid))
	}
}

// sentinelFailoverBound is how long after the primary was killed the
// node's writes must succeed again: the Sentinel's down-after of 1 s
// (StartRedisSentinel), its election and the promotion take a few seconds.
const sentinelFailoverBound = 20 * time.Second

// TestNodeOnRedisSentinelFailover: the Sentinel's primary is killed (-9)
// under a node and stays down; the Sentinel promotes the replica and the
// node's writes succeed again within sentinelFailoverBound, an order it
// acknowledged (and that the replica had, WAIT 1 on the primary) is still
// read back paid, the outbox publishes the new writes (lag back to 0), and
// a restarted node lists every order from the promoted replica.
func TestNodeOnRedisSentinelFailover(t *testing.T) {
	s := startSentinelSetup(t)
	tn := startNode(t, onSentinel(s.sentinel))
	before := tn.create(seedOrder)
	tn.expect(tn.do("POST", "/orders/"+before+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	// Replication is asynchronous: without --redis-wait-replicas an
	// acknowledged write can be lost by a failover (the default profile).
	// WAIT on the primary makes sure this one was not, so losing it would
	// be the node's fault. (With --redis-wait-replicas 1 every write after
	// the failover would fail: the promoted replica has no replica.)
	ctx := context.Background()
	if n, err := plainRedis(t, s.primary.Addr()).Wait(ctx, 1, 5000).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on the primary: %d, %v", n, err)
	}

	s.primary.Stop()
	killed := time.Now()
	poll.Eventually(t, sentinelFailoverBound, func() error {
		got, err := sentinelMasterAddr(ctx, s.sentinel)
		if err != nil || got != s.replica.Addr() {
			return fmt.Errorf("sentinel names master %s, %v; want the replica %s", got, err, s.replica.Addr())
		}
		return nil
	})
	promoted := time.Since(killed)
	var after string
	refused := map[int]int{} // status: count
	poll.Eventually(t, sentinelFailoverBound-time.Since(killed), func() error {
		r := tn.do("POST", "/orders", seedOrder)
		if r.status != http.StatusCreated {
			refused[r.status]++
			return fmt.Errorf("create after the failover: %d %s", r.status, r.body)
		}
		var c struct{ OrderID string }
		r.json(t, &c)
		after = c.OrderID
		return nil
	})
	t.Logf("primary killed: the Sentinel promoted the replica after %s, the node's writes succeeded again after %s (refused before, by status: %v)",
		promoted.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), refused)
	tn.expect(tn.do("POST", "/orders/"+after+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
	for id, want := range map[string]uint64{before: 2, after: 2} {
		if status, version := orderStatus(tn, id); status != "Paid" || version != want {
			t.Errorf("order %s after the failover: %s v%d, want Paid v%d", id, status, version, want)
		}
	}
	checkJournaledOn(t, s.replica.Addr(), "ordersystem:", map[string]int64{before: 2, after: 2})
	poll.Eventually(t, 15*time.Second, func() error {
		st, _, gauge := outboxOf(t, tn)
		if st.Lag != 0 || gauge != 0 || st.Head != 4 {
			return fmt.Errorf("outbox %+v, gauge %d: want the 4 events published", st, gauge)
		}
		return nil
	})

	stopNode(t, tn.n)
	tn = startNode(t, onSentinel(s.sentinel))
	poll.Eventually(t, 15*time.Second, func() error { return listsAll(tn, []string{before, after}) })
}
