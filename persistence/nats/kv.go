package nats

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

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
	if _, err := b.checkpoints.Put(ctx, kvKey(name), []byte(strconv.FormatUint(pos, 10))); err != nil {
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
			_, err = b.snapshots.Create(ctx, key, val)
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
		_, err = b.snapshots.Update(ctx, key, val, e.Revision())
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

// Idempotency values are the ttl (8-byte big-endian nanoseconds) followed by
// the caller's value; a record expires at its server timestamp plus ttl.

func (b *Backend) idemExpired(e jetstream.KeyValueEntry) (value []byte, expired bool, err error) {
	v := e.Value()
	if len(v) < 8 {
		return nil, false, fmt.Errorf("stored value of %d bytes is too short", len(v))
	}
	ttl := time.Duration(binary.BigEndian.Uint64(v))
	return v[8:], !time.Now().Before(e.Created().Add(ttl)), nil
}

// PutIdempotency implements persistence.Idempotency.
func (b *Backend) PutIdempotency(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := b.begin(ctx, "put idempotency record"); err != nil {
		return nil, false, err
	}
	if key == "" {
		return nil, false, fmt.Errorf("put idempotency record: empty key: %w", persistence.ErrInvalidArgument)
	}
	if ttl <= 0 {
		return nil, false, fmt.Errorf("put idempotency record %q: ttl %s is not positive: %w", key, ttl, persistence.ErrInvalidArgument)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	op := fmt.Sprintf("put idempotency record %q", key)
	k := kvKey(key)
	val := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(ttl))
	val = append(val, value...)
	var createOpts []jetstream.KVCreateOpt
	var purgeOpts []jetstream.KVDeleteOpt
	if b.keyTTL {
		// The server counts whole seconds, at least one: round up, the
		// stored ttl keeps the exact expiry.
		createOpts = append(createOpts, jetstream.KeyTTL(max(time.Second, (ttl+time.Second-1).Truncate(time.Second))))
		purgeOpts = append(purgeOpts, jetstream.PurgeTTL(b.markerTTL))
	}
	for range casAttempts {
		_, err := b.idem.Create(ctx, k, val, createOpts...)
		if err == nil {
			return value, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, b.wrap(ctx, op, err)
		}
		e, err := b.idem.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired between Create and Get
		}
		if err != nil {
			return nil, false, b.wrap(ctx, op, err)
		}
		stored, expired, err := b.idemExpired(e)
		if err != nil {
			return nil, false, fmt.Errorf("nats %s: %w", op, err)
		}
		if !expired {
			return stored, false, nil
		}
		// Expired but not yet removed by the server: purge exactly that
		// revision, then create again.
		err = b.idem.Purge(ctx, k, append(purgeOpts, jetstream.LastRevision(e.Revision()))...)
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, b.wrap(ctx, op, err)
		}
	}
	return nil, false, persistence.Unavailable("nats "+op, errors.New("too many concurrent writers of the key"))
}

// GetIdempotency implements persistence.Idempotency.
func (b *Backend) GetIdempotency(ctx context.Context, key string) ([]byte, bool, error) {
	if err := b.begin(ctx, "get idempotency record"); err != nil {
		return nil, false, err
	}
	if key == "" {
		return nil, false, nil
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	op := fmt.Sprintf("get idempotency record %q", key)
	e, err := b.idem.Get(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, b.wrap(ctx, op, err)
	}
	v, expired, err := b.idemExpired(e)
	if err != nil {
		return nil, false, fmt.Errorf("nats %s: %w", op, err)
	}
	if expired {
		return nil, false, nil
	}
	return v, true, nil
}
