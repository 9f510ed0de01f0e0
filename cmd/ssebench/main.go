// Command ssebench measures the live event stream of a running node:
// -subscribers clients on GET /events while -workers clients create orders
// as fast as they can for -duration; it prints the events per second each
// subscriber received, the journal-to-subscriber latency (receive time
// minus the event's createdAt, so node and bench must share a clock: run
// both on one machine) and how many subscribers were dropped as too slow.
//
//	go run ./cmd/ordersystem &
//	go run ./cmd/ssebench -subscribers 1
//	go run ./cmd/ssebench -subscribers 1000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var (
		base    = flag.String("url", "http://127.0.0.1:5000", "node base URL")
		subs    = flag.Int("subscribers", 1, "GET /events clients")
		workers = flag.Int("workers", 16, "clients creating orders")
		dur     = flag.Duration("duration", 10*time.Second, "how long orders are created")
		token   = flag.String("token", os.Getenv("ORDERSYSTEM_API_TOKEN"), "API token, if the node requires one")
	)
	flag.Parse()
	if err := run(*base, *subs, *workers, *dur, *token); err != nil {
		fmt.Fprintln(os.Stderr, "ssebench:", err)
		os.Exit(1)
	}
}

func run(base string, subs, workers int, dur time.Duration, token string) error {
	tr := &http.Transport{MaxIdleConnsPerHost: workers + subs, MaxConnsPerHost: 0}
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		received, dropped atomic.Int64
		mu                sync.Mutex
		lat               []time.Duration
		ready, done       sync.WaitGroup
	)
	for i := range subs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := hc.Do(req)
			if err != nil || res.StatusCode != http.StatusOK {
				fmt.Fprintf(os.Stderr, "subscriber %d: %v %v\n", i, err, res)
				ready.Done()
				return
			}
			defer res.Body.Close()
			sc := bufio.NewScanner(res.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			first := true
			sample := i == 0 || i%max(1, subs/50) == 0 // latencies of about 50 subscribers
			for sc.Scan() {
				line := sc.Bytes()
				if first {
					ready.Done()
					first = false
				}
				switch {
				case bytes.HasPrefix(line, []byte("event: dropped")):
					dropped.Add(1)
					return
				case bytes.HasPrefix(line, []byte("data: ")):
					received.Add(1)
					if !sample {
						continue
					}
					var e struct {
						Type      string    `json:"type"`
						CreatedAt time.Time `json:"createdAt"`
					}
					if json.Unmarshal(line[6:], &e) == nil && e.Type == "OrderCreated" {
						d := time.Since(e.CreatedAt)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}
			}
		}()
	}
	ready.Wait()
	var created atomic.Int64
	body := `{"customerId":"sse","items":[{"productId":"p","name":"n","quantity":1,"price":1.25}]}`
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("POST", base+"/orders", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				res, err := hc.Do(req)
				if err != nil {
					continue
				}
				_ = res.Body.Close()
				if res.StatusCode == http.StatusCreated {
					created.Add(1)
				}
			}
		})
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(time.Second) // let the streams catch up
	cancel()
	done.Wait()
	mu.Lock()
	slices.Sort(lat)
	mu.Unlock()
	q := func(f float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(f*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	perSub := float64(received.Load()) / float64(subs) / elapsed.Seconds()
	fmt.Printf("subscribers=%d created=%d (%.0f/s) events/s per subscriber=%.0f total delivered=%.0f/s dropped=%d latency p50=%s p99=%s max=%s\n",
		subs, created.Load(), float64(created.Load())/elapsed.Seconds(), perSub, float64(received.Load())/elapsed.Seconds(),
		dropped.Load(), q(0.5), q(0.99), q(1))
	return nil
}
