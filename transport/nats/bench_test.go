package nats_test

import (
	"context"
	"strconv"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/nats"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

// BenchmarkPublish: events published per second through our Transport,
// batches of 100 from 32 concurrent publishers, each batch waiting for all
// its acknowledgements.
func BenchmarkPublish(b *testing.B) {
	tr := newTransport(b, uniqueOptions(b, testservers.NATS(b)))
	defer tr.Close()
	transporttest.BenchPublish(b, tr.Publish)
}

// BenchmarkRawAsyncPublish: the same messages published by nats.go's
// jetstream package directly (async publish, then wait for the batch's
// acknowledgements): the server's ceiling for our wire format. The stream is
// created by our Transport (same configuration).
func BenchmarkRawAsyncPublish(b *testing.B) {
	url := testservers.NATS(b)
	o := uniqueOptions(b, url)
	newTransport(b, o).Close()
	nc, err := natsgo.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(nats.DefaultMaxPending))
	if err != nil {
		b.Fatal(err)
	}
	transporttest.BenchPublish(b, func(ctx context.Context, batch []transport.Message) error {
		futures := make([]jetstream.PubAckFuture, len(batch))
		for i, m := range batch {
			v := strconv.FormatUint(m.Version, 10)
			f, err := js.PublishMsgAsync(&natsgo.Msg{
				Subject: o.SubjectPrefix + "." + m.Type,
				Data:    m.Payload,
				Header: natsgo.Header{
					"Nats-Msg-Id":          {m.OrderID + ":" + v},
					"Ordersystem-Order-Id": {m.OrderID},
					"Ordersystem-Version":  {v},
					"Ordersystem-Type":     {m.Type},
				},
			})
			if err != nil {
				return err
			}
			futures[i] = f
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}
