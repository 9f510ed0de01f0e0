package node

import (
	"context"
	"log/slog"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/readmodel"
)

// snapshotStore is the backend's read-model snapshot store, nil when the
// backend has none (in memory: nothing survives its restart) or
// --read-model-snapshot-every is 0 (then a start replays every log in
// full, whatever snapshots an earlier run left).
func (n *Node) snapshotStore() readmodel.SnapshotStore {
	s, ok := n.backend.(readmodel.SnapshotStore)
	if !ok || n.cfg.ReadModelSnapshotEvery <= 0 {
		return nil
	}
	return s
}

// snapshotLoader is snapshotStore as Restore takes it (a nil interface
// when there is none).
func (n *Node) snapshotLoader() readmodel.SnapshotLoader {
	if s := n.snapshotStore(); s != nil {
		return s
	}
	return nil
}

// startSnapshotter runs the read-model snapshotter when there is a store:
// it writes the snapshots of the partitions whose outbox this member hosts
// (the placement's owner of outbox-<p>; a standalone node hosts them all),
// so that in a cluster each partition has one writer at a time, and two
// only while views disagree (which the store's generations make safe).
func (n *Node) startSnapshotter(log *slog.Logger) {
	store := n.snapshotStore()
	if store == nil {
		return
	}
	n.snapshots = readmodel.NewSnapshotter(readmodel.SnapshotterConfig{
		Journal:  n.backend,
		Store:    store,
		Every:    uint64(n.cfg.ReadModelSnapshotEvery),
		Interval: n.cfg.ReadModelSnapshotInterval,
		Owns:     n.hostsOutbox,
		Metrics:  n.metrics,
		Logger:   log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	n.snapStop, n.snapRun = cancel, make(chan error, 1)
	go func() { n.snapRun <- n.snapshots.Run(ctx) }()
}

// hostsOutbox reports whether this member hosts partition p's outbox now.
func (n *Node) hostsOutbox(p int) bool {
	if !n.cfg.Cluster {
		return true
	}
	owner := n.member.Owner(actors.OutboxIdentity(p), actors.OutboxKind)
	return owner != "" && owner == n.member.Address()
}

var _ readmodel.SnapshotStore = persistence.ReadModelSnapshots(nil)
