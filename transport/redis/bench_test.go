package redis_test

import (
	"context"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/redis"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

// BenchmarkPublish: events published per second through our Transport,
// batches of 100 from 32 concurrent publishers.
func BenchmarkPublish(b *testing.B) {
	tr := newTransport(b, testservers.Redis(b), redis.Options{})
	defer tr.Close()
	transporttest.BenchPublish(b, tr.Publish)
}

// BenchmarkRawXAddPipeline: the same entries written by go-redis directly,
// one pipeline of XADD (MAXLEN ~) per batch: the server's ceiling for our
// wire format.
func BenchmarkRawXAddPipeline(b *testing.B) {
	addr := testservers.Redis(b)
	key := uniqueKey(b)
	c := plainClient(b, addr, key)
	transporttest.BenchPublish(b, func(ctx context.Context, batch []transport.Message) error {
		pipe := c.Pipeline()
		for _, m := range batch {
			v := strconv.FormatUint(m.Version, 10)
			pipe.XAdd(ctx, &goredis.XAddArgs{
				Stream: key, MaxLen: redis.DefaultMaxLen, Approx: true, ID: "*",
				Values: []any{"eventId", m.OrderID + ":" + v, "type", m.Type, "payload", m.Payload, "orderId", m.OrderID, "version", v},
			})
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}
