package nats

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/internal/retry"
)

// closeTimeout bounds what Close does on the server: handing back held
// messages, deleting an ephemeral consumer.
const closeTimeout = time.Second

// subscription is one running Subscribe. Its goroutine (run) is owned by it
// and stopped by Close.
type subscription struct {
	t     *Transport
	h     transport.Handler
	group string // "" for ephemeral
	// ephName is the consumer of an ephemeral subscription.
	ephName string
	cons    jetstream.Consumer
	it      jetstream.MessagesContext
	// lastSeq is, for an ephemeral subscription, the stream sequence of
	// the last message delivered (or of the stream's end at Subscribe),
	// where a replacement consumer resumes.
	lastSeq uint64

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Close implements transport.Subscription.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		t := s.t
		t.mu.Lock()
		delete(t.subs, s)
		t.mu.Unlock()
	})
	return nil
}

func (s *subscription) backoff() backoff.Policy {
	return backoff.Policy{Base: s.t.opts.RetryMin, Max: s.t.opts.RetryMax}
}

func (s *subscription) run(ctx context.Context) {
	defer close(s.done)
	var unhandled []jetstream.Msg // pulled but not accepted by the handler
	defer func() { s.stop(unhandled) }()
	fails := 0
	for {
		first, err := s.it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			s.t.opts.Logger.Warn("nats transport: receive failed", "stream", s.t.opts.Stream,
				"group", s.group, "attempt", fails, "error", err)
			if needsNewConsumer(err, fails) {
				// The iterator stopped, or its consumer is gone or has not
				// answered for a while (its server died; a group's
				// replicated consumer elects a new leader, an ephemeral
				// one may have lost a replica): make the consumer again.
				s.it.Stop()
				if !s.restart(ctx) {
					return
				}
			}
			retry.Sleep(ctx, s.backoff().Delay(fails))
			continue
		}
		fails = 0
		msgs := []jetstream.Msg{first}
		for len(msgs) < s.t.opts.BatchSize {
			// Take what has already arrived, without waiting for more.
			m, err := s.it.Next(jetstream.NextMaxWait(time.Millisecond))
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		if unhandled = s.deliver(ctx, msgs); unhandled != nil {
			return
		}
	}
}

// needsNewConsumer tells the receive errors after which the consumer is
// made again: the iterator closed, the consumer was deleted or is not
// found, or heartbeats went missing twice in a row (the iterator pulls
// again after one; a second means nobody serves the consumer).
func needsNewConsumer(err error, fails int) bool {
	switch {
	case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted),
		errors.Is(err, jetstream.ErrConsumerNotFound):
		return true
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		return fails >= 2
	}
	return false
}

// restart replaces an iterator that stopped by itself (the consumer was
// deleted, the connection was closed under it); it reports false when the
// subscription is closing or the transport is closed.
func (s *subscription) restart(ctx context.Context) bool {
	if ctx.Err() != nil || s.t.isClosed() || s.t.nc.IsClosed() {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, s.t.opts.RequestTimeout)
	defer cancel()
	var (
		cons jetstream.Consumer
		err  error
	)
	if s.group != "" {
		cons, err = s.t.js.CreateOrUpdateConsumer(cctx, s.t.opts.Stream, s.t.groupConfig(s.group))
	} else {
		// A fresh consumer from the message after the last one delivered;
		// the old one (if its server still has it) expires by itself.
		s.deleteEphemeral()
		s.ephName = ephemeralName()
		cons, err = s.t.js.CreateConsumer(cctx, s.t.opts.Stream, s.t.ephemeralConfig(s.ephName, s.lastSeq+1))
	}
	if err != nil {
		return true // try again after the backoff
	}
	it, err := s.t.pull(cctx, cons)
	if err != nil {
		return true
	}
	s.cons, s.it = cons, it
	return true
}

// deliver hands msgs to the handler and acknowledges them (groups). When the
// subscription closes before the handler accepted them it returns them
// (non-nil), for stop to hand back.
func (s *subscription) deliver(ctx context.Context, msgs []jetstream.Msg) []jetstream.Msg {
	group := s.group != ""
	batch := make([]transport.Message, 0, len(msgs))
	held := msgs[:0:0]
	delivered := s.lastSeq
	for _, m := range msgs {
		if !group {
			// An ephemeral consumer's new leader (its replicas do not
			// share their delivery position synchronously) may start
			// again before what this subscription handed over already.
			md, err := m.Metadata()
			if err == nil && md.Sequence.Stream <= delivered {
				continue
			}
			if err == nil {
				delivered = md.Sequence.Stream
			}
		}
		tm, err := s.t.decode(m)
		if err != nil {
			s.t.opts.Logger.Warn("nats transport: skipping a message that is not an order event",
				"stream", s.t.opts.Stream, "group", s.group, "subject", m.Subject(), "error", err)
			if group {
				_ = m.Term()
			}
			continue
		}
		batch = append(batch, tm)
		held = append(held, m)
	}
	if len(batch) == 0 {
		return nil
	}
	err := retry.Handle(ctx, s.h, batch, s.backoff(), func(attempt int, err error) {
		if ctx.Err() != nil {
			return
		}
		s.t.opts.Logger.Warn("nats transport: handler failed, redelivering", "stream", s.t.opts.Stream,
			"group", s.group, "attempt", attempt, "batch", len(batch), "first_event_id", batch[0].ID(), "error", err)
		if group {
			for _, m := range held {
				_ = m.InProgress() // restart AckWait: the batch is still ours
			}
		}
	})
	if err != nil {
		return held
	}
	if !group {
		if md, err := held[len(held)-1].Metadata(); err == nil {
			s.lastSeq = md.Sequence.Stream
		}
		return nil
	}
	for _, m := range held {
		if err := m.Ack(); err != nil {
			s.t.opts.Logger.Warn("nats transport: acknowledgement failed", "stream", s.t.opts.Stream,
				"group", s.group, "error", err)
		}
	}
	return nil
}

// stop ends pulling. A group member then hands back (Nak) what it pulled but
// did not deliver, unhandled included, so that another member gets it now
// instead of after AckWait. It hands back only after its pull subscription
// is gone, or the server could redeliver the messages to it. An ephemeral
// subscription deletes its consumer.
func (s *subscription) stop(unhandled []jetstream.Msg) {
	if s.group == "" {
		s.it.Stop()
		s.deleteEphemeral()
		return
	}
	if !s.t.nc.IsConnected() {
		s.it.Stop()
		return // the server redelivers after AckWait
	}
	s.it.Drain()
	deadline := time.Now().Add(closeTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := s.it.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			break // ErrMsgIteratorClosed: drained and unsubscribed
		}
		unhandled = append(unhandled, m)
	}
	s.it.Stop()
	// Ask for the consumer's info before handing back: the server then
	// drops pull requests whose subscriber is gone. nats-server 2.9 does
	// not do that before redelivering a Nak'd message, and would send it
	// to our dead pull request, where it would wait out AckWait.
	ictx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	_, _ = s.cons.Info(ictx)
	cancel()
	for _, m := range unhandled {
		_ = m.Nak()
	}
}

// deleteEphemeral deletes an ephemeral subscription's consumer on the
// server (it would expire by itself after ephemeralInactive).
func (s *subscription) deleteEphemeral() {
	if s.group != "" || s.ephName == "" || !s.t.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = s.t.js.DeleteConsumer(ctx, s.t.opts.Stream, s.ephName)
}

// decode reads a message's identity from its headers, falling back to the
// Nats-Msg-Id header and the subject for messages other producers wrote.
func (t *Transport) decode(m jetstream.Msg) (transport.Message, error) {
	h := m.Headers()
	out := transport.Message{Payload: m.Data()}
	out.Type = header(h, HeaderType)
	if out.Type == "" {
		subj := m.Subject()
		out.Type = subj[strings.LastIndexByte(subj, '.')+1:]
	}
	orderID, version := header(h, HeaderOrderID), header(h, HeaderVersion)
	if orderID == "" || version == "" {
		id := header(h, jetstream.MsgIDHeader)
		i := strings.LastIndexByte(id, ':')
		if i <= 0 {
			return out, errors.New("no " + HeaderOrderID + "/" + HeaderVersion + " headers and no Nats-Msg-Id <orderId>:<version>")
		}
		orderID, version = id[:i], id[i+1:]
	}
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return out, errors.New("version " + strconv.Quote(version) + " is not a number")
	}
	out.OrderID, out.Version = orderID, v
	return out, nil
}

func header(h natsgo.Header, k string) string {
	if h == nil {
		return ""
	}
	return h.Get(k)
}
