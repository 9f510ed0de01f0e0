package clustertest_test

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster/clustertest"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

// latencyProxy is a TCP proxy on loopback that delays every byte by half
// a round trip in each direction (pipelined data is not delayed twice) and
// can cut the backend off: Cut closes every connection and refuses new
// ones until Restore.
type latencyProxy struct {
	target string
	ln     net.Listener
	oneWay atomic.Int64 // nanoseconds

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newLatencyProxy(t *testing.T, target string, rtt time.Duration) *latencyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &latencyProxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.oneWay.Store(int64(rtt / 2))
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *latencyProxy) addr() string { return p.ln.Addr().String() }

func (p *latencyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk half a round trip after it was read.
func (p *latencyProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	ch := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.data); err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
		for range ch { // drain until the reader stops
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			ch <- chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.oneWay.Load()))}
		}
		if err != nil {
			break
		}
	}
	close(ch)
	<-done
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *latencyProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *latencyProxy) close() {
	p.setCut(true)
	p.ln.Close()
	p.wg.Wait()
}

// leaseRTT is the round trip TestLeaseCarriesSlowRedis adds:
// ORDERSYSTEM_LEASE_RTT (a Go duration) or 500 ms, TTL/4 of the 2 s lease:
// the round trip the lease arithmetic promises to carry, the step itself.
func leaseRTT(t *testing.T) time.Duration {
	if v := os.Getenv("ORDERSYSTEM_LEASE_RTT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("ORDERSYSTEM_LEASE_RTT=%q: %v", v, err)
		}
		return d
	}
	return 500 * time.Millisecond
}

// TestLeaseCarriesSlowRedis puts 500 ms of round trip (leaseRTT) between
// two members and a private redis-server, with the node's lease settings
// (TTL 2 s, default renewal and timeouts, Poll TTL/8): no member fences
// over five TTLs, and each keeps a valid lease the whole time. Then the
// backend is cut off for longer than the TTL: both fence, within the TTL
// of the cut (plus timer slack), and not before their last acknowledged
// renewal's lease ran out.
func TestLeaseCarriesSlowRedis(t *testing.T) {
	const ttl = 2 * time.Second
	rtt := leaseRTT(t)
	srv := testservers.StartRedis(t)
	proxy := newLatencyProxy(t, srv.Addr(), rtt)
	h := clustertest.Start(t, 2, clustertest.Options{
		Backend: clustertest.Redis(t, proxy.addr()), Bare: true, TTL: ttl, Poll: ttl / 8,
	})
	t.Logf("round trip +%v: two members joined", rtt)

	deadline := time.Now().Add(5 * ttl)
	checks, minLeft := 0, ttl
	for time.Now().Before(deadline) {
		for i := range 2 {
			p := h.Provider(i)
			if p.Fenced() {
				t.Fatalf("%s fenced at round trip %v", h.NodeID(i), rtt)
			}
			ok, exp := p.Lease()
			if !ok {
				t.Fatalf("%s: lease invalid at round trip %v (expired %v ago)", h.NodeID(i), rtt, time.Since(exp))
			}
			minLeft = min(minLeft, time.Until(exp))
			if n := len(h.MemberIDs(i)); n != 2 {
				t.Fatalf("%s sees %d members, want 2", h.NodeID(i), n)
			}
		}
		checks++
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("no fence over %v at round trip %v (%d checks); least lease left seen: %v of %v",
		5*ttl, rtt, checks, minLeft.Round(time.Millisecond), ttl)

	_, exp := h.Provider(0).Lease()
	cut := time.Now()
	proxy.setCut(true)
	for i := range 2 {
		reason := h.WaitFenced(t, i, ttl+500*time.Millisecond)
		t.Logf("%s fenced %v after the cut: %s", h.NodeID(i), time.Since(cut).Round(time.Millisecond), reason)
	}
	if early := time.Until(exp); early > 50*time.Millisecond {
		t.Fatalf("fenced %v before the lease it held at the cut ran out", early)
	}
	if ok, _ := h.Provider(0).Lease(); ok {
		t.Fatal("fenced member reports a valid lease")
	}
}
