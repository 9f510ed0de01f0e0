package cluster

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

type evictions struct {
	mu   sync.Mutex
	addr []string
}

func (e *evictions) Evict(address, _ string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addr = append(e.addr, address)
	return "m-" + address, true
}

func (e *evictions) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.addr...)
}

// A dropped connection evicts a member only when its port refuses
// connections twice; requests in flight to it (and sent to it later) end
// at once with ownerGone, until a member lives at that address again.
func TestDeathWatchEvictsOnlyWhatRefuses(t *testing.T) {
	sys := actor.NewActorSystem()
	ev := &evictions{}
	w := newDeathWatch(sys, ev, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.stop()
	var mu sync.Mutex
	answers := map[string][]error{
		"alive:1":   {nil},                       // accepts: a slow peer, not a dead one
		"timeout:1": {errors.New("i/o timeout")}, // unreachable: left to the lease and the probes
		"flap:1":    {syscall.ECONNREFUSED, nil}, // refused once, then accepts: a restart in progress
		"dead:1":    {syscall.ECONNREFUSED, syscall.ECONNREFUSED},
	}
	w.dial = func(addr string) error {
		mu.Lock()
		defer mu.Unlock()
		a := answers[addr]
		err := a[0]
		if len(a) > 1 {
			answers[addr] = a[1:]
		}
		return err
	}
	// Requests that no one answers stand for requests to the member at
	// "dead:1" (the watch tracks them by the address they were sent to).
	silent := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	f := sys.Root.RequestFuture(silent, "hello", 10*time.Second)
	w.track("dead:1", f)
	for _, a := range []string{"alive:1", "timeout:1", "flap:1", "dead:1", w.self} {
		w.suspect(a)
	}
	start := time.Now()
	res, err := f.Result()
	if _, gone := res.(*ownerGone); err != nil || !gone || time.Since(start) > 2*time.Second {
		t.Fatalf("in-flight request to the dead member: %T, %v after %v; want ownerGone at once", res, err, time.Since(start))
	}
	w.untrack("dead:1", f)
	time.Sleep(deadWindow + 200*time.Millisecond) // the other checks are done by now
	if got := ev.list(); len(got) != 1 || got[0] != "dead:1" {
		t.Fatalf("evicted %v, want only dead:1", got)
	}
	// Sent later to the dead address: ended at once too.
	g := sys.Root.RequestFuture(silent, "again", 10*time.Second)
	w.track("dead:1", g)
	if res, _ := g.Result(); res == nil {
		t.Fatal("request to a dead address sent after the eviction was not ended at once")
	}
	w.untrack("dead:1", g)
	// A new incarnation at the same address makes it live again.
	w.topology(&pcluster.ClusterTopology{Members: []*pcluster.Member{{Host: "dead", Port: 1}}})
	h := sys.Root.RequestFuture(silent, "third", 200*time.Millisecond)
	w.track("dead:1", h)
	if _, err := h.Result(); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("request to a live-again address: %v, want it to wait for its answer (timeout here)", err)
	}
	w.untrack("dead:1", h)
}

// A probe that gets no answer makes the death watch check the peer: a
// member killed while no connection to it was up (this member's endpoint
// writer still connecting) publishes no EndpointTerminatedEvent, and was
// found only when its lease ran out.
func TestFailedProbeSuspectsThePeer(t *testing.T) {
	sys := actor.NewActorSystem()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	ev := &evictions{}
	w := newDeathWatch(sys, ev, discard)
	defer w.stop()
	w.dial = func(addr string) error {
		if addr == "gone:1" {
			return syscall.ECONNREFUSED
		}
		return nil // "slow:1" accepts: alive, however slow its answers
	}
	p := newProber(&Node{cfg: Config{Logger: discard, ProbeTimeout: 50 * time.Millisecond}, system: sys, deaths: w})
	for _, addr := range []string{"slow:1", "gone:1"} {
		// Nothing answers a probe at either address (no remote here).
		p.probe(&peerState{id: "m-" + addr, address: addr})
	}
	deadline := time.Now().Add(deadWindow + time.Second)
	for time.Now().Before(deadline) && len(ev.list()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(deadWindow + 100*time.Millisecond) // the check of slow:1 is over by now
	if got := ev.list(); len(got) != 1 || got[0] != "gone:1" {
		t.Fatalf("evicted %v after failed probes, want only gone:1", got)
	}
}

// A dial that times out does not end the check: a dying process whose
// listen backlog is full drops connection attempts before its port
// refuses them, and the refusals that follow still evict it.
func TestDeathWatchDialsOnAfterATimeout(t *testing.T) {
	sys := actor.NewActorSystem()
	ev := &evictions{}
	w := newDeathWatch(sys, ev, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.stop()
	var mu sync.Mutex
	answers := []error{errors.New("i/o timeout"), syscall.ECONNREFUSED, syscall.ECONNREFUSED}
	w.dial = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		err := answers[0]
		if len(answers) > 1 {
			answers = answers[1:]
		}
		return err
	}
	w.suspect("dying:1")
	deadline := time.Now().Add(deadWindow + time.Second)
	for time.Now().Before(deadline) && len(ev.list()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ev.list(); len(got) != 1 || got[0] != "dying:1" {
		t.Fatalf("evicted %v, want dying:1 (a timeout, then two refusals)", got)
	}
}
