package nats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

// TestContractCluster runs the transport suite on a private three-server
// JetStream cluster with the stream (and so its durable consumers) on three
// replicas.
func TestContractCluster(t *testing.T) {
	c := testservers.StartJetStreamCluster(t, 3)
	transporttest.Run(t, func(t *testing.T) transport.Transport {
		o := uniqueOptions(t, c.URLs())
		o.Replicas = 3
		return newTransport(t, o)
	}, transporttest.Features{DuplicatePublishDelivered: false})
}

// TestClusterKillStreamLeader: on a three-server R3 cluster, SIGKILL the
// server that leads the event stream and keep it down; a group and an
// ephemeral subscription keep receiving what is published afterwards
// (publishes retried while the stream elects a new leader).
func TestClusterKillStreamLeader(t *testing.T) {
	c := testservers.StartJetStreamCluster(t, 3)
	o := uniqueOptions(t, c.URLs())
	o.Replicas = 3
	tr := newTransport(t, o)
	defer tr.Close()
	killAndCheck(t, c, tr, o.Stream, func() int { return c.StreamLeader(o.Stream) })
}

// TestClusterKillEphemeralConsumerLeader: SIGKILL the server that leads the
// ephemeral subscription's consumer: the subscription goes on (a new leader
// among the consumer's replicas, or a consumer made again) from the
// message after the last one it delivered.
func TestClusterKillEphemeralConsumerLeader(t *testing.T) {
	c := testservers.StartJetStreamCluster(t, 3)
	o := uniqueOptions(t, c.URLs())
	o.Replicas = 3
	tr := newTransport(t, o)
	defer tr.Close()
	killAndCheck(t, c, tr, o.Stream, func() int { return ephemeralHost(t, c, o.Stream) })
}

func killAndCheck(t *testing.T, c *testservers.JSCluster, tr transport.Transport, stream string, victim func() int) {
	grp, eph := transporttest.NewRecorder(t), transporttest.NewRecorder(t)
	for _, s := range []struct {
		group string
		r     *transporttest.Recorder
	}{{"kill", grp}, {"", eph}} {
		sub, err := tr.Subscribe(ctxT(t), transport.SubscribeOptions{Group: s.group}, s.r.Handle)
		if err != nil {
			t.Fatalf("subscribe %q: %v", s.group, err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	before := transporttest.Interleaved("kb", 4, 5)
	publishRetrying(t, tr, before, 20*time.Second)
	grp.WaitFor(t, "group before the kill", idsOf(before), 20*time.Second)
	eph.WaitFor(t, "ephemeral before the kill", idsOf(before), 20*time.Second)

	v := victim()
	c.Kill(v)
	killed := time.Now()
	t.Logf("killed %s", c.Name(v))
	after := transporttest.Interleaved("ka", 4, 5)
	publishRetrying(t, tr, after, 30*time.Second)
	t.Logf("publish succeeded %s after the kill", time.Since(killed).Round(time.Millisecond))
	grp.WaitFor(t, "group after the kill", idsOf(after), 30*time.Second)
	t.Logf("group received everything %s after the kill", time.Since(killed).Round(time.Millisecond))
	eph.WaitFor(t, "ephemeral after the kill", idsOf(after), 30*time.Second)
	t.Logf("ephemeral subscription received everything %s after the kill", time.Since(killed).Round(time.Millisecond))
}

func publishRetrying(t *testing.T, tr transport.Transport, msgs []transport.Message, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tr.Publish(ctx, msgs)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish for %s: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ephemeralHost is the server that leads the stream's one ephemeral
// subscription consumer.
func ephemeralHost(t *testing.T, c *testservers.JSCluster, stream string) int {
	t.Helper()
	js := plainJS(t, c.URLs())
	s, err := js.Stream(ctxT(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	var host string
	for info := range s.ListConsumers(ctxT(t)).Info() {
		if strings.HasPrefix(info.Name, "ordersystem_eph_") && info.Cluster != nil {
			host = info.Cluster.Leader
		}
	}
	for i := range c.Size() {
		if c.Name(i) == host {
			return i
		}
	}
	t.Fatalf("no server of the cluster holds an ephemeral consumer of %s (found %q)", stream, host)
	return -1
}
