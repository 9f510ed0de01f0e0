package nats_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/transporttest"
)

// TestSubscribeSurvivesALostCreate: the first consumer create request of a
// subscription never reaches the server (a proxy between client and server
// swallows it, as a connection that drops does). Subscribe sends it again
// after RequestTimeout and succeeds well within its ctx, for a group and for
// an ephemeral subscription, and the subscription delivers. Before, the one
// request waited for the whole of ctx (30 s in CI) and Subscribe failed.
func TestSubscribeSurvivesALostCreate(t *testing.T) {
	url := testservers.NATS(t)
	p := newDropProxy(t, strings.TrimPrefix(url, "nats://"), "$JS.API.CONSUMER.CREATE.")
	o := uniqueOptions(t, url)
	o.URL = "nats://" + p.addr()
	o.RequestTimeout = 500 * time.Millisecond
	tr := newTransport(t, o)
	defer tr.Close()

	for _, group := range []string{"lost-create", ""} {
		p.dropNext()
		r := transporttest.NewRecorder(t)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sub, err := tr.Subscribe(ctx, transport.SubscribeOptions{Group: group}, r.Handle)
		cancel()
		if err != nil {
			t.Fatalf("subscribe %q after a lost create: %v", group, err)
		}
		if p.dropped() != 1 {
			t.Fatalf("subscribe %q: the proxy swallowed %d create requests, want 1", group, p.dropped())
		}
		took := time.Since(start)
		t.Logf("subscribe %q took %s with its first create lost", group, took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("subscribe %q took %s: the lost create was not sent again after RequestTimeout", group, took)
		}
		msgs := transporttest.Interleaved("lc"+group, 2, 2)
		if err := tr.Publish(ctxT(t), msgs); err != nil {
			t.Fatal(err)
		}
		r.WaitFor(t, "after a lost create", idsOf(msgs), 10*time.Second)
		_ = sub.Close()
		p.reset()
	}
}

// dropProxy forwards NATS client connections to a server and, once armed
// by dropNext, swallows the next client publish (PUB or HPUB) whose subject
// starts with prefix.
type dropProxy struct {
	t      *testing.T
	target string
	prefix string
	ln     net.Listener
	armed  atomic.Bool
	count  atomic.Int32
	mu     sync.Mutex
	conns  []net.Conn
}

func newDropProxy(t *testing.T, target, prefix string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{t: t, target: target, prefix: prefix, ln: ln}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
			go func() { defer wg.Done(); p.filter(up, c); up.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }
func (p *dropProxy) dropNext()    { p.armed.Store(true) }
func (p *dropProxy) dropped() int { return int(p.count.Load()) }
func (p *dropProxy) reset()       { p.armed.Store(false); p.count.Store(0) }

// filter copies the client's protocol lines to up, each publish with its
// payload, leaving out the one publish it is armed for.
func (p *dropProxy) filter(up io.Writer, client io.Reader) {
	r := bufio.NewReader(client)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		out := line
		f := strings.Fields(string(line))
		if len(f) >= 3 && (strings.EqualFold(f[0], "PUB") || strings.EqualFold(f[0], "HPUB")) {
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return
			}
			payload := make([]byte, n+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			if strings.HasPrefix(f[1], p.prefix) && p.armed.CompareAndSwap(true, false) {
				p.count.Add(1)
				continue
			}
			out = append(bytes.Clone(line), payload...)
		}
		if _, err := up.Write(out); err != nil {
			return
		}
	}
}
