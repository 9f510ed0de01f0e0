package drill

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestProxyDelaysInOrder: with a one-way delay each way, a round trip
// through the proxy takes at least their sum, and the bytes of many small
// writes arrive complete and in order, also across a change of the delay.
func TestProxyDelaysInOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := NewProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetDelay(40*time.Millisecond, 60*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))

	start := time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 100*time.Millisecond {
		t.Fatalf("round trip %v through a proxy adding 40 ms + 60 ms", rtt)
	}

	var want bytes.Buffer
	done := make(chan error, 1)
	go func() {
		for i := range 300 {
			if i == 150 {
				p.SetDelay(0, 0) // later chunks must not overtake earlier ones
			}
			b := []byte{byte(i), byte(i >> 8), 'a', 'b'}
			want.Write(b)
			if _, err := c.Write(b); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		done <- nil
	}()
	got := make([]byte, 300*4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("bytes through the delaying proxy arrived changed or out of order")
	}
}
