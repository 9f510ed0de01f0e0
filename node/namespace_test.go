//go:build !race

// Two cluster members in one process cannot run under the race detector
// (protoactor's remote sets grpc's global logger at every member start while
// the other member's grpc code reads it); .ci/run runs this file without it.

package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/persistence"
)

// The names a cluster keeps in a shared backend (node/backends.go,
// clusterNamespace), spelled out again so that a change of the scheme is a
// deliberate one.
type backendNames struct {
	redisPrefix, redisEvents, redisMembers     string
	natsJournal, natsJournalSubjects           string
	natsEvents, natsEventSubjects, natsMembers string
}

func namesOf(cluster string) backendNames {
	if cluster == node.DefaultClusterName {
		return backendNames{
			redisPrefix: "ordersystem:", redisEvents: "orders:events", redisMembers: "ordersystem:members:ordersystem:",
			natsJournal: "ORDERS_JOURNAL", natsJournalSubjects: "orders.journal",
			natsEvents: "ORDER_EVENTS", natsEventSubjects: "orders.events.*", natsMembers: "ordersystem_members",
		}
	}
	up := strings.ToUpper(cluster)
	return backendNames{
		redisPrefix: cluster + ":", redisEvents: cluster + ":orders:events", redisMembers: cluster + ":members:" + cluster + ":",
		natsJournal: "ORDERS_JOURNAL_" + up, natsJournalSubjects: cluster + ".orders.journal",
		natsEvents: "ORDER_EVENTS_" + up, natsEventSubjects: cluster + ".orders.events.*", natsMembers: cluster + "_members",
	}
}

// streams are the JetStream streams of a cluster: journal, events, and the
// KV buckets' streams (checkpoints, snapshots, read-model snapshots, membership and its cluster secret).
func (b backendNames) streams() []string {
	out := []string{b.natsEvents, "KV_" + b.natsJournal + "_checkpoints", "KV_" + b.natsJournal + "_snapshots", "KV_" + b.natsJournal + "_meta", "KV_" + b.natsJournal + "_rmsnap",
		"KV_" + b.natsMembers, "KV_" + b.natsMembers + "_secret"}
	for p := range persistence.DefaultPartitions {
		out = append(out, b.journalStream(p))
	}
	return out
}

// The NATS journal keeps partition p in stream <natsJournal>_P<p> on
// subjects <natsJournalSubjects>.p<p>.<id> (persistence/nats).
func (b backendNames) journalStream(p int) string { return fmt.Sprintf("%s_P%d", b.natsJournal, p) }
func (b backendNames) journalSubjects(p int) string {
	return fmt.Sprintf("%s.p%d.*", b.natsJournalSubjects, p)
}
func partitionOf(id string) int                         { return persistence.PartitionOf(id, persistence.DefaultPartitions) }
func (b backendNames) journalStreamOf(id string) string { return b.journalStream(partitionOf(id)) }
func (b backendNames) journalSubjectOf(id string) string {
	return fmt.Sprintf("%s.p%d.%s", b.natsJournalSubjects, partitionOf(id), id)
}

// TestClusterNamesKeepClustersApart runs two clusters with different names
// on the shared Redis and on the shared NATS: neither sees, counts, cancels
// or replays the other's orders, and each keeps its data under its own
// names only.
func TestClusterNamesKeepClustersApart(t *testing.T) {
	for _, backend := range []string{node.Redis, node.NATS} {
		t.Run(backend, func(t *testing.T) {
			var addr string
			if backend == node.Redis {
				addr = testservers.Redis(t)
			} else {
				addr = testservers.NATS(t)
			}
			nameA, nameB := randomClusterName(t, "a"), randomClusterName(t, "b")
			// Registered before the nodes start, so it runs after they stop.
			t.Cleanup(func() { removeClusterData(t, backend, addr, nameA, nameB) })
			// At debug level the event logger subscribes too (a consumer
			// group on Redis, a durable consumer on NATS), whose names
			// are checked below.
			debug := func(c *node.Config) {
				c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			a := startNode(t, clusterOn(backend, addr, nameA), debug)
			b := startNode(t, clusterOn(backend, addr, nameB), debug)

			ids := checkApart(t, a, b)

			switch backend {
			case node.Redis:
				checkRedisNames(t, addr, nameA, nameB, ids)
			case node.NATS:
				checkNATSNames(t, addr, nameA, nameB, ids)
			}
		})
	}
}

// apartIDs are the orders checkApart made: one on A only, and the id both
// clusters gave the order created with the same Idempotency-Key.
type apartIDs struct{ onlyA, sameKey string }

func checkApart(t *testing.T, a, b *testNode) apartIDs {
	t.Helper()
	idA := a.create(seedOrder)
	b.expect(b.do("GET", "/orders/"+idA, ""), http.StatusNotFound)
	b.expect(b.do("GET", "/orders/"+idA+"/history", ""), http.StatusNotFound)

	// A's event reached A's transport (A lists it) before B's order exists.
	// Had B shared that transport, its read model would have received A's
	// event before its own.
	listed := func(tn *testNode) []string {
		var list []struct{ OrderID string }
		tn.expect(tn.do("GET", "/orders", ""), http.StatusOK).json(t, &list)
		var out []string
		for _, o := range list {
			out = append(out, o.OrderID)
		}
		return out
	}
	poll.Eventually(t, 10*time.Second, poll.True("A to list its order", func() bool { return slices.Contains(listed(a), idA) }))
	idB := b.create(strings.Replace(seedOrder, "customer-123", "customer-b", 1))
	poll.Eventually(t, 10*time.Second, poll.True("B to list its order", func() bool { return slices.Contains(listed(b), idB) }))
	if got := listed(b); !slices.Equal(got, []string{idB}) {
		t.Fatalf("B lists %v, want only its own order %s (A's is %s)", got, idB, idA)
	}
	if got := listed(a); !slices.Equal(got, []string{idA}) {
		t.Fatalf("A lists %v, want only its own order %s (B's is %s)", got, idA, idB)
	}
	for _, c := range []struct {
		tn   *testNode
		name string
	}{{a, "A"}, {b, "B"}} {
		var st struct{ TotalOrders int }
		c.tn.expect(c.tn.do("GET", "/stats", ""), http.StatusOK).json(t, &st)
		if st.TotalOrders != 1 {
			t.Fatalf("%s's /stats counts %d orders, want 1 (its own)", c.name, st.TotalOrders)
		}
	}

	// Cancelling A's order through B finds nothing and changes nothing.
	b.expect(b.do("POST", "/orders/"+idA+"/cancel", `{"reason":"wrong cluster"}`), http.StatusNotFound)
	var o struct {
		Status  string
		Version int
	}
	a.expect(a.do("GET", "/orders/"+idA, ""), http.StatusOK).json(t, &o)
	if o.Status != "Pending" || o.Version != 1 {
		t.Fatalf("A's order after a cancel through B: %+v, want Pending at version 1", o)
	}

	// One Idempotency-Key, one order per cluster: B is not answered with
	// A's order, and each cluster replays its own.
	key := "same-key-" + idA
	type created struct{ OrderID, CustomerID string }
	var ca, cb created
	ra := a.expect(a.do("POST", "/orders", strings.Replace(seedOrder, "customer-123", "customer-a", 1), "Idempotency-Key", key), http.StatusCreated)
	ra.json(t, &ca)
	rb := b.expect(b.do("POST", "/orders", strings.Replace(seedOrder, "customer-123", "customer-b", 1), "Idempotency-Key", key), http.StatusCreated)
	rb.json(t, &cb)
	if rb.header.Get("Idempotent-Replayed") != "" || cb.CustomerID != "customer-b" {
		t.Fatalf("B's create with A's Idempotency-Key answered %s (replayed %q), want a new order of customer-b", rb.body, rb.header.Get("Idempotent-Replayed"))
	}
	// The id derives from the key, so both clusters use it, for two orders.
	if ca.OrderID != cb.OrderID {
		t.Fatalf("ids %s and %s for one Idempotency-Key", ca.OrderID, cb.OrderID)
	}
	for _, c := range []struct {
		tn       *testNode
		customer string
	}{{a, "customer-a"}, {b, "customer-b"}} {
		var got created
		c.tn.expect(c.tn.do("GET", "/orders/"+ca.OrderID, ""), http.StatusOK).json(t, &got)
		if got.CustomerID != c.customer {
			t.Fatalf("order %s is %s's on one cluster, want %s", ca.OrderID, got.CustomerID, c.customer)
		}
		again := c.tn.expect(c.tn.do("POST", "/orders", strings.Replace(seedOrder, "customer-123", c.customer, 1), "Idempotency-Key", key), http.StatusCreated)
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("a retry with the key on %s's cluster was not replayed: %s", c.customer, again.body)
		}
	}
	return apartIDs{onlyA: idA, sameKey: ca.OrderID}
}

func redisClient(t *testing.T, addr string) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func redisKeys(t *testing.T, rdb *goredis.Client, pattern string) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s: %v", pattern, err)
	}
	slices.Sort(keys)
	return keys
}

// checkRedisNames checks that A journaled, published and checkpointed
// under "<A>:" only: B's and the default cluster's keys hold none of A's
// orders.
func checkRedisNames(t *testing.T, addr, nameA, nameB string, ids apartIDs) {
	t.Helper()
	ctx := context.Background()
	rdb := redisClient(t, addr)
	na, nb, def := namesOf(nameA), namesOf(nameB), namesOf(node.DefaultClusterName)
	exists := func(key string) bool {
		n, err := rdb.Exists(ctx, key).Result()
		if err != nil {
			t.Fatalf("EXISTS %s: %v", key, err)
		}
		return n == 1
	}
	// The journal keeps order <id> under <prefix>{p<N>}: with N its
	// partition (persistence/redis).
	part := func(prefix, id string) string {
		return fmt.Sprintf("%s{p%d}:", prefix, persistence.PartitionOf(id, persistence.DefaultPartitions))
	}
	for _, key := range []string{na.redisPrefix + "meta", part(na.redisPrefix, ids.onlyA) + "log", part(na.redisPrefix, ids.onlyA) + "seq",
		part(na.redisPrefix, ids.onlyA) + "stream:" + ids.onlyA, part(na.redisPrefix, ids.sameKey) + "stream:" + ids.sameKey,
		part(nb.redisPrefix, ids.sameKey) + "stream:" + ids.sameKey, na.redisMembers + "index"} {
		if !exists(key) {
			t.Errorf("key %s is missing", key)
		}
	}
	for _, key := range []string{part(nb.redisPrefix, ids.onlyA) + "stream:" + ids.onlyA, part(def.redisPrefix, ids.onlyA) + "stream:" + ids.onlyA,
		part(def.redisPrefix, ids.sameKey) + "stream:" + ids.sameKey} {
		if exists(key) {
			t.Errorf("key %s exists: A's order was journaled outside %s", key, na.redisPrefix)
		}
	}
	poll.Eventually(t, 10*time.Second, func() error {
		msgs, err := rdb.XRange(ctx, na.redisEvents, "-", "+").Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Values["eventId"] == ids.onlyA+":1" {
				return nil
			}
		}
		return fmt.Errorf("%s has no event %s:1 among %d entries", na.redisEvents, ids.onlyA, len(msgs))
	})
	poll.Eventually(t, 10*time.Second, func() error {
		p := persistence.PartitionOf(ids.onlyA, persistence.DefaultPartitions)
		return rdb.Get(ctx, fmt.Sprintf("%s{p%d}:checkpoint:%s", na.redisPrefix, p, actors.CheckpointName(p))).Err()
	})
	groups, err := rdb.XInfoGroups(ctx, na.redisEvents).Result()
	if err != nil || len(groups) == 0 {
		t.Errorf("consumer groups of %s: %v %v, want the event logger's", na.redisEvents, groups, err)
	}
	// Everything A keeps starts with "<A>:".
	for _, key := range redisKeys(t, rdb, nameA+"*") {
		if !strings.HasPrefix(key, na.redisPrefix) {
			t.Errorf("key %s starts with A's name but not with %s", key, na.redisPrefix)
		}
	}
}

// checkNATSNames checks A's streams, subjects and buckets, and that A's
// orders are on no subject of B or of the default cluster.
func checkNATSNames(t *testing.T, url, nameA, nameB string, ids apartIDs) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := jetStream(t, url)
	na, nb := namesOf(nameA), namesOf(nameB)
	for _, c := range []struct{ stream, subjects string }{
		{na.journalStream(0), na.journalSubjects(0)}, {na.journalStream(15), na.journalSubjects(15)}, {na.natsEvents, na.natsEventSubjects},
		{nb.journalStream(0), nb.journalSubjects(0)}, {nb.journalStream(15), nb.journalSubjects(15)}, {nb.natsEvents, nb.natsEventSubjects},
	} {
		s, err := js.Stream(ctx, c.stream)
		if err != nil {
			t.Fatalf("stream %s: %v", c.stream, err)
		}
		if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, []string{c.subjects}) {
			t.Errorf("stream %s has subjects %v, want [%s]", c.stream, got, c.subjects)
		}
	}
	subject := func(subjects, id string) string { return strings.TrimSuffix(subjects, "*") + id }
	onSubject := func(stream, subj string) bool {
		s, err := js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return false
		}
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		_, err = s.GetLastMsgForSubject(ctx, subj)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("last message of %s on %s: %v", stream, subj, err)
		}
		return err == nil
	}
	def := namesOf(node.DefaultClusterName)
	if !onSubject(na.journalStreamOf(ids.onlyA), na.journalSubjectOf(ids.onlyA)) {
		t.Errorf("A's order %s is not on %s", ids.onlyA, na.journalSubjectOf(ids.onlyA))
	}
	if !onSubject(nb.journalStreamOf(ids.sameKey), nb.journalSubjectOf(ids.sameKey)) {
		t.Errorf("B's order %s is not on %s", ids.sameKey, nb.journalSubjectOf(ids.sameKey))
	}
	if onSubject(nb.journalStreamOf(ids.onlyA), nb.journalSubjectOf(ids.onlyA)) {
		t.Errorf("A's order %s is in B's journal", ids.onlyA)
	}
	for _, id := range []string{ids.onlyA, ids.sameKey} {
		if onSubject(def.journalStreamOf(id), def.journalSubjectOf(id)) {
			t.Errorf("order %s is in the default cluster's journal %s", id, def.natsJournal)
		}
	}
	poll.Eventually(t, 10*time.Second, func() error {
		s, err := js.Stream(ctx, na.natsEvents)
		if err != nil {
			return err
		}
		if _, err := s.GetLastMsgForSubject(ctx, subject(na.natsEventSubjects, "OrderCreated")); err != nil {
			return fmt.Errorf("no OrderCreated on %s: %w", na.natsEventSubjects, err)
		}
		return nil
	})
	poll.Eventually(t, 10*time.Second, func() error {
		kv, err := js.KeyValue(ctx, na.natsJournal+"_checkpoints")
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, actors.CheckpointName(partitionOf(ids.onlyA)))
		return err
	})
	kv, err := js.KeyValue(ctx, na.natsMembers)
	if err != nil {
		t.Fatalf("membership bucket %s: %v", na.natsMembers, err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], nameA+".") {
		t.Errorf("keys of %s: %v %v, want A's member's only (%s.<member id>)", na.natsMembers, keys, err, nameA)
	}
	if _, err := js.Stream(ctx, "KV_"+na.natsJournal+"_snapshots"); err != nil {
		t.Errorf("A's snapshot bucket: %v", err)
	}
}

func jetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(url, natsgo.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// removeClusterData deletes what clusters names left in the backend: the
// Redis keys under "<name>:", or the NATS streams and buckets of the names.
func removeClusterData(t *testing.T, backend, addr string, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if backend == node.Redis {
		rdb := redisClient(t, addr)
		for _, name := range names {
			if keys := redisKeys(t, rdb, name+":*"); len(keys) > 0 {
				if err := rdb.Del(ctx, keys...).Err(); err != nil {
					t.Errorf("delete %d keys of cluster %s: %v", len(keys), name, err)
				}
			}
		}
		return
	}
	js := jetStream(t, addr)
	for _, name := range names {
		for _, s := range namesOf(name).streams() {
			if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
	}
}

// TestDefaultClusterNameKeepsLegacyNames runs a default cluster beside one
// with another name on a private Redis and a private NATS: the default one
// keeps exactly the names of the releases before cluster names namespaced
// the data (the documented wire included), the other one has its own, and
// their NATS subjects do not overlap (JetStream would refuse the second
// cluster's streams).
func TestDefaultClusterNameKeepsLegacyNames(t *testing.T) {
	for _, backend := range []string{node.Redis, node.NATS} {
		t.Run(backend, func(t *testing.T) {
			var addr string
			if backend == node.Redis {
				addr = testservers.StartRedis(t).Addr()
			} else {
				addr = testservers.StartNATS(t).URL()
			}
			other := randomClusterName(t, "other")
			def := startNode(t, clusterOn(backend, addr, node.DefaultClusterName))
			oth := startNode(t, clusterOn(backend, addr, other))
			id := def.create(seedOrder)
			oth.expect(oth.do("GET", "/orders/"+id, ""), http.StatusNotFound)
			idOther := oth.create(seedOrder)
			d, o := namesOf(node.DefaultClusterName), namesOf(other)

			if backend == node.Redis {
				rdb := redisClient(t, addr)
				poll.Eventually(t, 10*time.Second, func() error {
					for _, key := range []string{d.redisEvents, o.redisEvents} {
						if n, err := rdb.XLen(context.Background(), key).Result(); err != nil || n == 0 {
							return fmt.Errorf("stream %s: %d entries, %v", key, n, err)
						}
					}
					return nil
				})
				// A member's key is named after its incarnation: <member>.
				// The journal keeps order <id> under <prefix>{p<N>}: with N
				// its partition, and the partition count in <prefix>meta.
				// Its outbox checkpoint is a key of the partition too.
				dpn, opn := partitionOf(id), partitionOf(idOther)
				dp := fmt.Sprintf("%s{p%d}:", d.redisPrefix, dpn)
				op := fmt.Sprintf("%s{p%d}:", o.redisPrefix, opn)
				want := []string{
					dp + "checkpoint:" + actors.CheckpointName(dpn), d.redisPrefix + "meta", dp + "log", d.redisMembers + "<member>", d.redisMembers + "index",
					dp + "seq", dp + "stream:" + id, d.redisEvents,
					op + "checkpoint:" + actors.CheckpointName(opn), o.redisPrefix + "meta", op + "log", o.redisMembers + "<member>", o.redisMembers + "index",
					o.redisPrefix + "orders:events", op + "seq", op + "stream:" + idOther,
				}
				slices.Sort(want)
				poll.Eventually(t, 10*time.Second, func() error {
					got := redisKeys(t, rdb, "*")
					for i, k := range got {
						for _, m := range []string{d.redisMembers, o.redisMembers} {
							if strings.HasPrefix(k, m) && k != m+"index" {
								got[i] = m + "<member>"
							}
						}
					}
					slices.Sort(got)
					got = slices.Compact(got) // a member that rejoined has two records for a moment
					if !slices.Equal(got, want) {
						return fmt.Errorf("keys %v, want %v", got, want)
					}
					return nil
				})
				return
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			js := jetStream(t, addr)
			want := append(d.streams(), o.streams()...)
			slices.Sort(want)
			var got []string
			names := js.StreamNames(ctx)
			for n := range names.Name() {
				if n != "OSTEST_KEEP" { // testservers' own (see pinStoreDir)
					got = append(got, n)
				}
			}
			if err := names.Err(); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("streams %v, want %v", got, want)
			}
			for _, c := range []struct{ stream, subjects string }{
				{d.journalStream(3), "orders.journal.p3.*"}, {"ORDER_EVENTS", "orders.events.*"},
				{o.journalStream(3), o.journalSubjects(3)}, {o.natsEvents, o.natsEventSubjects},
			} {
				s, err := js.Stream(ctx, c.stream)
				if err != nil {
					t.Fatalf("stream %s: %v", c.stream, err)
				}
				if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, []string{c.subjects}) {
					t.Errorf("stream %s has subjects %v, want [%s]", c.stream, got, c.subjects)
				}
			}
			s, err := js.Stream(ctx, d.journalStreamOf(id))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetLastMsgForSubject(ctx, d.journalSubjectOf(id)); err != nil {
				t.Errorf("the default cluster's order is not on %s: %v", d.journalSubjectOf(id), err)
			}
			poll.Eventually(t, 10*time.Second, func() error {
				s, err := js.Stream(ctx, "ORDER_EVENTS")
				if err != nil {
					return err
				}
				_, err = s.GetLastMsgForSubject(ctx, "orders.events.OrderCreated")
				return err
			})
		})
	}
}
