package nats

// TEMPORARY (branch partitions only): one partition over the old global
// log, so that the packages above compile while the partitioned layout is
// written; replaced by the real layout before this reaches main.

import (
	"context"

	"github.com/ordersystem/ordersystem/persistence"
)

func (b *Backend) Partitions() int { return 1 }

func (b *Backend) Log(p int) persistence.Log {
	if p != 0 {
		return persistence.BadPartition(p)
	}
	return shimLog{b}
}

type shimLog struct{ b *Backend }

func (l shimLog) Partition() int { return 0 }
func (l shimLog) ReadAll(ctx context.Context, after uint64, limit int) ([]persistence.Record, error) {
	return l.b.ReadAll(ctx, after, limit)
}
func (l shimLog) Head(ctx context.Context) (uint64, error) { return l.b.Head(ctx) }
func (l shimLog) Behind(ctx context.Context, after uint64) (uint64, error) {
	return l.b.Behind(ctx, after)
}
