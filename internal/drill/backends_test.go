package drill

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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
	bin := buildNATSServer(t, dir)
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

func buildNATSServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	return bin
}

// TestNATSClusterStartsAgainWhenAPortWasTaken gives the first try a client
// port that another listener holds, as a parallel test may bind a port
// between its choice and the server's start: the start is tried again on
// new ports and the cluster forms.
func TestNATSClusterStartsAgainWhenAPortWasTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server processes")
	}
	dir := t.TempDir()
	bin := buildNATSServer(t, dir)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	picks := 0
	pick := func() (int, error) {
		picks++
		if picks == 2 { // the first server's client port
			return held.Addr().(*net.TCPAddr).Port, nil
		}
		return freePort()
	}
	c, err := startNATSClusterOn(bin, dir, 3, false, pick)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log, err := os.ReadFile(filepath.Join(dir, "try-1", "nats-0", "nats.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "address already in use") {
		t.Fatalf("the first try's nats-0 did not meet the held port; its log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "try-2")); err != nil {
		t.Fatalf("no second try: %v", err)
	}
}
