package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmarks send requests to rawServer, an in-process HTTP/1.1 server
// that allocates nothing per request, so their allocation counts are the
// client's. BenchmarkPlainClient is a plain http.Client doing the same, for
// comparison.

// rawServer answers every request on a kept-alive connection with the same
// canned 200 answer.
func benchServer(b *testing.B) *httptest.Server {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLocation: /orders/42\r\nContent-Length: 16\r\n\r\n{\"orderId\":\"42\"}")
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					n := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					if _, err := br.Discard(n); err != nil {
						return
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			})
		}
	})
	srv := &httptest.Server{URL: "http://" + ln.Addr().String(), Listener: ln}
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return srv
}

func benchWorker(b *testing.B, url string) *worker {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Targets = []string{url}
	cfg.Concurrency = 1
	u, err := parseTarget(url, false)
	if err != nil {
		b.Fatal(err)
	}
	r := &runner{cfg: cfg, targets: []*target{newTarget(u, &cfg)}}
	r.rt = newTransport(&cfg, 1)
	b.Cleanup(r.rt.CloseIdleConnections)
	return newWorker(r, 0)
}

func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name string
		op   Op
		id   string
	}{{"live", OpLive, ""}, {"create", OpCreate, ""}, {"pay", OpPay, "order-0123456789"}} {
		b.Run(bc.name, func(b *testing.B) {
			w := benchWorker(b, benchServer(b).URL)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, _ := w.send(ctx, bc.op, bc.id); !ok {
					b.Fatal("request failed")
				}
			}
		})
	}
}

func BenchmarkPlainClient(b *testing.B) {
	srv := benchServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/health/live", nil)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.record(time.Duration(1000 + 37*i))
	}
}

// BenchmarkRoutedRead is a read of a routed run (-route owner): the target
// comes from the order's route and the answer's X-Order-Owner is counted.
// It should allocate no more than BenchmarkSend/read.
func BenchmarkRoutedRead(b *testing.B) {
	for _, routed := range []bool{false, true} {
		b.Run(map[bool]string{false: "any", true: "owner"}[routed], func(b *testing.B) {
			w := benchWorker(b, benchServer(b).URL)
			r := w.r
			r.kind, r.op, r.pool = kindPool, OpRead, []string{"order-0123456789"}
			if routed {
				r.cfg.Route, r.routed = RouteOwner, true
				r.targets[0].nodeID = "n1"
				r.poolRoute = []poolRoute{{to: 0, owner: 0}}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if !w.step(ctx) {
					b.Fatal("run over")
				}
			}
			if n := w.rec.op(OpRead).successes; n == 0 {
				b.Fatal("no successful read")
			}
		})
	}
}
