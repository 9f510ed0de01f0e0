package cluster

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
)

// A member killed with SIGKILL (or crashed) is noticed from the connection
// it drops, long before its lease runs out:
//
//   - Every member keeps a connection to every other (protoactor's gossip
//     talks to them several times a second). When the peer's process dies,
//     its kernel closes that connection and protoactor publishes
//     remote.EndpointTerminatedEvent at once.
//   - That alone proves nothing (a connection also drops when a peer is
//     slow or restarts its endpoint), so the member dials the peer's
//     node-to-node port again, several times within a second: only when
//     the peer's host answers "connection refused" (nothing listens on that
//     port: the process is gone) twice in a row is the peer dead. A timeout is not proof: a partitioned or
//     paused peer is left to its lease and to the reachability probes.
//   - The dead member is then dropped from this member's view at once
//     (LeaseProvider.Evict, which also deletes its record so the others drop
//     it at their next listing), and every request in flight to it is
//     failed at once (ownerGone), so Request retries it, with the same
//     message, at the new owner instead of waiting out its attempt timeout.
//
// Safety: a process that nothing listens for on its node-to-node port is not
// running (or has closed its remote, which it only does when it stops), so
// it serves nothing, and taking its actors over early cannot make two
// copies serve at once. Should a live member ever be evicted by mistake,
// its next renewal finds its record gone and it fences itself, exactly as
// when its lease expires.

// Evicter is a membership provider that can drop a member known to be gone
// (LeaseProvider).
type Evicter interface {
	Evict(address, reason string) (memberID string, ok bool)
}

// ownerGone is the answer deathWatch gives a request in flight to a member
// it found dead.
type ownerGone struct{ address string }

// errOwnerGone is what Request makes of ownerGone: retried at the new owner.
var errOwnerGone = errors.New("the owner's process is gone")

// deadProbe bounds one dial of deathWatch's check, deadRetry is the pause
// between two dials, and deadWindow is how long it goes on dialing a peer
// that accepts.
const (
	deadProbe  = 250 * time.Millisecond
	deadRetry  = 30 * time.Millisecond
	deadWindow = time.Second
)

// deathWatch watches the connections of one member to the others (see
// above) and the requests in flight to them.
type deathWatch struct {
	system  *actor.ActorSystem
	evicter Evicter
	log     *slog.Logger
	self    string
	dial    func(address string) error // a test hook; nil dials TCP

	sub *eventstream.Subscription

	mu       sync.Mutex
	checking map[string]bool                       // addresses being checked now
	dead     map[string]bool                       // addresses found dead, until a member lives there again
	inflight map[string]map[*actor.Future]struct{} // remote requests waiting, by address
}

func newDeathWatch(system *actor.ActorSystem, ev Evicter, log *slog.Logger) *deathWatch {
	w := &deathWatch{
		system: system, evicter: ev, log: log, self: system.Address(),
		checking: map[string]bool{}, dead: map[string]bool{}, inflight: map[string]map[*actor.Future]struct{}{},
	}
	w.sub = system.EventStream.Subscribe(func(ev any) {
		switch t := ev.(type) {
		case *remote.EndpointTerminatedEvent:
			w.suspect(t.Address)
		case *pcluster.ClusterTopology:
			w.topology(t)
		}
	})
	return w
}

func (w *deathWatch) stop() { w.system.EventStream.Unsubscribe(w.sub) }

// suspect starts a check of address unless one runs or it is known dead.
func (w *deathWatch) suspect(address string) {
	if address == w.self || address == "" {
		return
	}
	w.mu.Lock()
	if w.checking[address] || w.dead[address] {
		w.mu.Unlock()
		return
	}
	w.checking[address] = true
	w.mu.Unlock()
	go w.check(address)
}

// check dials address for up to deadWindow; two refusals in a row make it
// dead. A dial that connects is not proof of life on its own: the kernel
// of a dying process completes handshakes on its listening socket until
// that socket is closed, which may come after the connection that dropped,
// so the check goes on; a live member accepts every time and is never
// evicted. A dial that times out is no proof either way, and the check
// goes on too: a dying process's kernel, its listen backlog full, drops
// connection attempts until the socket closes (a check that stopped at
// the first timeout left such a member to the next failed probe, about a
// second later, in the failover-distribution drill). A partitioned or
// paused peer times out until the window ends and is left to its lease
// and the probes.
func (w *deathWatch) check(address string) {
	defer func() {
		w.mu.Lock()
		delete(w.checking, address)
		w.mu.Unlock()
	}()
	refused := 0
	for start := time.Now(); refused < 2; {
		if refused == 0 && time.Since(start) > deadWindow {
			return // it kept answering: alive
		}
		err := w.dialOnce(address)
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused++
		} else {
			refused = 0 // accepted or timed out: not proof
		}
		if refused < 2 {
			time.Sleep(deadRetry)
		}
	}
	id, evicted := w.evicter.Evict(address, "its node-to-node port refuses connections (the process is gone)")
	if !evicted {
		// Not a member of this view (gone already, or not a member yet):
		// nothing is routed to it, but in-flight requests may still wait.
		w.log.Debug("a connection to a non-member dropped and its port refuses connections", slog.String("address", address))
	}
	w.markDead(address, id)
}

func (w *deathWatch) dialOnce(address string) error {
	if w.dial != nil {
		return w.dial(address)
	}
	c, err := net.DialTimeout("tcp", address, deadProbe)
	if err == nil {
		_ = c.Close()
	}
	return err
}

// markDead fails every request in flight to address and those sent to it
// until a member lives there again.
func (w *deathWatch) markDead(address, memberID string) {
	w.mu.Lock()
	w.dead[address] = true
	waiting := w.inflight[address]
	delete(w.inflight, address)
	w.mu.Unlock()
	for f := range waiting {
		w.system.Root.Send(f.PID(), &ownerGone{address: address})
	}
	if len(waiting) > 0 {
		w.log.Info("requests in flight to a member that is gone are retried at the new owner",
			slog.String("address", address), slog.String("member_id", memberID), slog.Int("requests", len(waiting)))
	}
}

// topology forgets dead addresses a member lives at again (a new
// incarnation on the same port).
func (w *deathWatch) topology(t *pcluster.ClusterTopology) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.dead) == 0 {
		return
	}
	for _, m := range t.Members {
		delete(w.dead, m.Address())
	}
}

// track registers a request in flight to address; untrack must follow. A
// request to an address already found dead is answered ownerGone at once.
func (w *deathWatch) track(address string, f *actor.Future) {
	w.mu.Lock()
	if w.dead[address] {
		w.mu.Unlock()
		w.system.Root.Send(f.PID(), &ownerGone{address: address})
		return
	}
	set := w.inflight[address]
	if set == nil {
		set = map[*actor.Future]struct{}{}
		w.inflight[address] = set
	}
	set[f] = struct{}{}
	w.mu.Unlock()
}

func (w *deathWatch) untrack(address string, f *actor.Future) {
	w.mu.Lock()
	if set := w.inflight[address]; set != nil {
		delete(set, f)
		if len(set) == 0 {
			delete(w.inflight, address)
		}
	}
	w.mu.Unlock()
}
