package nats

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/persistence"
)

// casAttempts bounds the read-compare-write loops below.
const casAttempts = 10

// LoadCheckpoint implements persistence.Checkpoints.
func (b *Backend) LoadCheckpoint(ctx context.Context, name string) (uint64, error) {
	if err := b.begin(ctx, "load checkpoint"); err != nil {
		return 0, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	e, err := b.checkpoints.Get(ctx, kvKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, b.wrap(ctx, fmt.Sprintf("load checkpoint %q", name), err)
	}
	v, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("nats load checkpoint %q: stored value %q: %w", name, e.Value(), err)
	}
	return v, nil
}

// SaveCheckpoint implements persistence.Checkpoints.
func (b *Backend) SaveCheckpoint(ctx context.Context, name string, pos uint64) error {
	if err := b.begin(ctx, "save checkpoint"); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("save checkpoint: empty name: %w", persistence.ErrInvalidArgument)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	v := []byte(strconv.FormatUint(pos, 10))
	if err := unheard(ctx, func() (err error) { _, err = b.checkpoints.Put(ctx, kvKey(name), v); return err }); err != nil {
		return b.wrap(ctx, fmt.Sprintf("save checkpoint %q", name), err)
	}
	return nil
}

// Snapshot values are an 8-byte big-endian version followed by the data.

// SaveSnapshot implements persistence.Snapshots: a revision-checked update
// that only replaces a lower version.
func (b *Backend) SaveSnapshot(ctx context.Context, s persistence.Snapshot) error {
	if err := b.begin(ctx, "save snapshot"); err != nil {
		return err
	}
	if s.StreamID == "" {
		return fmt.Errorf("save snapshot: empty stream id: %w", persistence.ErrInvalidArgument)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	op := fmt.Sprintf("save snapshot of %q", s.StreamID)
	key := kvKey(s.StreamID)
	val := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(s.Data)), s.Version)
	val = append(val, s.Data...)
	for range casAttempts {
		e, err := b.snapshots.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			err = unheard(ctx, func() (err error) { _, err = b.snapshots.Create(ctx, key, val); return err })
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return b.wrap(ctx, op, err)
			}
			return nil
		}
		if err != nil {
			return b.wrap(ctx, op, err)
		}
		if len(e.Value()) >= 8 && binary.BigEndian.Uint64(e.Value()) > s.Version {
			return nil
		}
		err = unheard(ctx, func() (err error) { _, err = b.snapshots.Update(ctx, key, val, e.Revision()); return err })
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return b.wrap(ctx, op, err)
		}
		return nil
	}
	return persistence.Unavailable("nats "+op, errors.New("too many concurrent snapshot writers"))
}

// LoadSnapshot implements persistence.Snapshots.
func (b *Backend) LoadSnapshot(ctx context.Context, streamID string) (persistence.Snapshot, bool, error) {
	if err := b.begin(ctx, "load snapshot"); err != nil {
		return persistence.Snapshot{}, false, err
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	e, err := b.snapshots.Get(ctx, kvKey(streamID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return persistence.Snapshot{}, false, nil
	}
	if err != nil {
		return persistence.Snapshot{}, false, b.wrap(ctx, fmt.Sprintf("load snapshot of %q", streamID), err)
	}
	v := e.Value()
	if len(v) < 8 {
		return persistence.Snapshot{}, false, fmt.Errorf("nats load snapshot of %q: stored value of %d bytes is too short", streamID, len(v))
	}
	return persistence.Snapshot{StreamID: streamID, Version: binary.BigEndian.Uint64(v), Data: v[8:]}, true, nil
}
