package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// SlowStats is what a SlowClients run saw.
type SlowStats struct {
	// Opened is how many connections were established.
	Opened int
	// ClosedByServer counts connections the server closed (or reset) while
	// the client was still dribbling its body.
	ClosedByServer int
	// Failed counts connections that could not be established.
	Failed int
}

func (s SlowStats) String() string {
	return fmt.Sprintf("slow clients: opened=%d closed-by-server=%d failed=%d", s.Opened, s.ClosedByServer, s.Failed)
}

// SlowClients opens n connections to target (a base URL on loopback, as
// Config.Validate checks) that each send the headers of a POST /orders with
// a 64 KiB body and then one byte of the body every every, the way a
// slowloris attacker holds a server's resources. It returns at once; stop
// closes every connection and returns the figures.
func SlowClients(ctx context.Context, target string, n int, every time.Duration) (stop func() SlowStats, err error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("slow clients: target %q is not a base URL", target)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("slow clients: target %q: only plain http", target)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: %s (slow clients only go to loopback)", ErrRemoteTarget, u.Hostname())
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg                     sync.WaitGroup
		opened, closed, failed atomic.Int64
	)
	head := []byte("POST /orders HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{")
	for range n {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				failed.Add(1)
				return
			}
			opened.Add(1)
			stopConn := context.AfterFunc(ctx, func() { _ = c.Close() })
			defer stopConn()
			defer c.Close()
			if _, err := c.Write(head); err != nil {
				closed.Add(1)
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				_ = c.SetWriteDeadline(time.Now().Add(every))
				if _, err := c.Write([]byte(" ")); err != nil {
					if ctx.Err() == nil {
						closed.Add(1)
					}
					return
				}
			}
		})
	}
	return func() SlowStats {
		cancel()
		wg.Wait()
		return SlowStats{Opened: int(opened.Load()), ClosedByServer: int(closed.Load()), Failed: int(failed.Load())}
	}, nil
}
