package drill

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy on loopback that can cut a node off from its backend
// or slow it down: Cut closes every connection and refuses new ones until
// Restore; SetDelay holds every chunk of bytes for a one-way delay per
// direction, in order.
type Proxy struct {
	target string
	ln     net.Listener
	up     atomic.Int64 // one-way delay towards the target, nanoseconds
	down   atomic.Int64 // one-way delay back from the target

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	go p.accept()
	return p, nil
}

// Addr is host:port of the proxy.
func (p *Proxy) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.ln.Addr().(*net.TCPAddr).Port) }

func (p *Proxy) accept() {
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
		p.mu.Unlock()
		go p.pipe(up, c, &p.up)
		go p.pipe(c, up, &p.down)
	}
}

// SetDelay sets the one-way delay added to every chunk from now on: up
// towards the target, down back from it (the round trip grows by
// up + down). A chunk is held until delay after it was read, chunks leave
// in the order they came, so a smaller delay never reorders bytes.
func (p *Proxy) SetDelay(up, down time.Duration) {
	p.up.Store(int64(up))
	p.down.Store(int64(down))
}

// chunk is bytes read from one side, due to be written at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk delay after it was read; it closes
// both when either side ends.
func (p *Proxy) pipe(dst, src net.Conn, delay *atomic.Int64) {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b: b[:n], due: time.Now().Add(time.Duration(delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range q { // let the reader finish
	}
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut drops every connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the proxy.
func (p *Proxy) Close() {
	p.Cut()
	p.ln.Close()
}
