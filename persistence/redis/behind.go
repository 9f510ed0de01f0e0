package redis

import "context"

// Behind implements persistence.Log: positions are dense (one per record,
// handed out by the partition's seq counter), so it is Head minus after.
func (l *partitionLog) Behind(ctx context.Context, after uint64) (uint64, error) {
	head, err := l.Head(ctx)
	if err != nil || head <= after {
		return 0, err
	}
	return head - after, nil
}
