package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/transport"
	"github.com/ordersystem/ordersystem/transport/internal/retry"
)

// cleanupTimeout bounds the acknowledgements and consumer cleanup done while
// a subscription closes.
const cleanupTimeout = 2 * time.Second

// subscription is one running Subscribe. Its goroutine (run) is owned by it
// and stopped by Close, which also closes read (if it is the
// subscription's own) to cut a blocking read short.
type subscription struct {
	t        *Transport
	h        transport.Handler
	group    string // "" for ephemeral
	consumer string // group only
	slot     int    // group only
	lastID   string // ephemeral only: the last entry seen
	read     goredis.UniversalClient
	ownRead  bool // read is the subscription's own client (Transport.newReader)

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Close implements transport.Subscription.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.closeReader()
		<-s.done
		if s.group != "" {
			s.deleteConsumerIfIdle()
		}
		t := s.t
		t.mu.Lock()
		delete(t.subs, s)
		if s.group != "" {
			delete(t.slots[s.group], s.slot)
		}
		t.mu.Unlock()
	})
	return nil
}

func (s *subscription) closeReader() {
	if s.ownRead {
		_ = s.read.Close()
	}
}

// block is how long one blocking read may wait: Options.Block, or at most
// sharedBlock when the read goes through the transport's client.
func (s *subscription) block() time.Duration {
	if s.ownRead {
		return s.t.opts.Block
	}
	return min(s.t.opts.Block, sharedBlock)
}

// deleteConsumerIfIdle removes this member's consumer from the group when it
// holds no pending entries, so dead consumer names do not pile up.
func (s *subscription) deleteConsumerIfIdle() {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	c, key := s.t.client, s.t.opts.Key
	pending, err := c.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: key, Group: s.group, Start: "-", End: "+", Count: 1, Consumer: s.consumer,
	}).Result()
	if err != nil || len(pending) > 0 {
		return
	}
	_ = c.XGroupDelConsumer(ctx, key, s.group, s.consumer).Err()
}

// warn logs a failed server operation with stable keys.
func (s *subscription) warn(msg, op string, attempt int, err error) {
	s.t.opts.Logger.Warn(msg, "key", s.t.opts.Key, "group", s.group, "op", op, "attempt", attempt, "error", err)
}

func (s *subscription) backoff() backoff.Policy {
	return backoff.Policy{Base: s.t.opts.RetryMin, Max: s.t.opts.RetryMax}
}

func (s *subscription) run(ctx context.Context) {
	defer close(s.done)
	if s.group != "" {
		s.runGroup(ctx)
	} else {
		s.runEphemeral(ctx)
	}
}

func (s *subscription) runEphemeral(ctx context.Context) {
	t := s.t
	fails := 0
	for ctx.Err() == nil {
		res, err := s.read.XRead(ctx, &goredis.XReadArgs{
			Streams: []string{t.opts.Key, s.lastID},
			Count:   int64(t.opts.BatchSize),
			Block:   s.block(),
		}).Result()
		if errors.Is(err, goredis.Nil) {
			continue // block timed out
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			s.warn("redis transport: read failed, retrying", "XREAD", fails, err)
			retry.Sleep(ctx, s.backoff().Delay(fails))
			continue
		}
		fails = 0
		entries := flatten(res)
		if len(entries) == 0 {
			continue
		}
		batch := s.decode(entries)
		if len(batch) > 0 {
			if err := s.handle(ctx, batch, nil); err != nil {
				return
			}
		}
		s.lastID = entries[len(entries)-1].ID
	}
}

func (s *subscription) runGroup(ctx context.Context) {
	t := s.t
	pendingFrom := "0" // first our own pending entries, then new ones
	claimFrom := "0-0"
	nextClaim := time.Now()
	fails := 0
	for ctx.Err() == nil {
		var (
			entries []goredis.XMessage
			err     error
			op      string
		)
		switch {
		case pendingFrom != "":
			op = "XREADGROUP (own pending)"
			entries, err = s.readGroup(ctx, t.client, pendingFrom, -1)
			if err == nil {
				if len(entries) == 0 {
					pendingFrom = ""
				} else {
					pendingFrom = entries[len(entries)-1].ID
				}
			}
		case !time.Now().Before(nextClaim):
			op = "XAUTOCLAIM"
			var next string
			entries, next, err = t.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
				Stream: t.opts.Key, Group: s.group, Consumer: s.consumer,
				MinIdle: t.opts.ClaimIdle, Start: claimFrom, Count: int64(t.opts.BatchSize),
			}).Result()
			if err == nil {
				claimFrom = next
				if next == "0-0" {
					nextClaim = time.Now().Add(t.opts.ClaimInterval)
				}
				if len(entries) > 0 {
					t.opts.Logger.Info("redis transport: took over entries left unacknowledged",
						"key", t.opts.Key, "group", s.group, "entries", len(entries), "first_entry_id", entries[0].ID)
				}
			}
		default:
			op = "XREADGROUP"
			block := min(s.block(), time.Until(nextClaim))
			entries, err = s.readGroup(ctx, s.read, ">", max(block, time.Millisecond))
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// The key or group vanished (deleted, or the server
				// lost its data): recreate at the start of whatever
				// the stream holds now, missing nothing.
				s.warn("redis transport: group missing, recreating it", op, fails, err)
				if err = t.createGroup(ctx, s.group, "0"); err == nil {
					continue
				}
			}
			fails++
			s.warn("redis transport: read failed, retrying", op, fails, err)
			retry.Sleep(ctx, s.backoff().Delay(fails))
			continue
		}
		fails = 0
		if len(entries) == 0 {
			continue
		}
		if !s.deliverGroup(ctx, entries) {
			return
		}
	}
}

// readGroup runs XREADGROUP from id; block < 0 does not block.
func (s *subscription) readGroup(ctx context.Context, c goredis.UniversalClient, id string, block time.Duration) ([]goredis.XMessage, error) {
	res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: s.group, Consumer: s.consumer,
		Streams: []string{s.t.opts.Key, id},
		Count:   int64(s.t.opts.BatchSize),
		Block:   block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	return flatten(res), err
}

// deliverGroup hands entries to the handler and acknowledges them; it
// reports false when the subscription closed first (the entries then stay
// pending for this consumer, to be read again by its next subscription or
// taken over by another member after ClaimIdle).
func (s *subscription) deliverGroup(ctx context.Context, entries []goredis.XMessage) bool {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	if batch := s.decode(entries); len(batch) > 0 {
		keep := func() {
			// Reset the entries' idle time so that no other member
			// takes them over while we retry.
			_ = s.t.client.XClaimJustID(ctx, &goredis.XClaimArgs{
				Stream: s.t.opts.Key, Group: s.group, Consumer: s.consumer, Messages: ids,
			}).Err()
		}
		if err := s.handle(ctx, batch, keep); err != nil {
			return false
		}
	}
	s.ack(ctx, ids)
	return true
}

// ack acknowledges ids, retrying on errors while the subscription runs, and
// with a short deadline of its own once it is closing (the handler did
// accept the batch). An acknowledgement that is lost only causes a
// redelivery.
func (s *subscription) ack(ctx context.Context, ids []string) {
	t := s.t
	for fails := 1; ; fails++ {
		closing := ctx.Err() != nil
		actx, cancel := ctx, context.CancelFunc(func() {})
		if closing {
			actx, cancel = context.WithTimeout(context.Background(), cleanupTimeout)
		}
		err := t.client.XAck(actx, t.opts.Key, s.group, ids...).Err()
		cancel()
		switch {
		case err == nil:
			return
		case closing:
			s.warn("redis transport: acknowledgement failed while closing; the entries will be redelivered", "XACK", fails, err)
			return
		case ctx.Err() != nil:
			continue // closed during the call: once more with a fresh deadline
		}
		s.warn("redis transport: acknowledgement failed", "XACK", fails, err)
		retry.Sleep(ctx, s.backoff().Delay(fails))
	}
}

// handle calls the handler until it accepts batch; keep (if not nil) runs
// after every failure.
func (s *subscription) handle(ctx context.Context, batch []transport.Message, keep func()) error {
	return retry.Handle(ctx, s.h, batch, s.backoff(), func(attempt int, err error) {
		if ctx.Err() != nil {
			return
		}
		s.t.opts.Logger.Warn("redis transport: handler failed, redelivering", "key", s.t.opts.Key,
			"group", s.group, "attempt", attempt, "batch", len(batch), "first_event_id", batch[0].ID(), "error", err)
		if keep != nil {
			keep()
		}
	})
}

// decode turns stream entries into messages, skipping (and logging) entries
// that are not order events or were deleted while pending.
func (s *subscription) decode(entries []goredis.XMessage) []transport.Message {
	out := make([]transport.Message, 0, len(entries))
	for _, e := range entries {
		m, err := decodeEntry(e)
		if err != nil {
			s.t.opts.Logger.Warn("redis transport: skipping an entry that is not an order event",
				"key", s.t.opts.Key, "group", s.group, "entry_id", e.ID, "error", err)
			continue
		}
		out = append(out, m)
	}
	return out
}

func decodeEntry(e goredis.XMessage) (transport.Message, error) {
	if e.Values == nil {
		return transport.Message{}, errors.New("entry deleted from the stream (trimmed)")
	}
	field := func(k string) (string, bool) {
		switch v := e.Values[k].(type) {
		case string:
			return v, true
		case []byte:
			return string(v), true
		}
		return "", false
	}
	var m transport.Message
	payload, ok := field("payload")
	if !ok {
		return m, errors.New("no payload field")
	}
	m.Payload = []byte(payload)
	if m.Type, ok = field("type"); !ok || m.Type == "" {
		return m, errors.New("no type field")
	}
	orderID, okID := field("orderId")
	version, okV := field("version")
	if !okID || !okV {
		// Written by another producer: the event id carries both.
		id, ok := field("eventId")
		i := strings.LastIndexByte(id, ':')
		if !ok || i <= 0 {
			return m, errors.New("no orderId/version fields and no eventId <orderId>:<version>")
		}
		orderID, version = id[:i], id[i+1:]
	}
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return m, errors.New("version " + strconv.Quote(version) + " is not a number")
	}
	m.OrderID, m.Version = orderID, v
	return m, nil
}

func flatten(streams []goredis.XStream) []goredis.XMessage {
	switch len(streams) {
	case 0:
		return nil
	case 1:
		return streams[0].Messages
	}
	var out []goredis.XMessage
	for _, st := range streams {
		out = append(out, st.Messages...)
	}
	return out
}
