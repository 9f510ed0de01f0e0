package node_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// TestNineMixes drives create/pay/ship on every transport x persistence mix
// and reads the events back from the transport with a plain client (go-redis,
// nats.go), not through our code: what other services rely on.
func TestNineMixes(t *testing.T) {
	backends := []string{node.InMemory, node.Redis, node.NATS}
	for _, tr := range backends {
		for _, pe := range backends {
			t.Run("transport="+tr+"/persistence="+pe, func(t *testing.T) {
				var redisAddr, natsURL string
				if tr == node.Redis || pe == node.Redis {
					redisAddr = testservers.StartRedis(t).Addr()
				}
				if tr == node.NATS || pe == node.NATS {
					natsURL = testservers.StartNATS(t).URL()
				}
				tn := startNode(t, func(c *node.Config) {
					c.Transport, c.Persistence = tr, pe
					if redisAddr != "" {
						c.Redis = redisAddr
					}
					if natsURL != "" {
						c.NATS = natsURL
					}
				})
				id := tn.create(seedOrder)
				tn.expect(tn.do("POST", "/orders/"+id+"/pay", `{"paymentMethod":"card"}`), http.StatusOK)
				tn.expect(tn.do("POST", "/orders/"+id+"/ship", `{"trackingNumber":"T-9"}`), http.StatusOK)
				want := []string{id + ":1:OrderCreated", id + ":2:OrderPaid", id + ":3:OrderShipped"}

				var got func() []string
				switch tr {
				case node.Redis:
					got = readRedisEvents(t, redisAddr)
				case node.NATS:
					got = readNATSEvents(t, natsURL)
				default:
					got = func() []string { return readModelEvents(t, tn, id) }
				}
				waitFor(t, "the three events on the transport", func() bool {
					return strings.Join(got(), ",") == strings.Join(want, ",")
				})
				t.Logf("events on %s: %v", tr, got())
			})
		}
	}
}

// readRedisEvents reads orders:events with XRANGE and decodes each payload.
func readRedisEvents(t *testing.T, addr string) func() []string {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return func() []string {
		msgs, err := rdb.XRange(context.Background(), "orders:events", "-", "+").Result()
		if err != nil {
			t.Fatalf("XRANGE orders:events: %v", err)
		}
		seen := map[string]bool{}
		var out []string
		for _, m := range msgs {
			id, _ := m.Values["eventId"].(string)
			typ, _ := m.Values["type"].(string)
			payload, _ := m.Values["payload"].(string)
			if seen[id] {
				continue // at-least-once: consumers drop duplicates by id
			}
			seen[id] = true
			out = append(out, decodeCheck(t, id, typ, []byte(payload)))
		}
		return out
	}
}

// readNATSEvents reads ORDER_EVENTS with a plain ordered consumer.
func readNATSEvents(t *testing.T, url string) func() []string {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream, err := js.Stream(ctx, "ORDER_EVENTS")
		if err != nil {
			return nil
		}
		info, err := stream.Info(ctx)
		if err != nil || info.State.Msgs == 0 {
			return nil
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"orders.events.>"}})
		if err != nil {
			t.Fatalf("ordered consumer: %v", err)
		}
		batch, err := cons.FetchNoWait(int(info.State.Msgs))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		var out []string
		for m := range batch.Messages() {
			typ := strings.TrimPrefix(m.Subject(), "orders.events.")
			out = append(out, decodeCheck(t, m.Headers().Get("Nats-Msg-Id"), typ, m.Data()))
		}
		return out
	}
}

// readModelEvents is the in-memory transport's view: the read model that
// the transport feeds.
func readModelEvents(t *testing.T, tn *testNode, id string) []string {
	s, ok := tn.n.ReadModel().Get(id)
	if !ok {
		return nil
	}
	types := []string{"OrderCreated", "OrderPaid", "OrderShipped"}
	var out []string
	for v := uint64(1); v <= s.Version && int(v) <= len(types); v++ {
		out = append(out, fmt.Sprintf("%s:%d:%s", id, v, types[v-1]))
	}
	return out
}

// decodeCheck decodes a payload as orderpb.Event and checks it against the
// event id and type that travelled beside it.
func decodeCheck(t *testing.T, eventID, typ string, payload []byte) string {
	t.Helper()
	var ev orderpb.Event
	if err := proto.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("payload of %s is not an orderpb.Event: %v", eventID, err)
	}
	if got := fmt.Sprintf("%s:%d", ev.GetOrderId(), ev.GetVersion()); got != eventID {
		t.Fatalf("event id %q but payload says %s", eventID, got)
	}
	names := map[string]bool{"OrderCreated": ev.GetCreated() != nil, "OrderPaid": ev.GetPaid() != nil, "OrderShipped": ev.GetShipped() != nil}
	if !names[typ] {
		t.Fatalf("event %s has type %q but its payload is another event", eventID, typ)
	}
	return eventID + ":" + typ
}
