package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	pmemory "github.com/ordersystem/ordersystem/persistence/memory"
	pnats "github.com/ordersystem/ordersystem/persistence/nats"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
	"github.com/ordersystem/ordersystem/transport"
)

// The tests of the read side against hostile backends: a poison event on
// the transport, a journal that cannot be reached, a record of the journal
// that cannot be read. Each runs on private servers (the poison too: the
// shared stream orders:events is read by other tests' nodes). They log the
// figures of the closing note:
//
//	go test ./node/ -run 'TestPoison|TestCorruptJournal' -v

// readSide is what GET /stats and GET /health say of the read side.
type readSide struct {
	TotalOrders int
	ReadModel   struct {
		Applied, Repaired, DeadLettered uint64
		Quarantined                     int
	}
}

type readHealth struct {
	Status    string
	ReadModel struct {
		DeadLettered uint64
		Quarantined  int
		DeadLetters  []struct {
			EventID, Type, Reason, Error string
			Attempts                     int
			At                           time.Time
		}
		QuarantinedOrders []struct {
			OrderID           string
			Version, Position uint64
			Error             string
			At                time.Time
		}
	}
}

func (tn *testNode) readSide() readSide {
	tn.t.Helper()
	var s readSide
	tn.expect(tn.do("GET", "/stats", ""), http.StatusOK).json(tn.t, &s)
	return s
}

func (tn *testNode) readHealth() readHealth {
	tn.t.Helper()
	var h readHealth
	tn.expect(tn.do("GET", "/health", ""), http.StatusOK).json(tn.t, &h)
	return h
}

// listed reports whether GET /orders shows order id.
func (tn *testNode) listed(id string) bool {
	tn.t.Helper()
	var page []struct{ OrderID string }
	tn.expect(tn.do("GET", "/orders?limit=1000", ""), http.StatusOK).json(tn.t, &page)
	for _, o := range page {
		if o.OrderID == id {
			return true
		}
	}
	return false
}

func (tn *testNode) metric(line string) bool {
	tn.t.Helper()
	return strings.Contains(string(tn.expect(tn.do("GET", "/metrics", ""), http.StatusOK).body), line)
}

// ghostPaid is a well-formed OrderPaid for an order that was never created.
func ghostPaid(t *testing.T, id string) transport.Message {
	t.Helper()
	data, err := proto.Marshal(codec.EventToProto(id, 1, "forged", "f", order.Paid{PaymentMethod: "card", At: time.Now()}))
	if err != nil {
		t.Fatal(err)
	}
	return transport.Message{OrderID: id, Version: 1, Type: "OrderPaid", Payload: data}
}

// injectRedis adds a message to the stream the node reads, with the
// documented fields, as another producer would (XADD).
func injectRedis(t *testing.T, addr string, m transport.Message) {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	err := rdb.XAdd(context.Background(), &goredis.XAddArgs{Stream: "orders:events", Values: []any{
		"eventId", m.ID(), "type", m.Type, "payload", m.Payload, "orderId", m.OrderID, "version", strconv.FormatUint(m.Version, 10),
	}}).Err()
	if err != nil {
		t.Fatalf("XADD orders:events: %v", err)
	}
}

// injectNATS publishes a message on orders.events.<Type> with the
// documented headers, as another producer would.
func injectNATS(t *testing.T, url string, m transport.Message) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	v := strconv.FormatUint(m.Version, 10)
	_, err = js.PublishMsg(context.Background(), &nats.Msg{Subject: "orders.events." + m.Type, Data: m.Payload, Header: nats.Header{
		"Nats-Msg-Id": {m.ID()}, "Ordersystem-Order-Id": {m.OrderID}, "Ordersystem-Version": {v}, "Ordersystem-Type": {m.Type},
	}})
	if err != nil {
		t.Fatalf("publish on orders.events.%s: %v", m.Type, err)
	}
}

// TestPoisonEventDoesNotFreezeTheReadModel: a well-formed OrderPaid for an
// order that was never created, put on each transport the way another
// producer would, is dead-lettered (counted in /stats and /metrics, listed
// in /health, readiness untouched) and the read model goes on: orders
// created after it appear in /orders.
func TestPoisonEventDoesNotFreezeTheReadModel(t *testing.T) {
	for _, kind := range []string{node.InMemory, node.Redis, node.NATS} {
		t.Run(kind, func(t *testing.T) {
			var inject func(transport.Message)
			tn := startNode(t, func(c *node.Config) {
				switch kind {
				case node.Redis:
					s := testservers.StartRedis(t)
					c.Transport, c.Persistence, c.Redis = kind, kind, s.Addr()
					inject = func(m transport.Message) { injectRedis(t, s.Addr(), m) }
				case node.NATS:
					s := testservers.StartNATS(t)
					c.Transport, c.Persistence, c.NATS = kind, kind, s.URL()
					inject = func(m transport.Message) { injectNATS(t, s.URL(), m) }
				}
			})
			if inject == nil {
				inject = func(m transport.Message) {
					if err := tn.n.Transport().Publish(context.Background(), []transport.Message{m}); err != nil {
						t.Fatal(err)
					}
				}
			}
			first := tn.create(seedOrder)
			waitFor(t, "the first order in /orders", func() bool { return tn.listed(first) })

			ghost := "ghost-" + kind
			poisoned := time.Now()
			inject(ghostPaid(t, ghost))
			behind := tn.create(seedOrder)
			waitFor(t, "the order created after the poison in /orders", func() bool { return tn.listed(behind) })
			movedOn := time.Since(poisoned)
			waitFor(t, "the poison dead-lettered", func() bool { return tn.readSide().ReadModel.DeadLettered == 1 })
			deadLettered := time.Since(poisoned)
			// Once it is dead-lettered, the next order shows as fast as ever.
			created := time.Now()
			after := tn.create(seedOrder)
			waitFor(t, "an order created after the dead letter", func() bool { return tn.listed(after) })
			next := time.Since(created)

			if tn.listed(ghost) {
				t.Fatal("the never-created order is in /orders")
			}
			if s := tn.readSide(); s.TotalOrders != 3 || s.ReadModel.Quarantined != 0 {
				t.Fatalf("stats %+v", s)
			}
			h := tn.readHealth()
			if h.Status != "up" || len(h.ReadModel.DeadLetters) != 1 {
				t.Fatalf("health %+v", h)
			}
			d := h.ReadModel.DeadLetters[0]
			if d.EventID != ghost+":1" || d.Type != "OrderPaid" || d.Reason != "not_in_journal" || d.Attempts < 2 || d.At.IsZero() {
				t.Fatalf("dead letter %+v", d)
			}
			tn.expect(tn.do("GET", "/health/ready", ""), http.StatusOK)
			if !tn.metric(`readmodel_dead_lettered_total{reason="not_in_journal"} 1`) {
				t.Fatal("/metrics does not count the dead letter")
			}
			t.Logf("figure: poison on %s: dead-lettered %s after it was put on the transport; the order created right after it listed after %s; the next one %s after its create",
				kind, deadLettered.Round(time.Millisecond), movedOn.Round(time.Millisecond), next.Round(time.Millisecond))
		})
	}
}

// TestPoisonDuringJournalOutageIsNotDeadLettered: while the journal cannot
// be reached, an event the read model cannot apply is redelivered, never
// dead-lettered (the journal may hold it); once the journal answers, the
// poison is dead-lettered and the read model goes on.
func TestPoisonDuringJournalOutageIsNotDeadLettered(t *testing.T) {
	s := testservers.StartRedis(t)
	tn := startNode(t, func(c *node.Config) {
		c.Persistence, c.Redis = node.Redis, s.Addr() // the transport stays in memory, up
		c.RequestTimeout = 3 * time.Second
	})
	id := tn.create(seedOrder)
	waitFor(t, "the order in /orders", func() bool { return tn.listed(id) })

	s.Stop()
	if err := tn.n.Transport().Publish(context.Background(), []transport.Message{ghostPaid(t, "ghost-outage")}); err != nil {
		t.Fatal(err)
	}
	// Four times the dead-letter budget (4 checks, 0.7 s of backoff): no
	// dead letter while the journal is down.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if s := tn.readSide(); s.ReadModel.DeadLettered != 0 {
			t.Fatalf("dead-lettered during the outage: %+v", s)
		}
	}
	tn.expect(tn.do("GET", "/health/live", ""), http.StatusOK)

	s.Start()
	waitForLong(t, "the poison dead-lettered once the journal answers", 20*time.Second, func() bool {
		return tn.readSide().ReadModel.DeadLettered == 1
	})
	waitForLong(t, "readiness", 20*time.Second, func() bool { return tn.do("GET", "/health/ready", "").status == http.StatusOK })
	later := tn.create(seedOrder)
	waitFor(t, "an order created after the outage in /orders", func() bool { return tn.listed(later) })
	if d := tn.readHealth().ReadModel.DeadLetters; len(d) != 1 || d[0].EventID != "ghost-outage:1" || d[0].Reason != "not_in_journal" {
		t.Fatalf("dead letters %+v", d)
	}
}

// keepOpen is an in-memory backend that outlives the nodes that close it.
type keepOpen struct{ *pmemory.Backend }

func (keepOpen) Close() error { return nil }

// rebuildTimes records the rebuild_time of every "read model rebuilt".
type rebuildTimes struct {
	mu  sync.Mutex
	got []time.Duration
}

func (r *rebuildTimes) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *rebuildTimes) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "read model rebuilt" {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "rebuild_time" {
			r.mu.Lock()
			r.got = append(r.got, a.Value.Duration())
			r.mu.Unlock()
		}
		return true
	})
	return nil
}
func (r *rebuildTimes) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *rebuildTimes) WithGroup(string) slog.Handler      { return r }

func (r *rebuildTimes) last() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return 0
	}
	return r.got[len(r.got)-1]
}

// seedOrders journals n created orders straight into the backend, so that
// the rebuild at start-up has something to read.
func seedOrders(t *testing.T, j persistence.Journal, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				id := fmt.Sprintf("seed-%05d", i)
				c := order.Created{CustomerID: "c", Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 100}}, Total: 100, At: time.Now()}
				data, _ := proto.Marshal(codec.EventToProto(id, 1, "seed", "f", c))
				if _, err := j.Append(ctx, id, 0, []persistence.Record{{Type: "OrderCreated", Data: data}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("seed: %v", err)
	}
}

// seeded is how many orders the corruption test journals before it starts.
const seeded = 2000

// TestCorruptJournalRecordQuarantinesOneOrder: garbage written into an
// order's journal stream, the way each backend lays it out, then a node
// restart. Start-up succeeds; the other orders are served and listed; that
// order answers 500 order_quarantined naming it and the version; /health
// lists it; readiness stays 200.
func TestCorruptJournalRecordQuarantinesOneOrder(t *testing.T) {
	for _, kind := range []string{node.InMemory, node.Redis, node.NATS} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			times := &rebuildTimes{}
			cfg := node.Default()
			cfg.Port, cfg.NodeID, cfg.HTTPHost = 0, "n1", "127.0.0.1"
			cfg.OutboxInterval = 50 * time.Millisecond
			cfg.Logger = slog.New(times)
			cfg.DrainDelay = 0
			// corrupt writes a record whose bytes are not an event as the
			// next version of order id's stream.
			var corrupt func(id string, version uint64)
			garbage := []byte("\xff\xfe garbage, not an event")
			var seedTo persistence.Journal
			switch kind {
			case node.InMemory:
				b := keepOpen{pmemory.New()}
				ctx = node.WithBackend(ctx, b)
				seedTo = b
				corrupt = func(id string, version uint64) {
					if _, err := b.Append(context.Background(), id, version-1, []persistence.Record{{Type: "OrderShipped", Data: garbage}}); err != nil {
						t.Fatal(err)
					}
				}
			case node.Redis:
				s := testservers.StartRedis(t)
				cfg.Transport, cfg.Persistence, cfg.Redis = kind, kind, s.Addr()
				b, err := predis.New(ctx, predis.Options{Addr: s.Addr()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
				seedTo = b
				// The layout (persistence/redis): the order's partition N
				// has the log stream ordersystem:{pN}:log with entry ids
				// 0-<position> and fields s, v, t, d; ordersystem:{pN}:seq
				// is its last position; the list ordersystem:{pN}:stream:<id>
				// holds the order's positions. Stream entries cannot be
				// rewritten in place, so the garbage goes in as the order's
				// next entry.
				corrupt = func(id string, version uint64) {
					rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
					defer rdb.Close()
					tag := fmt.Sprintf("ordersystem:{p%d}:", persistence.PartitionOf(id, b.Partitions()))
					pos, err := rdb.Incr(ctx, tag+"seq").Result()
					if err == nil {
						err = rdb.XAdd(ctx, &goredis.XAddArgs{Stream: tag + "log", ID: "0-" + strconv.FormatInt(pos, 10), Values: []any{
							"s", id, "v", strconv.FormatUint(version, 10), "t", "OrderShipped", "d", garbage}}).Err()
					}
					if err == nil {
						err = rdb.RPush(ctx, tag+"stream:"+id, strconv.FormatInt(pos, 10)).Err()
					}
					if err != nil {
						t.Fatalf("write garbage into Redis: %v", err)
					}
				}
			case node.NATS:
				s := testservers.StartNATS(t)
				cfg.Transport, cfg.Persistence, cfg.NATS = kind, kind, s.URL()
				b, err := pnats.New(ctx, pnats.Options{URL: s.URL()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
				seedTo = b
				// The layout (persistence/nats): one stream per partition
				// (ORDERS_JOURNAL_P<N>), one subject orders.journal.p<N>.<id>
				// per order, one message per append with the first version
				// and the type in headers.
				corrupt = func(id string, version uint64) {
					nc, err := nats.Connect(s.URL())
					if err != nil {
						t.Fatal(err)
					}
					defer nc.Close()
					js, _ := jetstream.New(nc)
					subject := fmt.Sprintf("orders.journal.p%d.%s", persistence.PartitionOf(id, b.Partitions()), id)
					_, err = js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: garbage, Header: nats.Header{
						"Ordersystem-Version": {strconv.FormatUint(version, 10)}, "Ordersystem-Type": {"OrderShipped"}}})
					if err != nil {
						t.Fatalf("publish garbage on %s: %v", subject, err)
					}
				}
			}
			seedOrders(t, seedTo, seeded)
			start := func() (*testNode, time.Duration) {
				t.Helper()
				began := time.Now()
				n, err := node.Start(ctx, cfg)
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				took := time.Since(began)
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = n.Shutdown(ctx)
				})
				return &testNode{t: t, n: n, base: "http://" + n.Addr()}, took
			}
			stop := func(tn *testNode) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := tn.n.Shutdown(ctx); err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			}

			tn, _ := start()
			bad := tn.create(seedOrder)
			tn.expect(tn.do("POST", "/orders/"+bad+"/pay", ""), http.StatusOK)
			good := tn.create(seedOrder)
			waitFor(t, "both orders in /orders", func() bool { return tn.listed(bad) && tn.listed(good) })
			stop(tn)

			tn, clean := start()
			cleanRebuild := times.last()
			if s := tn.readSide(); s.TotalOrders != seeded+2 || s.ReadModel.Quarantined != 0 {
				t.Fatalf("clean restart: %+v", s)
			}
			stop(tn)

			corrupt(bad, 3)
			tn, quarantined := start()
			quarantinedRebuild := times.last()

			// That order: quarantined, named with its version, everywhere.
			for _, op := range []struct{ method, path string }{
				{"GET", "/orders/" + bad}, {"GET", "/orders/" + bad + "/history"},
				{"POST", "/orders/" + bad + "/ship"}, {"POST", "/orders/" + bad + "/cancel"},
			} {
				r := tn.expect(tn.do(op.method, op.path, ""), http.StatusInternalServerError)
				var e struct{ Error, Code string }
				r.json(t, &e)
				if e.Code != "order_quarantined" || !strings.Contains(e.Error, "order "+bad+" ") || !strings.Contains(e.Error, "version 3") {
					t.Fatalf("%s %s: %s", op.method, op.path, r.body)
				}
			}
			h := tn.readHealth()
			if h.Status != "up" || len(h.ReadModel.QuarantinedOrders) != 1 {
				t.Fatalf("health %+v", h)
			}
			q := h.ReadModel.QuarantinedOrders[0]
			if q.OrderID != bad || q.Version != 3 || q.Position == 0 || !strings.Contains(q.Error, "not an event") || q.At.IsZero() {
				t.Fatalf("quarantined %+v", q)
			}
			tn.expect(tn.do("GET", "/health/ready", ""), http.StatusOK)

			// Every other order: served, listed, writable.
			tn.expect(tn.do("GET", "/orders/"+good, ""), http.StatusOK)
			tn.expect(tn.do("POST", "/orders/"+good+"/pay", ""), http.StatusOK)
			tn.expect(tn.do("GET", "/orders/seed-00042", ""), http.StatusOK)
			fresh := tn.create(seedOrder)
			waitFor(t, "a new order in /orders", func() bool { return tn.listed(fresh) })
			if tn.listed(bad) {
				t.Fatal("the quarantined order is in /orders")
			}
			if s := tn.readSide(); s.TotalOrders != seeded+2 || s.ReadModel.Quarantined != 1 {
				t.Fatalf("stats %+v", s)
			}
			if !tn.metric("readmodel_quarantined_orders 1") {
				t.Fatal("/metrics does not show the quarantine")
			}
			t.Logf("figure: start-up on %s with %d orders: %s (rebuild %s) clean, %s (rebuild %s) with one quarantined record",
				kind, seeded+2, clean.Round(time.Millisecond), cleanRebuild.Round(time.Millisecond),
				quarantined.Round(time.Millisecond), quarantinedRebuild.Round(time.Millisecond))
		})
	}
}

// layoutHealth is what GET /health says of the rebuild and of the skipped
// entries of the global log (listed among the quarantines, by position,
// without an order id).
type layoutHealth struct {
	ReadModel struct {
		Quarantined       int
		RebuildError      string
		RebuildStoppedAt  uint64
		QuarantinedOrders []struct {
			OrderID  string
			Version  uint64
			Position uint64
			Error    string
		}
	}
}

// outboxStats is the outbox section of GET /stats.
type outboxStats struct {
	Outbox struct {
		Lag, Published, DeadLettered uint64
		Partitions                   []struct{ Checkpoint, Head uint64 }
	}
}

// TestJournalEntryOutsideTheLayoutDoesNotStopStartUp: an entry that breaks
// the backend's own layout (a Redis log entry without its fields, a NATS
// journal message without its headers) is not a record; the backend
// reports it with its position. The node starts, the rebuild skips it and
// lists it by position in /health, the outbox dead-letters it and publishes
// what follows, so orders created after it are listed; after one more
// restart the rebuild lists every order around it and the outbox, whose
// checkpoint is past it, does not stop at it again.
func TestJournalEntryOutsideTheLayoutDoesNotStopStartUp(t *testing.T) {
	for _, kind := range []string{node.Redis, node.NATS} {
		t.Run(kind, func(t *testing.T) {
			// breakLayout writes the entry and returns its position.
			var breakLayout func() uint64
			tn := startNode(t, func(c *node.Config) {
				c.Persistence = kind
				c.Partitions = 1 // the bad entry goes into the one log
				if kind == node.Redis {
					s := testservers.StartRedis(t)
					c.Redis = s.Addr()
					breakLayout = func() uint64 {
						rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
						defer rdb.Close()
						pos, err := rdb.Incr(context.Background(), "ordersystem:{p0}:seq").Result()
						if err == nil {
							err = rdb.XAdd(context.Background(), &goredis.XAddArgs{Stream: "ordersystem:{p0}:log",
								ID: "0-" + strconv.FormatInt(pos, 10), Values: []any{"d", "junk"}}).Err()
						}
						if err != nil {
							t.Fatal(err)
						}
						return uint64(pos)
					}
				} else {
					s := testservers.StartNATS(t)
					c.NATS = s.URL()
					breakLayout = func() uint64 {
						nc, err := nats.Connect(s.URL())
						if err != nil {
							t.Fatal(err)
						}
						defer nc.Close()
						js, _ := jetstream.New(nc)
						ack, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "orders.journal.p0.junk", Data: []byte("junk")})
						if err != nil {
							t.Fatal(err)
						}
						return ack.Sequence * 1000 // persistence/nats: position = sequence*1000 + index
					}
				}
			})
			before := tn.create(seedOrder)
			waitFor(t, "the order in /orders", func() bool { return tn.listed(before) })
			cfg := tn.n.Config()
			cfg.Port = 0
			shutdown := func(n *node.Node) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := n.Shutdown(ctx); err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			}
			restart := func() *testNode {
				t.Helper()
				n, err := node.Start(context.Background(), cfg)
				if err != nil {
					t.Fatalf("start with an entry outside the layout: %v", err)
				}
				t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
				return &testNode{t: t, n: n, base: "http://" + n.Addr()}
			}
			// wantSkipped checks that /health lists the entry at pos as
			// skipped and reports no incomplete rebuild.
			wantSkipped := func(tn *testNode, pos uint64) {
				t.Helper()
				var h layoutHealth
				tn.expect(tn.do("GET", "/health", ""), http.StatusOK).json(t, &h)
				rm := h.ReadModel
				if rm.RebuildError != "" || rm.RebuildStoppedAt != 0 || rm.Quarantined != 1 || len(rm.QuarantinedOrders) != 1 {
					t.Fatalf("health %+v", rm)
				}
				if q := rm.QuarantinedOrders[0]; q.OrderID != "" || q.Version != 0 || q.Position != pos || !strings.Contains(q.Error, "not a record") {
					t.Fatalf("skipped entry %+v, want position %d", q, pos)
				}
				tn.expect(tn.do("GET", "/health/ready", ""), http.StatusOK)
			}
			outbox := func(tn *testNode) outboxStats {
				t.Helper()
				var s outboxStats
				tn.expect(tn.do("GET", "/stats", ""), http.StatusOK).json(t, &s)
				return s
			}

			shutdown(tn.n)
			bad := breakLayout()

			tn = restart()
			wantSkipped(tn, bad)
			tn.expect(tn.do("GET", "/orders/"+before, ""), http.StatusOK)
			if !tn.listed(before) {
				t.Fatal("the order before the bad entry is not in /orders")
			}
			tn.expect(tn.do("POST", "/orders/"+before+"/pay", ""), http.StatusOK)
			// The outbox reads past the entry: orders journaled after it
			// are published and listed.
			after := tn.create(seedOrder)
			waitFor(t, "the order created after the bad entry in /orders", func() bool { return tn.listed(after) })
			waitFor(t, "the paid order in /orders", func() bool {
				var page []struct{ OrderID, Status string }
				tn.expect(tn.do("GET", "/orders?status=Paid", ""), http.StatusOK).json(t, &page)
				return len(page) == 1 && page[0].OrderID == before
			})
			// The figures are the cluster's, read from the backend and cached
			// for a second: the checkpoint may be saved after the read model
			// got the events.
			waitFor(t, "the outbox's lag to be 0 and the bad entry counted", func() bool {
				o := outbox(tn).Outbox
				return o.Lag == 0 && o.DeadLettered >= 1
			})
			if o := outbox(tn).Outbox; o.DeadLettered != 1 || o.Partitions[0].Checkpoint < bad {
				t.Fatalf("outbox %+v: the bad entry must be dead-lettered once and the checkpoint past it", o)
			}
			if !tn.metric(`outbox_dead_lettered_total{reason="unreadable"} 1`) {
				t.Fatal("/metrics does not count the dead-lettered entry")
			}
			shutdown(tn.n)

			// Once more: the rebuild reads the orders on both sides of it;
			// the outbox's checkpoint is past it.
			tn = restart()
			wantSkipped(tn, bad)
			if !tn.listed(before) || !tn.listed(after) {
				t.Fatal("an order around the bad entry is missing from /orders after the restart")
			}
			if s := tn.readSide(); s.TotalOrders != 2 {
				t.Fatalf("stats %+v", s)
			}
			later := tn.create(seedOrder)
			waitFor(t, "an order created after the second restart in /orders", func() bool { return tn.listed(later) })
			// Lag comes from the backend, published from this node's counter,
			// and both are cached for a second: wait for both to settle.
			waitFor(t, "the outbox's lag to be 0 and the new event counted", func() bool {
				o := outbox(tn).Outbox
				return o.Lag == 0 && o.Published >= 1
			})
			if o := outbox(tn).Outbox; o.DeadLettered != 0 || o.Published != 1 {
				t.Fatalf("outbox after the restart %+v: only the new order's event is published, nothing is dead-lettered again", o)
			}
			t.Logf("%s: the entry at position %d skipped by the rebuild and the outbox", kind, bad)
		})
	}
}
