package actors

import (
	"runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordersystem/ordersystem/internal/localcall"
)

// orderMailbox is the mailbox of an order actor: protoactor's mailbox
// semantics (system messages first, none of the user messages while
// suspended, a failure of the invoker escalated, a yield every Throughput
// messages) in one object with two queues under a mutex.
//
// Every active order actor keeps its mailbox for as long as it lives (two
// minutes after its last message), and a node keeps hundreds of thousands
// of them: protoactor's lock-free mailbox is five objects per actor (the
// mailbox, two queues and the node each keeps), its default one a ring of
// ten slots. Here a mailbox is one object, and its queues hold no array
// once they are empty. An order actor receives a handful of messages in its
// life, one at a time, so the lock is not contended.
//
// A MessageBatch is queued as one message: nothing sends one to an order
// actor (protoactor's mailbox posts its messages one by one, then the
// batch).
//
// Two things protoactor's mailboxes do not, to spare a request the hand-off
// to a worker goroutine and back (about 1% of a create's CPU in memory,
// BENCHMARKS.md, "Again after inline local calls and the tuned GOGC"):
//
//   - The first system message (the Started a spawn posts) waits for the
//     next message instead of a run of its own: an activation is spawned
//     for a message that follows at once, and Started runs just before it.
//     The placement sends an activation it spawns for another member's
//     lookup a message of its own (cluster.Wake), so none waits forever.
//   - With inline set, a local call (localcall.Call) posted to an idle
//     mailbox runs on the poster's goroutine: the held Started if any, then
//     the call; what was posted meanwhile goes to the dispatcher. Only for
//     a journal that answers at once (in memory): the caller waits for the
//     actor's journal calls with no deadline of its own, where a worker
//     would let it time out and retry.
type orderMailbox struct {
	mu sync.Mutex
	// sys and user are the queued messages, oldest first; nil when empty.
	sys, user []any
	// running: a run is scheduled or running; it takes every message
	// posted until it finds both queues empty (or the user one suspended)
	// and clears running under mu, so no message is left behind.
	running   bool
	suspended bool
	// held: the first system message waits for the next message; posted:
	// a message other than a held first one came (nothing is held again).
	held, posted bool
	inline       bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
}

var _ actor.Mailbox = (*orderMailbox)(nil)

func newOrderMailbox() actor.Mailbox { return &orderMailbox{} }

// inlineOrderMailboxes makes mailboxes that run local calls inline.
func inlineOrderMailboxes() actor.Mailbox { return &orderMailbox{inline: true} }

// PostUserMessage implements actor.Mailbox.
func (m *orderMailbox) PostUserMessage(msg any) { m.post(msg, false) }

// PostSystemMessage implements actor.Mailbox.
func (m *orderMailbox) PostSystemMessage(msg any) { m.post(msg, true) }

func (m *orderMailbox) post(msg any, sys bool) {
	m.mu.Lock()
	if sys {
		m.sys = append(m.sys, msg)
		if !m.posted && !m.held {
			m.held = true // the first one: wait for the next message
			m.mu.Unlock()
			return
		}
	} else {
		m.user = append(m.user, msg)
	}
	m.held, m.posted = false, true
	start := !m.running
	m.running = true
	m.mu.Unlock()
	if !start {
		return
	}
	if _, local := msg.(*localcall.Call); local && m.inline {
		m.runInline()
		return
	}
	m.dispatcher.Schedule(m.run)
}

// runInline runs the mailbox on the poster's goroutine up to and including
// the first user message (the poster's, unless a system message suspended
// the mailbox), then hands what is left to the dispatcher.
func (m *orderMailbox) runInline() {
	for {
		msg, sys, ok := m.next()
		if !ok {
			return // ran out (suspended): next cleared running
		}
		m.invoke(msg, sys)
		if !sys {
			break
		}
	}
	m.mu.Lock()
	more := len(m.sys) > 0 || (!m.suspended && len(m.user) > 0)
	m.running = more
	m.mu.Unlock()
	if more {
		m.dispatcher.Schedule(m.run)
	}
}

// RegisterHandlers implements actor.Mailbox.
func (m *orderMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
}

// Start implements actor.Mailbox.
func (m *orderMailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *orderMailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.user)
}

func (m *orderMailbox) run() {
	t := m.dispatcher.Throughput()
	for i := 1; ; i++ {
		if i > t {
			i = 1
			runtime.Gosched()
		}
		msg, sys, ok := m.next()
		if !ok {
			return
		}
		m.invoke(msg, sys)
	}
}

// next takes the next message to process: a system one if any, else a
// user one unless suspended. With none it ends the run (ok false).
func (m *orderMailbox) next() (msg any, sys, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.sys) > 0 {
		msg = pop(&m.sys)
		switch msg.(type) {
		case *actor.SuspendMailbox:
			m.suspended = true
		case *actor.ResumeMailbox:
			m.suspended = false
		default:
			return msg, true, true
		}
	}
	if !m.suspended && len(m.user) > 0 {
		return pop(&m.user), false, true
	}
	m.running = false
	return nil, false, false
}

// pop takes the first of a non-empty queue, dropping the array once the
// queue is empty.
func pop(q *[]any) any {
	msg := (*q)[0]
	if len(*q) == 1 {
		*q = nil
	} else {
		(*q)[0] = nil
		*q = (*q)[1:]
	}
	return msg
}

// invoke hands one message to the actor; a panic that the actor does not
// recover from is escalated to its supervisor, as protoactor's mailbox
// does.
func (m *orderMailbox) invoke(msg any, sys bool) {
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	if sys {
		m.invoker.InvokeSystemMessage(msg)
	} else {
		m.invoker.InvokeUserMessage(msg)
	}
}
