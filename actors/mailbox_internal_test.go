package actors

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordersystem/ordersystem/internal/poll"
)

// recordingInvoker records what a mailbox hands it, fails if two messages
// are ever handed at once, and panics on the message "boom".
type recordingInvoker struct {
	mu        sync.Mutex
	got       []any
	escalated []any
	busy      atomic.Bool
	overlap   atomic.Bool
}

func (r *recordingInvoker) take(msg any) {
	if !r.busy.CompareAndSwap(false, true) {
		r.overlap.Store(true)
	}
	defer r.busy.Store(false)
	r.mu.Lock()
	r.got = append(r.got, msg)
	r.mu.Unlock()
	if msg == "boom" {
		panic("boom")
	}
}

func (r *recordingInvoker) InvokeSystemMessage(msg any) { r.take(msg) }
func (r *recordingInvoker) InvokeUserMessage(msg any)   { r.take(msg) }
func (r *recordingInvoker) EscalateFailure(reason, msg any) {
	r.mu.Lock()
	r.escalated = append(r.escalated, msg)
	r.mu.Unlock()
}

func (r *recordingInvoker) messages() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// heldDispatcher keeps the runs it is given until the test lets them go.
type heldDispatcher struct{ runs []func() }

func (d *heldDispatcher) Schedule(fn func()) { d.runs = append(d.runs, fn) }
func (d *heldDispatcher) Throughput() int    { return 2 }
func (d *heldDispatcher) runAll() {
	for len(d.runs) > 0 {
		fn := d.runs[0]
		d.runs = d.runs[1:]
		fn()
	}
}

func newTestMailbox() (*orderMailbox, *recordingInvoker, *heldDispatcher) {
	m := newOrderMailbox().(*orderMailbox)
	inv, d := &recordingInvoker{}, &heldDispatcher{}
	m.RegisterHandlers(inv, d)
	m.Start()
	return m, inv, d
}

func TestOrderMailboxRunsSystemMessagesFirst(t *testing.T) {
	m, inv, d := newTestMailbox()
	m.PostUserMessage("u1")
	m.PostUserMessage("u2")
	m.PostSystemMessage("s1")
	if len(d.runs) != 1 {
		t.Fatalf("%d runs scheduled for three messages posted before it ran, want 1", len(d.runs))
	}
	if n := m.UserMessageCount(); n != 2 {
		t.Fatalf("UserMessageCount() = %d, want 2", n)
	}
	d.runAll()
	if got, want := inv.messages(), []any{"s1", "u1", "u2"}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v, want %v", got, want)
	}
	if m.sys != nil || m.user != nil || m.running {
		t.Fatalf("after the run: sys %v, user %v, running %v; want both queues dropped and not running", m.sys, m.user, m.running)
	}
	m.PostUserMessage("u3")
	d.runAll()
	if got := inv.messages(); len(got) != 4 || got[3] != "u3" {
		t.Fatalf("a message posted after the run ended: invoked %v", got)
	}
}

func TestOrderMailboxHoldsUserMessagesWhileSuspended(t *testing.T) {
	m, inv, d := newTestMailbox()
	m.PostSystemMessage(&actor.SuspendMailbox{})
	m.PostUserMessage("u1")
	m.PostSystemMessage("s1")
	d.runAll()
	if got, want := inv.messages(), []any{"s1"}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v while suspended, want %v", got, want)
	}
	m.PostUserMessage("u2")
	d.runAll()
	if got := inv.messages(); len(got) != 1 {
		t.Fatalf("invoked %v while suspended", got)
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	d.runAll()
	if got, want := inv.messages(), []any{"s1", "u1", "u2"}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v after resuming, want %v", got, want)
	}
}

func TestOrderMailboxEscalatesAPanicAndGoesOn(t *testing.T) {
	m, inv, d := newTestMailbox()
	m.PostUserMessage("u1")
	m.PostUserMessage("boom")
	m.PostUserMessage("u2")
	d.runAll()
	if got, want := inv.messages(), []any{"u1", "boom", "u2"}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v, want %v", got, want)
	}
	if want := []any{"boom"}; !slices.Equal(inv.escalated, want) {
		t.Fatalf("escalated %v, want %v", inv.escalated, want)
	}
}

type goDispatcher struct{}

func (goDispatcher) Schedule(fn func()) { go fn() }
func (goDispatcher) Throughput() int    { return 3 }

// Messages posted from many goroutines at once are each handed over once,
// one at a time, and none is left in the mailbox.
func TestOrderMailboxUnderConcurrentPosts(t *testing.T) {
	m := newOrderMailbox().(*orderMailbox)
	inv := &recordingInvoker{}
	m.RegisterHandlers(inv, goDispatcher{})
	const posters, each = 8, 500
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("%d-%d", p, i)
				if i%5 == 0 {
					m.PostSystemMessage(msg)
				} else {
					m.PostUserMessage(msg)
				}
			}
		})
	}
	wg.Wait()
	poll.Eventually(t, 5*time.Second, func() error {
		if n := len(inv.messages()); n != posters*each {
			return fmt.Errorf("%d messages handed over, want %d", n, posters*each)
		}
		return nil
	})
	got := inv.messages()
	seen := map[any]bool{}
	for _, msg := range got {
		if seen[msg] {
			t.Fatalf("%v handed over twice", msg)
		}
		seen[msg] = true
	}
	if inv.overlap.Load() {
		t.Fatal("two messages were handed over at once")
	}
}
