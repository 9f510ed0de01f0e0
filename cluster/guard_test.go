package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/registry"
)

func echoKind() *pcluster.Kind {
	return pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return echo{} }))
}

// A member whose placement actor stopped fails Check, starts a new
// incarnation by itself, and serves again.
func TestMemberReplacesADeadPlacementActor(t *testing.T) {
	m := cluster.NewMember(cluster.MemberConfig{
		Node: cluster.Config{NodeID: "n1", LocalOnly: true, Kinds: []*pcluster.Kind{echoKind()}},
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(false)
	echoVia(t, m, "a")
	if err := m.Check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	sys := m.System()
	sys.Root.Stop(actor.NewPID(sys.Address(), cluster.PlacementName))
	waitUntil(t, 5*time.Second, "Check fails", func() bool { return m.Check(context.Background()) != nil })
	waitUntil(t, 10*time.Second, "a new incarnation", func() bool {
		return m.Check(context.Background()) == nil && m.System() != sys
	})
	echoVia(t, m, "b")
}

// listening returns the TCP ports this process listens on (its own
// sockets only: /proc/self/net/tcp lists the whole network namespace, so
// the listening entries are matched with the inodes of /proc/self/fd).
func listening(t *testing.T) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if s, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(s, "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			p, _ := strconv.ParseInt(fs[1][i+1:], 16, 32)
			ports[int(p)] = true
		}
		fh.Close()
	}
	return ports
}

// A local-only node opens no listener that outlives its start, serves its
// actors, and stops (gracefully or not) without a panic although its
// remote server was already stopped.
func TestLocalOnlyNodeListensNowhere(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprint("graceful=", graceful), func(t *testing.T) {
			before := listening(t)
			n, err := cluster.Start(cluster.Config{NodeID: "n1", LocalOnly: true, Kinds: []*pcluster.Kind{echoKind()}})
			if err != nil {
				t.Fatal(err)
			}
			for p := range listening(t) {
				if !before[p] {
					t.Errorf("the local-only node listens on port %d", p)
				}
			}
			if err := n.PlacementAlive(time.Second); err != nil {
				t.Fatalf("placement: %v", err)
			}
			n.Stop(graceful)
			// The harness's way to close the endpoint writers runs one more
			// remote shutdown: it must not panic either.
			remote.GetRemote(n.System()).Shutdown(false)
		})
	}
}

// A node whose node-to-node port other machines could reach refuses to
// start without a secret, naming the fix; loopback without one starts.
func TestStartRefusesAnOpenPortWithoutSecret(t *testing.T) {
	for name, cfg := range map[string]cluster.Config{
		"every interface": {NodeID: "n1", Host: "0.0.0.0"},
		"advertised":      {NodeID: "n1", Host: "127.0.0.1", AdvertiseHost: "10.1.2.3"},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := cluster.Start(cfg)
			if err == nil {
				n.Stop(false)
				t.Fatal("started")
			}
			if !errors.Is(err, cluster.ErrUnauthenticated) || !strings.Contains(err.Error(), "--cluster-secret") {
				t.Fatalf("error %v does not name the fix", err)
			}
		})
	}
	t.Run("short secret", func(t *testing.T) {
		n, err := cluster.Start(cluster.Config{NodeID: "n1", Host: "0.0.0.0", Secret: []byte("short")})
		if err == nil {
			n.Stop(false)
			t.Fatal("started with a 5-byte secret")
		}
	})
	t.Run("secret", func(t *testing.T) {
		s, _ := registry.NewSecret()
		n, err := cluster.Start(cluster.Config{NodeID: "n1", Host: "0.0.0.0", Secret: s})
		if err != nil {
			t.Fatal(err)
		}
		n.Stop(false)
	})
}
