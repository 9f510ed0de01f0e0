// Package persistence holds the storage contracts of OrderSystem: the event
// Journal (per-order streams with optimistic concurrency plus one global log
// that the outbox drains), the outbox Checkpoints and order Snapshots. Each
// backend lives in its own sub-package (memory, redis, nats) and must pass
// the contract suite in journaltest before it counts as done.
package persistence
