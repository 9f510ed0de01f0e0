package actors

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordersystem/ordersystem/internal/localcall"
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
	during    func(msg any) // called while msg is handed over, if set
}

func (r *recordingInvoker) take(msg any) {
	if !r.busy.CompareAndSwap(false, true) {
		r.overlap.Store(true)
	}
	defer r.busy.Store(false)
	r.mu.Lock()
	r.got = append(r.got, msg)
	r.mu.Unlock()
	if r.during != nil {
		r.during(msg)
	}
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
	return newTestMailboxOf(newOrderMailbox)
}

func newTestMailboxOf(mailboxes actor.MailboxProducer) (*orderMailbox, *recordingInvoker, *heldDispatcher) {
	m := mailboxes().(*orderMailbox)
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

// A spawn's Started waits for the next message, so that the two take one
// run; a second system message does not wait.
func TestOrderMailboxHoldsTheFirstSystemMessageForTheNext(t *testing.T) {
	m, inv, d := newTestMailbox()
	m.PostSystemMessage("started")
	if len(d.runs) != 0 || len(inv.messages()) != 0 {
		t.Fatalf("the first system message was scheduled (%d runs) or handed over (%v)", len(d.runs), inv.messages())
	}
	m.PostUserMessage("u1")
	if len(d.runs) != 1 {
		t.Fatalf("%d runs after the first user message, want 1", len(d.runs))
	}
	d.runAll()
	if got, want := inv.messages(), []any{"started", "u1"}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v, want %v", got, want)
	}
	m.PostSystemMessage("stop")
	if len(d.runs) != 1 {
		t.Fatalf("a system message after the first one waited (%d runs)", len(d.runs))
	}
	d.runAll()

	m2, inv2, d2 := newTestMailbox()
	m2.PostSystemMessage("started")
	m2.PostSystemMessage("stop")
	d2.runAll()
	if got, want := inv2.messages(), []any{"started", "stop"}; !slices.Equal(got, want) {
		t.Fatalf("two system messages: invoked %v, want %v", got, want)
	}
}

// An inline mailbox runs a local call posted to it while idle on the
// poster's goroutine, held Started first, and schedules nothing; any other
// message goes to the dispatcher.
func TestInlineOrderMailboxRunsALocalCallOnThePoster(t *testing.T) {
	m, inv, d := newTestMailboxOf(inlineOrderMailboxes)
	m.PostSystemMessage("started")
	call := localcall.New("create")
	m.PostUserMessage(call)
	if got, want := inv.messages(), []any{"started", call}; !slices.Equal(got, want) {
		t.Fatalf("when the post returned: invoked %v, want %v", got, want)
	}
	if len(d.runs) != 0 || m.running {
		t.Fatalf("after an inline run: %d runs scheduled, running %v; want none, false", len(d.runs), m.running)
	}
	m.PostUserMessage("remote")
	if len(d.runs) != 1 || len(inv.messages()) != 2 {
		t.Fatalf("a message that is not a local call: %d runs, invoked %v; want it scheduled", len(d.runs), inv.messages())
	}
	// A local call posted while a run is scheduled waits its turn.
	later := localcall.New("pay")
	m.PostUserMessage(later)
	if len(inv.messages()) != 2 {
		t.Fatalf("a local call to a busy mailbox ran inline: invoked %v", inv.messages())
	}
	d.runAll()
	if got, want := inv.messages(), []any{"started", call, "remote", later}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v, want %v", got, want)
	}

	// Without inline, a local call is scheduled like any message.
	m2, inv2, d2 := newTestMailbox()
	m2.PostUserMessage(localcall.New("create"))
	if len(d2.runs) != 1 || len(inv2.messages()) != 0 {
		t.Fatalf("a mailbox without inline: %d runs, invoked %v; want the call scheduled", len(d2.runs), inv2.messages())
	}
}

// What is posted while an inline run hands over the poster's call goes to
// the dispatcher, after it: the poster handles its own call only.
func TestInlineOrderMailboxHandsOnWhatCameMeanwhile(t *testing.T) {
	m, inv, d := newTestMailboxOf(inlineOrderMailboxes)
	call := localcall.New("create")
	inv.during = func(msg any) {
		if msg == call {
			m.PostUserMessage("u2")
			m.PostSystemMessage("s1")
		}
	}
	m.PostUserMessage(call)
	if got, want := inv.messages(), []any{call}; !slices.Equal(got, want) {
		t.Fatalf("inline: invoked %v, want only the poster's call %v", got, want)
	}
	if len(d.runs) != 1 || !m.running {
		t.Fatalf("after the inline run: %d runs, running %v; want what came meanwhile scheduled", len(d.runs), m.running)
	}
	d.runAll()
	if got, want := inv.messages(), []any{call, "s1", "u2"}; !slices.Equal(got, want) {
		t.Fatalf("invoked %v, want %v", got, want)
	}
	if m.running {
		t.Fatal("still running after the run")
	}
}

type goDispatcher struct{}

func (goDispatcher) Schedule(fn func()) { go fn() }
func (goDispatcher) Throughput() int    { return 3 }

// Messages posted from many goroutines at once are each handed over once,
// one at a time, and none is left in the mailbox, with or without inline
// runs of local calls.
func TestOrderMailboxUnderConcurrentPosts(t *testing.T) {
	t.Run("scheduled", func(t *testing.T) { concurrentPosts(t, newOrderMailbox) })
	t.Run("inline", func(t *testing.T) { concurrentPosts(t, inlineOrderMailboxes) })
}

func concurrentPosts(t *testing.T, mailboxes actor.MailboxProducer) {
	m := mailboxes().(*orderMailbox)
	inv := &recordingInvoker{}
	m.RegisterHandlers(inv, goDispatcher{})
	const posters, each = 8, 500
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("%d-%d", p, i)
				switch {
				case i%5 == 0:
					m.PostSystemMessage(msg)
				case i%2 == 0:
					m.PostUserMessage(localcall.New(msg))
				default:
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
