// Package memory is the in-process transport: a bus inside one Transport value
// with the same delivery semantics as the Redis and NATS backends, for a
// standalone node and for tests. Nothing leaves the process and nothing
// survives it.
//
// The bus keeps one log of published messages. Ephemeral subscriptions read
// it from where the log ended when they subscribed; durable groups keep a
// position per group that survives the group's subscriptions being closed
// and reopened (for the Transport's lifetime). The log is trimmed behind the
// slowest reader (group positions and open ephemeral subscriptions), so with
// readers that keep up it holds only the messages in flight, and with no
// reader at all it holds nothing. A reader that falls behind by more than
// Options.MaxBacklog messages (default DefaultMaxBacklog) loses the oldest
// ones: the log never grows past that bound, like a Redis stream with MAXLEN.
// Dropped counts them.
package memory
