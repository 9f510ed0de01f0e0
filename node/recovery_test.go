package node_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// TestBackendDiesAndReturns: a backend killed under load and started again
// on the same port: liveness stays 200, readiness goes 503 and back to 200
// without a restart of the node, writes resume, nothing acknowledged is lost.
func TestBackendDiesAndReturns(t *testing.T) {
	for _, kind := range []string{node.Redis, node.NATS} {
		t.Run(kind, func(t *testing.T) {
			var restart func()
			var stop func()
			tn := startNode(t, func(c *node.Config) {
				c.Transport, c.Persistence = kind, kind
				c.RequestTimeout = 3 * time.Second
				if kind == node.Redis {
					s := testservers.StartRedis(t)
					c.Redis, stop, restart = s.Addr(), s.Stop, s.Start
				} else {
					s := testservers.StartNATS(t)
					c.NATS, stop, restart = s.URL(), s.Stop, s.Start
				}
			})
			var (
				mu    sync.Mutex
				acked []string
				// restartedAt is set (under mu) when the backend restarts;
				// firstWrite is the first acknowledged create after it.
				restartedAt, firstWrite time.Time
				codes                   = map[int]int{}
				wg                      sync.WaitGroup
				stopped                 = make(chan struct{})
			)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stopped:
							return
						default:
						}
						r := tn.do("POST", "/orders", seedOrder)
						mu.Lock()
						codes[r.status]++
						if r.status == http.StatusCreated {
							var c struct{ OrderID string }
							_ = json.Unmarshal(r.body, &c)
							acked = append(acked, c.OrderID)
							if !restartedAt.IsZero() && firstWrite.IsZero() {
								firstWrite = time.Now()
							}
						}
						mu.Unlock()
						if r.status != http.StatusCreated {
							time.Sleep(20 * time.Millisecond)
						}
					}
				}()
			}
			waitFor(t, "some orders before the failure", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 20 })

			killed := time.Now()
			stop()
			waitForLong(t, "readiness 503", 15*time.Second, func() bool { return tn.do("GET", "/health/ready", "").status == 503 })
			toDown := time.Since(killed)
			tn.expect(tn.do("GET", "/health/live", ""), http.StatusOK)
			// Reads the node can serve still work.
			tn.expect(tn.do("GET", "/stats", ""), http.StatusOK)
			r := tn.do("POST", "/orders", seedOrder)
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("write while the backend is down: %d %s, want 503", r.status, r.body)
			}

			// An outage of some seconds: the supervisor's re-checks back off
			// to more than a second apart, which is what readiness and write
			// acceptance used to disagree by.
			time.Sleep(3 * time.Second)
			restarted := time.Now()
			mu.Lock()
			restartedAt = restarted
			mu.Unlock()
			restart()
			waitForLong(t, "readiness 200", 30*time.Second, func() bool { return tn.do("GET", "/health/ready", "").status == 200 })
			toUp := time.Since(restarted)
			mu.Lock()
			before := len(acked)
			mu.Unlock()
			waitForLong(t, "writes to resume", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > before+20 })
			// Readiness tells the truth: writes are accepted as soon as it
			// says 200 (they used to wait up to the supervisor's backoff).
			mu.Lock()
			toWrite := firstWrite.Sub(restarted)
			mu.Unlock()
			if lag := toWrite - toUp; lag > time.Second {
				t.Fatalf("the first write was accepted %v after readiness turned 200 (%v vs %v after the restart)", lag, toWrite, toUp)
			}
			close(stopped)
			wg.Wait()

			for s := range codes {
				if s != 201 && s != 503 {
					t.Fatalf("statuses %v: only 201 and 503 are acceptable", codes)
				}
			}
			for _, id := range acked {
				tn.expect(tn.do("GET", "/orders/"+id, ""), http.StatusOK)
			}
			t.Logf("%s: readiness 503 %s after the kill, 200 %s after the restart, first write accepted %s after the restart; statuses %v; all %d acknowledged orders found",
				kind, toDown.Round(time.Millisecond), toUp.Round(time.Millisecond), toWrite.Round(time.Millisecond), codes, len(acked))
		})
	}
}

func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	poll.Eventually(t, d, poll.True(what, cond))
}
