package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// workerDispatcher runs actor mailboxes on long-lived worker goroutines
// instead of protoactor's default of one new goroutine per mailbox run.
//
// A new goroutine starts with a small stack that the order actor's path
// (receive middleware, journal, protobuf) grows by copying, on every message
// to an idle actor: 6% of the CPU of a GET in the profiles. A worker keeps
// its grown stack. Schedule hands the run to an idle worker, starts a new
// worker while there are fewer than max, and falls back to a plain goroutine
// beyond that, so a mailbox never waits for another one (order actors block
// on journal I/O). Workers exit after idle without work, so an idle node
// keeps none.
type workerDispatcher struct {
	work       chan func()
	workers    atomic.Int32
	max        int32
	idle       time.Duration
	throughput int
}

var _ actor.Dispatcher = (*workerDispatcher)(nil)

func newWorkerDispatcher(max int, idle time.Duration, throughput int) *workerDispatcher {
	return &workerDispatcher{work: make(chan func()), max: int32(max), idle: idle, throughput: throughput}
}

// Schedule implements actor.Dispatcher.
func (d *workerDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn: // an idle worker took it
		return
	default:
	}
	for {
		n := d.workers.Load()
		if n >= d.max {
			go fn()
			return
		}
		if d.workers.CompareAndSwap(n, n+1) {
			go d.loop(fn)
			return
		}
	}
}

// Throughput implements actor.Dispatcher: messages a mailbox processes
// before it yields.
func (d *workerDispatcher) Throughput() int { return d.throughput }

func (d *workerDispatcher) loop(fn func()) {
	fn()
	t := time.NewTimer(d.idle)
	defer t.Stop()
	for {
		select {
		case fn := <-d.work:
			fn()
			t.Reset(d.idle)
		case <-t.C:
			d.workers.Add(-1)
			return
		}
	}
}
