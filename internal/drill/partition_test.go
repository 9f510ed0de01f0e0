package drill

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestRequestFigures(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ss := []sample{
		{at: at(0.5), took: 500 * time.Millisecond, code: 200}, // returns at 1 s
		{at: at(1), took: 10 * time.Second, code: 503},         // failed
		{at: at(2), took: time.Second, code: 404},              // a definite answer: returns at 3 s
		{at: at(8), took: 3 * time.Second, code: 200},          // returns after the window
		{at: at(9), took: 0, code: 0},                          // no answer
		{at: at(9.5), took: 100 * time.Millisecond, code: 201}, // returns at 9.6 s
	}
	f := requestFigures(ss, t0, at(10))
	if f.OK != 4 || f.Failed != 2 {
		t.Errorf("ok %d failed %d, want 4 and 2", f.OK, f.Failed)
	}
	// Successes returned at 1, 3 and 9.6 s of a 10 s window: the longest
	// stretch without one is 3 .. 9.6 s.
	if want := 6600 * time.Millisecond; f.Stall != want {
		t.Errorf("stall %s, want %s", f.Stall, want)
	}
	if f.Max != 10*time.Second || f.P50 != 500*time.Millisecond {
		t.Errorf("p50 %s max %s, want 500ms and 10s", f.P50, f.Max)
	}
	if none := requestFigures(nil, t0, at(40)); none.Stall != 40*time.Second || none.OK+none.Failed != 0 {
		t.Errorf("no samples: %+v, want a stall of the whole window", none)
	}
}

func TestAgreement(t *testing.T) {
	owners := map[string][]string{
		"a": {"node1", "node1", "node1"},
		"b": {"node1", "node2", "node1"}, // split
		"c": {"node3", "", "node3"},      // one member did not answer
		"d": {"node2", "", "node3"},      // both
	}
	dis, un, ex := agreement(owners)
	if dis != 2 || un != 2 || len(ex) != 2 {
		t.Errorf("disagree %d unanswered %d examples %q, want 2, 2 and 2", dis, un, ex)
	}
	if got := majority(owners["b"]); got != "node1" {
		t.Errorf("majority of %v = %q", owners["b"], got)
	}
	if got := majority([]string{"", ""}); got != "" {
		t.Errorf("majority of no answers = %q", got)
	}
}

// TestNetCut builds a two-member Net with a listener on the node-to-node
// port and one on the HTTP port in member 1's namespace: before the cut
// member 0 reaches both; during it, not the node-to-node port (either way),
// while the host still reaches both; after Heal, everything again.
func TestNetCut(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but not root: the partition drill's network needs root")
		}
		t.Skip("not root: network namespaces need CAP_SYS_ADMIN")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no redis-server (the listeners of this test)")
		}
		t.Skip("no redis-server on PATH")
	}
	nt, err := NewNet(2)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no network namespaces here: %v", err)
	}
	defer nt.Close()
	listen := func(i, port int) {
		bin, args := nt.Command(i, "redis-server", "--port", strconv.Itoa(port), "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--dir", t.TempDir())
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = childAttr()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	listen(1, partitionRemotePort)
	listen(1, partitionHTTPPort)
	listen(0, partitionRemotePort)
	// dial reports whether member from (-1: the host) connects to member
	// to's port within a second.
	dial := func(from, to, port int) bool {
		addr := net.JoinHostPort(nt.Addr(to), strconv.Itoa(port))
		if from < 0 {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
		ip, args := nt.Command(from, "timeout", "1", "bash", "-c", "exec 3<>/dev/tcp/"+nt.Addr(to)+"/"+strconv.Itoa(port))
		return exec.Command(ip, args...).Run() == nil
	}
	check := func(when string, want map[[3]int]bool) {
		t.Helper()
		for k, w := range want {
			ok := dial(k[0], k[1], k[2])
			for i := 0; ok != w && i < 20; i++ { // the listeners may still be starting
				time.Sleep(100 * time.Millisecond)
				ok = dial(k[0], k[1], k[2])
			}
			if ok != w {
				t.Errorf("%s: member %d to member %d port %d connects=%v, want %v", when, k[0], k[1], k[2], ok, w)
			}
		}
	}
	r, h := partitionRemotePort, partitionHTTPPort
	check("before the cut", map[[3]int]bool{{0, 1, r}: true, {0, 1, h}: true, {1, 0, r}: true, {-1, 1, r}: true, {-1, 1, h}: true})
	if err := nt.Cut(1, r); err != nil {
		t.Fatal(err)
	}
	check("cut", map[[3]int]bool{{0, 1, r}: false, {1, 0, r}: false, {0, 1, h}: true, {-1, 1, h}: true, {-1, 1, r}: true})
	if err := nt.Heal(1); err != nil {
		t.Fatal(err)
	}
	check("healed", map[[3]int]bool{{0, 1, r}: true, {1, 0, r}: true, {0, 1, h}: true})
}
