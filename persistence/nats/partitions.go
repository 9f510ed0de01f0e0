package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/persistence"
)

// metaPartitionsKey is the key of the partition count in the meta bucket.
const metaPartitionsKey = "partitions"

// ErrLegacyJournal is returned by New when the server holds a journal of
// the single-stream layout (stream <Stream> on <SubjectPrefix>.*, from
// before partitions) with messages in it and no partition count: the
// partitioned backend would not read those orders, so it refuses to start
// rather than act as if they did not exist. Errors that match it name the
// stream and its message count.
var ErrLegacyJournal = errors.New("a journal of the single-stream layout holds data")

// resolvePartitions reads the stored partition count, stores Options.Partitions
// (or the default) when there is none, and checks one against the other.
func (b *Backend) resolvePartitions(ctx context.Context) (int, error) {
	stored, err := b.storedPartitions(ctx)
	if err != nil {
		return 0, err
	}
	if stored == 0 {
		if err := b.refuseLegacy(ctx); err != nil {
			return 0, err
		}
		n, _ := persistence.ResolvePartitions(b.opts.Partitions, 0)
		_, err := b.meta.Create(ctx, metaPartitionsKey, []byte(strconv.Itoa(n)))
		switch {
		case err == nil:
			return n, nil
		case !errors.Is(err, jetstream.ErrKeyExists):
			return 0, b.wrapSetup(ctx, "store the partition count in "+b.opts.metaBucket(), err)
		}
		// Another node stored a count first: that one holds.
		if stored, err = b.storedPartitions(ctx); err != nil {
			return 0, err
		}
	}
	n, err := persistence.ResolvePartitions(b.opts.Partitions, stored)
	if err != nil {
		return 0, fmt.Errorf("nats at %s: journal %s: %w", b.addr, b.opts.Stream, err)
	}
	return n, nil
}

// storedPartitions is the count in the meta bucket, 0 when none is stored.
func (b *Backend) storedPartitions(ctx context.Context) (int, error) {
	e, err := b.meta.Get(ctx, metaPartitionsKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, b.wrap(ctx, "read the partition count from "+b.opts.metaBucket(), err)
	}
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil || n < 1 || n > persistence.MaxPartitions {
		return 0, fmt.Errorf("nats at %s: bucket %s key %s holds %q, not a partition count 1-%d: %w",
			b.addr, b.opts.metaBucket(), metaPartitionsKey, truncate(string(e.Value()), 40), persistence.MaxPartitions, persistence.ErrCorrupt)
	}
	return n, nil
}

// refuseLegacy fails when a single-stream journal with messages exists under
// the configured names (a stream named Stream on exactly <SubjectPrefix>.*).
func (b *Backend) refuseLegacy(ctx context.Context) error {
	s, err := b.js.Stream(ctx, b.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return b.wrap(ctx, "look for a single-stream journal "+b.opts.Stream, err)
	}
	info := s.CachedInfo()
	if !slices.Equal(info.Config.Subjects, []string{b.opts.SubjectPrefix + ".*"}) || info.State.Msgs == 0 {
		return nil // not ours, or empty: nothing would be lost
	}
	return fmt.Errorf("nats at %s: stream %s on %s.* holds %d messages and bucket %s has no partition count: %w; "+
		"this version reads only the partitioned layout (streams %s_P<n>); move the orders over or start with another stream name",
		b.addr, b.opts.Stream, b.opts.SubjectPrefix, info.State.Msgs, b.opts.metaBucket(), ErrLegacyJournal, b.opts.Stream)
}

// createPartitionStreams creates or updates the n partition streams, a few
// at a time (an R3 stream takes a raft group to form).
func (b *Backend) createPartitionStreams(ctx context.Context, n int) error {
	o := b.opts
	b.streams = make([]jetstream.Stream, n)
	b.logs = make([]*partitionLog, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for p := range n {
		b.logs[p] = &partitionLog{b: b, p: p}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:        o.partitionStream(p),
				Description: fmt.Sprintf("OrderSystem event journal, partition %d of %d: one subject per order", p, n),
				Subjects:    []string{o.partitionSubjects(p) + ".*"},
				Retention:   jetstream.LimitsPolicy,
				MaxMsgs:     -1,
				MaxBytes:    -1,
				Discard:     jetstream.DiscardOld,
				Storage:     o.Storage,
				Replicas:    o.Replicas,
				// Direct gets are answered by any replica, and a follower
				// may not have the newest appends yet: with replicas, every
				// read goes to the stream leader (see doc.go, Reads).
				AllowDirect: o.Replicas == 1,
				DenyDelete:  true,
				DenyPurge:   true,
			})
			if err != nil {
				errs[p] = b.wrapSetup(ctx, "create or update stream "+o.partitionStream(p), err)
				return
			}
			b.streams[p] = s
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
