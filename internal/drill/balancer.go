package drill

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// balancer stands in for a load balancer in front of the members: it
// probes every member's /health/ready every interval and the drill's
// clients send only to the members whose last probe answered 200. A probe
// that gets no answer within the interval (refused, timed out) counts as
// not ready. When no member is ready it fails open and offers all of them,
// as most load balancers do.
type balancer struct {
	every time.Duration
	nodes []*Node
	hc    *http.Client

	mu    sync.Mutex
	ready map[string]bool // URL -> the last probe answered 200

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// newBalancer starts probing nodes every interval; all of them count as
// ready until their first probe. Stop it with close.
func newBalancer(nodes []*Node, every time.Duration) *balancer {
	ctx, cancel := context.WithCancel(context.Background())
	b := &balancer{every: every, nodes: nodes, ready: map[string]bool{}, cancel: cancel,
		hc: &http.Client{Timeout: every, Transport: &http.Transport{DisableKeepAlives: true}}}
	for _, n := range nodes {
		b.ready[n.URL()] = true
		b.done.Go(func() { b.probe(ctx, n.URL()) })
	}
	return b
}

func (b *balancer) probe(ctx context.Context, url string) {
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok := false
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/health/ready", nil)
		if res, err := b.hc.Do(req); err == nil {
			res.Body.Close()
			ok = res.StatusCode == http.StatusOK
		}
		b.mu.Lock()
		b.ready[url] = ok
		b.mu.Unlock()
	}
}

// live returns the URLs of the members whose last probe answered 200, or
// all of them if none did.
func (b *balancer) live() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out, all []string
	for _, n := range b.nodes {
		all = append(all, n.URL())
		if b.ready[n.URL()] {
			out = append(out, n.URL())
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

func (b *balancer) close() {
	b.cancel()
	b.done.Wait()
}
