package nats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/persistence"
)

// Partitions implements persistence.Journal.
func (b *Backend) Partitions() int { return len(b.streams) }

// Log implements persistence.Journal.
func (b *Backend) Log(p int) persistence.Log {
	if p < 0 || p >= len(b.logs) {
		return persistence.BadPartition(p)
	}
	return b.logs[p]
}

// partitionOf is the partition of an order.
func (b *Backend) partitionOf(streamID string) int {
	return persistence.PartitionOf(streamID, len(b.streams))
}

// subject is the subject order streamID is journaled on.
func (b *Backend) subject(streamID string) string {
	return b.opts.partitionSubjects(b.partitionOf(streamID)) + "." + streamID
}

// Append implements persistence.Journal.
func (b *Backend) Append(ctx context.Context, streamID string, expected uint64, records []persistence.Record) (uint64, error) {
	if err := persistence.ValidateAppend(streamID, records); err != nil {
		return 0, err
	}
	if err := validID("append", streamID); err != nil {
		return 0, err
	}
	if len(records) > positionScale {
		return 0, fmt.Errorf("append to %q: %d records, at most %d per append: %w", streamID, len(records), positionScale, persistence.ErrInvalidArgument)
	}
	if err := b.begin(ctx, "append"); err != nil {
		return 0, err
	}
	msg := encodeAppend(b.subject(streamID), expected+1, records)
	if size := int64(len(msg.Data)) + 512; size > b.maxPayload {
		return 0, fmt.Errorf("append to %q: %d bytes, over the server's max payload of %d: %w", streamID, len(msg.Data), b.maxPayload, persistence.ErrInvalidArgument)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	p := b.partitionOf(streamID)

	h, ok := b.cache.head(streamID)
	if !ok || h.version != expected {
		var err error
		if h, err = b.lookupHead(ctx, streamID); err != nil {
			return 0, err
		}
	}
	for attempt := 0; ; attempt++ {
		if h.version != expected {
			return 0, &persistence.ConflictError{StreamID: streamID, Expected: expected, Actual: h.version}
		}
		// Sent again while no stream answers, until ctx ends (see unheard).
		ack, err := b.js.PublishMsg(ctx, msg,
			jetstream.WithExpectStream(b.opts.partitionStream(p)),
			jetstream.WithExpectLastSequencePerSubject(h.seq),
			jetstream.WithRetryWait(unheardWait), jetstream.WithRetryAttempts(math.MaxInt32))
		if err == nil {
			b.cache.appended(streamID, p, expected, h.seq, ack.Sequence, records)
			return expected + uint64(len(records)), nil
		}
		if !isWrongLastSeq(err) {
			return 0, b.wrap(ctx, fmt.Sprintf("append to %q", streamID), err)
		}
		if attempt >= inFlightRetries {
			// The head still says expected, yet the server keeps refusing:
			// another writer's append to this order is in flight. It is a
			// conflict all the same; the caller reloads and decides again.
			return 0, &persistence.ConflictError{StreamID: streamID, Expected: expected, Actual: h.version}
		}
		if attempt > 0 {
			// A clustered stream refuses an append while another one to the
			// same subject is proposed but not yet applied, which the head
			// does not show yet: give it a moment.
			if err := sleepCtx(ctx, time.Duration(1<<attempt)*time.Millisecond); err != nil {
				return 0, b.wrap(ctx, fmt.Sprintf("append to %q", streamID), err)
			}
		}
		// Someone else wrote (or the cached sequence was stale): look at
		// the real head; if the version still matches, try again.
		if h, err = b.lookupHead(ctx, streamID); err != nil {
			return 0, err
		}
	}
}

// inFlightRetries bounds the head lookups of an append the server refuses
// while the head says the expected version (1+2+...+16 ms of pauses).
const inFlightRetries = 5

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookupHead asks the partition's stream leader for the order's last message.
func (b *Backend) lookupHead(ctx context.Context, streamID string) (head, error) {
	m, err := b.streams[b.partitionOf(streamID)].GetLastMsgForSubject(ctx, b.subject(streamID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, b.wrap(ctx, fmt.Sprintf("last message of %q", streamID), err)
	}
	first, count, err := msgHead(m.Header)
	if err != nil {
		return head{}, fmt.Errorf("nats: order %q, partition %d, stream sequence %d: %w", streamID, b.partitionOf(streamID), m.Sequence, err)
	}
	h := head{version: first + uint64(count) - 1, seq: m.Sequence}
	b.cache.putHead(streamID, h)
	return h, nil
}

// Load implements persistence.Journal. It reads from the stream leader
// only (no consumer): the order's last message, then, after the cached
// prefix, one next-by-subject get per message.
func (b *Backend) Load(ctx context.Context, streamID string, from uint64) ([]persistence.Record, error) {
	if err := validID("load", streamID); err != nil {
		return nil, err
	}
	if err := b.begin(ctx, "load"); err != nil {
		return nil, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	from = max(from, 1)
	p := b.partitionOf(streamID)
	last, err := b.streams[p].GetLastMsgForSubject(ctx, b.subject(streamID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("load %q", streamID), err)
	}
	lastRecs, err := decodeMsg(streamID, p, last.Sequence, last.Header, last.Data)
	if err != nil {
		return nil, fmt.Errorf("nats load %q: %w", streamID, err)
	}
	lastVersion := lastRecs[len(lastRecs)-1].Version
	b.cache.putHead(streamID, head{version: lastVersion, seq: last.Sequence})
	switch {
	case from > lastVersion:
		return nil, nil
	case from >= lastRecs[0].Version:
		return cloneRecords(lastRecs[from-lastRecs[0].Version:]), nil
	}
	// Start from the cached prefix, if any, and read what follows it.
	prefix, prefixSeq := b.cache.prefix(streamID)
	if prefixSeq > last.Sequence || uint64(len(prefix)) > lastVersion {
		prefix, prefixSeq = nil, 0 // the stream was recreated
	}
	all := make([]persistence.Record, len(prefix), lastVersion)
	copy(all, prefix)
	if uint64(len(all)) < lastVersion {
		err := b.loadNext(ctx, streamID, prefixSeq+1, last.Sequence, func(seq uint64, h natsgo.Header, data []byte) error {
			rs, err := decodeMsg(streamID, p, seq, h, data)
			if err != nil {
				return fmt.Errorf("nats load %q: %w", streamID, err)
			}
			all = append(all, rs...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i, r := range all {
		if r.Version != uint64(i)+1 {
			return nil, fmt.Errorf("nats load %q: record %d has version %d: the journal has a gap", streamID, i, r.Version)
		}
	}
	if uint64(len(all)) != lastVersion {
		return nil, fmt.Errorf("nats load %q: read %d records, the last message says %d", streamID, len(all), lastVersion)
	}
	b.cache.loaded(streamID, all, last.Sequence)
	return cloneRecords(all[from-1:]), nil
}

// cloneRecords copies records and their data, so that callers never share
// memory with the cache.
func cloneRecords(rs []persistence.Record) []persistence.Record {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Data = slices.Clone(out[i].Data)
	}
	return out
}

// loadNext walks the order's messages from sequence start up to lastSeq
// with next-by-subject gets, one round trip per message.
func (b *Backend) loadNext(ctx context.Context, streamID string, start, lastSeq uint64, collect func(uint64, natsgo.Header, []byte) error) error {
	subj := b.subject(streamID)
	s := b.streams[b.partitionOf(streamID)]
	for seq := start; seq <= lastSeq; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return b.wrap(ctx, fmt.Sprintf("load %q", streamID), err)
		}
		if m.Sequence > lastSeq {
			return nil
		}
		if err := collect(m.Sequence, m.Header, m.Data); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
	return nil
}

// partitionLog is partition p's persistence.Log: the stream <Stream>_P<p>.
type partitionLog struct {
	b *Backend
	p int
}

var _ persistence.Log = (*partitionLog)(nil)

// Partition implements persistence.Log.
func (l *partitionLog) Partition() int { return l.p }

func (l *partitionLog) stream() jetstream.Stream { return l.b.streams[l.p] }

// ReadAll implements persistence.Log. It asks the stream leader for the
// last sequence, then gets the messages after the position by sequence, up
// to readAllWindow in parallel, never through a consumer. A message on the
// partition's subjects that is not a journal message (no valid headers, a
// truncated envelope) holds no record: it ends the read before it, or,
// when it is the first message read, is reported as a
// *persistence.CorruptRecordError whose Position is seq*1000 and Next
// seq*1000+999, the last position the message could hold (a read after it
// starts at the next sequence).
func (l *partitionLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	b := l.b
	if err := b.begin(ctx, "read all"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	info, err := l.stream().Info(ctx)
	if err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("read partition %d: stream info", l.p), err)
	}
	lastSeq := info.State.LastSeq
	seq := max(firstSeqAfter(after), 1)
	out := make([]persistence.Record, 0, min(limit, 1024))
	var corrupt *persistence.CorruptRecordError
window:
	for seq <= lastSeq && len(out) < limit {
		// Every message holds at least one record: no more messages than
		// records wanted (plus the partly read first one) are needed.
		n := min(uint64(readAllWindow), lastSeq-seq+1, uint64(limit-len(out))+1)
		msgs, err := l.getRange(ctx, seq, n)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m == nil {
				continue // a gap: the stream denies deletes, but stay robust
			}
			rs, err := l.decodeLogMsg(m)
			if err != nil {
				if len(out) == 0 {
					corrupt = &persistence.CorruptRecordError{Partition: l.p,
						Position: m.Sequence * positionScale, Next: m.Sequence*positionScale + positionScale - 1,
						Reason: "nats " + truncate(err.Error(), maxReason)}
				}
				break window // what came before it is the answer
			}
			for _, r := range rs {
				if r.Position > after && len(out) < limit {
					out = append(out, r)
				}
			}
			if len(out) >= limit {
				break window
			}
		}
		seq += n
	}
	if corrupt != nil {
		return nil, corrupt
	}
	return out, nil
}

// maxReason bounds the reason of a *persistence.CorruptRecordError: it
// quotes headers that anyone who can publish on the subjects chose.
const maxReason = 300

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// firstSeqAfter is the stream sequence of the first message that can hold
// a position after after: the message of after itself, unless after is the
// last position a message can hold.
func firstSeqAfter(after uint64) uint64 {
	if after%positionScale == positionScale-1 {
		return after/positionScale + 1
	}
	return after / positionScale
}

// decodeLogMsg returns the records of a message of the partition's stream.
func (l *partitionLog) decodeLogMsg(m *jetstream.RawStreamMsg) ([]persistence.Record, error) {
	prefix := l.b.opts.partitionSubjects(l.p) + "."
	id, ok := strings.CutPrefix(m.Subject, prefix)
	if !ok {
		return nil, fmt.Errorf("stream sequence %d has subject %q outside %s*", m.Sequence, m.Subject, prefix)
	}
	rs, err := decodeMsg(id, l.p, m.Sequence, m.Header, m.Data)
	if err != nil {
		return nil, fmt.Errorf("journal message on %s: %w", m.Subject, err)
	}
	return rs, nil
}

// getRange gets n messages by sequence from seq on, in parallel; a missing
// sequence is a nil entry.
func (l *partitionLog) getRange(ctx context.Context, seq, n uint64) ([]*jetstream.RawStreamMsg, error) {
	out := make([]*jetstream.RawStreamMsg, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := l.stream().GetMsg(ctx, seq+i)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return
			}
			out[i], errs[i] = m, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, l.b.wrap(ctx, fmt.Sprintf("read partition %d: get stream sequence %d", l.p, seq+uint64(i)), err)
		}
	}
	return out, nil
}

// Head implements persistence.Log. When the stream's last message is not a
// journal message, Head is the last position that message could hold, which
// is where a reader that skipped it stands.
func (l *partitionLog) Head(ctx context.Context) (uint64, error) {
	b := l.b
	if err := b.begin(ctx, "head"); err != nil {
		return 0, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	info, err := l.stream().Info(ctx)
	if err != nil {
		return 0, b.wrap(ctx, fmt.Sprintf("head of partition %d: stream info", l.p), err)
	}
	last := info.State.LastSeq
	if last == 0 || info.State.Msgs == 0 {
		return 0, nil
	}
	m, err := l.stream().GetMsg(ctx, last)
	if err != nil {
		return 0, b.wrap(ctx, fmt.Sprintf("head of partition %d: get stream sequence %d", l.p, last), err)
	}
	_, count, err := msgHead(m.Header)
	if err != nil {
		// Not a journal message: it holds no record, and a reader that
		// skips it reads on after the last position it could hold (the
		// Next of ReadAll's *persistence.CorruptRecordError).
		return last*positionScale + positionScale - 1, nil
	}
	return last*positionScale + uint64(count) - 1, nil
}

// Behind implements persistence.Log: it returns how many messages of the
// partition's stream lie after the one holding position after, that is the
// outbox's lag in appends (positions here are seq*1000+index, so Head minus
// a checkpoint would overstate it a thousandfold). A message's records count
// once, and a skipped stream sequence counts as a message.
func (l *partitionLog) Behind(ctx context.Context, after uint64) (uint64, error) {
	head, err := l.Head(ctx)
	if err != nil {
		return 0, err
	}
	if head <= after {
		return 0, nil
	}
	return head/positionScale - after/positionScale, nil
}
