package drill

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSClusterFailsOver starts the drill's three-server JetStream
// cluster, makes a partition stream R3, and checks that StreamLeaders finds
// its leader, that after a SIGKILL of the leader another server leads it
// and takes writes, and that the restarted server catches up (Whole).
func TestNATSClusterFailsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	c, err := StartNATSCluster(bin, dir, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := natsgo.Connect(c.URLs(), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: JournalStream + "_P0", Subjects: []string{"drilltest.p0.*"}, Replicas: 3}); err != nil {
		t.Fatalf("create an R3 stream: %v", err)
	}
	if _, err := js.Publish(ctx, "drilltest.p0.a", []byte("1")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	leaders, err := c.Leaders(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Names(), leaders[0]) {
		t.Fatalf("leader %q is none of %v", leaders[0], c.Names())
	}
	if err := c.Kill(leaders[0]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(pctx, "drilltest.p0.a", []byte("2"))
		pcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted within 30s of killing the leader %s: %v", leaders[0], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	now, err := c.Leaders(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if now[0] == leaders[0] {
		t.Fatalf("the killed server %s still leads the stream", leaders[0])
	}
	if err := c.Restart(leaders[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Whole(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}
