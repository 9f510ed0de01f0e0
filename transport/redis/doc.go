// Package redis is the transport on a Redis stream (Redis 6.2 or newer; the
// client is go-redis v9, imported as goredis).
//
// Wire format, which other services rely on: every message is one entry of
// the stream Options.Key (default "orders:events") with the fields
//
//	eventId  "<orderId>:<version>", the id consumers deduplicate by
//	type     the event type name (OrderCreated, OrderPaid, ...)
//	payload  the encoded orderpb.Event, raw protobuf bytes
//	orderId  the order id
//	version  the order version, decimal
//
// A node of cluster <name> publishes on "<name>:orders:events" instead;
// the default cluster "ordersystem" keeps "orders:events".
//
// A Publish is one pipeline of XADD commands (with MAXLEN ~ Options.MaxLen,
// default DefaultMaxLen, so the stream is trimmed approximately and a
// consumer that lags by more than that loses the oldest entries) and returns
// when every reply arrived. Entries of one Publish are in the stream in batch
// order, so the messages of one order are delivered in the order published.
//
// Durable groups are Redis consumer groups named after SubscribeOptions.Group.
// A group is created (XGROUP CREATE ... MKSTREAM) at "$" by its first
// Subscribe: a new group receives what is published after that Subscribe
// returns, never the history; an existing group resumes at its position. If
// the group disappears while subscribed (the key was deleted, the server lost
// its data) it is recreated at "0", so nothing still in the stream is missed.
// Members read with XREADGROUP and acknowledge with XACK after the handler
// returned nil. Each member is a consumer named Options.Consumer (default
// host-pid-random), with "-2", "-3", ... added for further members of the
// same group in one Transport, so a subscription that is closed and reopened
// takes the same consumer name. At start a member first reads its own pending
// entries (delivered before but never acknowledged) and then, every
// Options.ClaimInterval, takes over entries that any consumer of the group has
// left unacknowledged for Options.ClaimIdle (XAUTOCLAIM): this is how the
// work of a member that died is redelivered. A handler call must therefore
// take less than ClaimIdle, or another member may take its entries and
// deliver them twice (while a handler is being retried after errors, its
// entries are re-claimed before every attempt to keep them). A member that
// closes with nothing pending deletes its consumer.
//
// Ephemeral subscriptions read with XREAD from the last entry that existed
// when Subscribe returned.
//
// The transport works through a client of its own (Options.Addr) or one it
// is handed (Options.Client), which it then shares with the node's other
// Redis users and does not close. Blocking reads run on a connection of
// their own per subscription (a one-connection client made with the options
// of the transport's client), which Close closes, so Close returns
// promptly. A client of another kind than a single-server *goredis.Client
// (a cluster client) gives no options to copy: its blocking reads go through
// it in slices of at most 500 ms, which bound how long Close waits.
package redis
