package redis

import "context"

// Behind implements persistence.Journal: positions are dense (one per
// record, handed out by the seq counter), so it is Head minus after.
func (b *Backend) Behind(ctx context.Context, after uint64) (uint64, error) {
	head, err := b.Head(ctx)
	if err != nil || head <= after {
		return 0, err
	}
	return head - after, nil
}
