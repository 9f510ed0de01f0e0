// Command seed fills an OrderSystem journal fast, for cold-start
// measurements (scripts/coldstart.sh): it appends N OrderCreated events
// (one new order each, 16-hex-digit ids like the HTTP API's, the seed's two
// items) through the persistence API with many writers, encoded as the node
// encodes them (package codec), then moves every partition's outbox
// checkpoint to the log's head, as if the outbox had published them (the
// events never reach a transport: a node started on this journal rebuilds
// its read model from it and publishes nothing old).
//
//	go run ./cmd/seed -persistence redis -redis 127.0.0.1:7000 -orders 1000000
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	pnats "github.com/ordersystem/ordersystem/persistence/nats"
	predis "github.com/ordersystem/ordersystem/persistence/redis"
)

type options struct {
	persistence, redis, nats string
	orders, writers          int
	partitions               int
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.persistence, "persistence", "redis", "journal backend: redis or nats (the default cluster name's keys, streams and buckets)")
	fs.StringVar(&o.redis, "redis", "127.0.0.1:6379", "Redis address")
	fs.StringVar(&o.nats, "nats", "nats://127.0.0.1:4222", "NATS URL")
	fs.IntVar(&o.orders, "orders", 100000, "orders to create")
	fs.IntVar(&o.writers, "writers", 64, "concurrent appenders")
	fs.IntVar(&o.partitions, "partitions", 0, "journal partitions of a new journal (0: the stored count, or the default)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.persistence != "redis" && o.persistence != "nats":
		return o, fmt.Errorf("-persistence %q: want redis or nats", o.persistence)
	case o.orders < 1:
		return o, fmt.Errorf("-orders %d: want at least 1", o.orders)
	case o.writers < 1 || o.writers > 4096:
		return o, fmt.Errorf("-writers %d: want 1-4096", o.writers)
	}
	return o, persistence.CheckPartitions(o.partitions)
}

func open(ctx context.Context, o options) (persistence.Backend, error) {
	log := slog.New(slog.DiscardHandler)
	if o.persistence == "nats" {
		return pnats.New(ctx, pnats.Options{URL: o.nats, Partitions: o.partitions, Logger: log})
	}
	return predis.New(ctx, predis.Options{Addr: o.redis, Partitions: o.partitions, PoolSize: o.writers + 8, Logger: log})
}

func run(ctx context.Context, o options, out io.Writer) error {
	b, err := open(ctx, o)
	if err != nil {
		return err
	}
	defer b.Close()
	began := time.Now()
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		once       sync.Once
		first      error
	)
	for range o.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(o.orders) && ctx.Err() == nil {
				if err := appendOrder(ctx, b); err != nil {
					once.Do(func() { first = err })
					return
				}
				if n := done.Add(1); n%250000 == 0 {
					fmt.Fprintf(out, "%d orders, %.0f/s\n", n, float64(n)/time.Since(began).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for p := range b.Partitions() {
		head, err := b.Log(p).Head(ctx)
		if err != nil {
			return err
		}
		if err := persistence.SaveLogCheckpoint(ctx, b, b.Log(p), actors.CheckpointName(p), head); err != nil {
			return err
		}
	}
	took := time.Since(began)
	fmt.Fprintf(out, "seeded %d orders in %s (%.0f/s) into %d partitions; outbox checkpoints at the heads\n", done.Load(), took.Round(time.Millisecond), float64(done.Load())/took.Seconds(), b.Partitions())
	return nil
}

// appendOrder journals one new order as the order actor would.
func appendOrder(ctx context.Context, j persistence.Journal) error {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	c := order.Created{CustomerID: "customer-123", Items: []order.Item{
		{ProductID: "prod-1", Name: "Laptop", Quantity: 1, UnitPrice: 99999},
		{ProductID: "prod-2", Name: "Mouse", Quantity: 2, UnitPrice: 2999},
	}, Total: 105997, At: time.Now().UTC()}
	data, err := proto.Marshal(codec.EventToProto(id, 1, "seed-"+id, "seed", c))
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err = j.Append(ctx, id, 0, []persistence.Record{{Type: c.EventType(), Data: data}})
		if err == nil || !errors.Is(err, persistence.ErrUnavailable) || attempt == 5 {
			return err
		}
		time.Sleep(100 * time.Millisecond << attempt)
	}
}
