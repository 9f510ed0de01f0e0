// Package nats is the NATS JetStream persistence backend: the event journal
// in one JetStream stream, and checkpoints and snapshots in two JetStream
// key-value buckets. It connects by itself (Options.URL) or works on a
// connection it is handed (Options.Conn), which it then shares with the
// node's other NATS users and does not close; either way it ends the
// operations in flight as soon as the connection drops.
//
// # Journal layout
//
// The stream (Options.Stream, default ORDERS_JOURNAL) captures the subjects
// <SubjectPrefix>.* (default orders.journal.*); order <id> lives on subject
// <SubjectPrefix>.<id>, so order ids are limited to [A-Za-z0-9_-] (others are
// refused with persistence.ErrInvalidArgument). The stream denies message
// delete and purge: the journal is append-only.
//
// Two backends on one server need different streams and subject prefixes
// (JetStream refuses a stream whose subjects overlap another's). A node of
// cluster <name> uses ORDERS_JOURNAL_<NAME> on <name>.orders.journal.*; the
// default cluster "ordersystem" keeps ORDERS_JOURNAL on orders.journal.*.
//
// One Append is ONE message, which is what makes a multi-record append
// atomic on every server version. (JetStream atomic batch publish needs
// nats-server 2.12 and is not exposed by nats.go v1.55, and the shared
// development server runs 2.9; the envelope works everywhere.) Its headers:
//
//	Ordersystem-Version  version of the message's first record
//	Ordersystem-Type     the record's type (single-record messages)
//	Ordersystem-Count    number of records (multi-record messages only)
//
// A single-record message carries the event bytes as its payload, so other
// tools can read it as is. A multi-record message carries an envelope:
// for each record uvarint(len(type)) type uvarint(len(data)) data.
//
// The append publishes with Nats-Expected-Last-Subject-Sequence set to the
// stream sequence of the order's last message (0 for a new order), so a
// writer that did not see the latest message fails; the backend then looks
// up the order's last message and returns a *persistence.ConflictError with
// the actual version. The last (version, sequence) of recently written
// orders is kept in a bounded LRU so that an actor appending to its own order
// needs one round trip; a stale entry only costs the server's refusal and one
// lookup.
//
// # Positions
//
// Record i (0-based) of the message with stream sequence s has position
// s*1000 + i: strictly increasing in commit order but not dense (the
// contract allows gaps), and readable (position 42003 is record 3 of
// message 42). An append therefore holds at most 1000 records (the same
// ceiling NATS puts on an atomic batch). Head minus a checkpoint is about
// 1000 times the number of messages behind.
//
// # Reads
//
// Load looks up the order's last message (a direct get by subject); short
// orders are then read with next-by-subject gets, long ones (more than 16
// records) through a short-lived ephemeral consumer filtered on the order's
// subject. ReadAll reads the stream sequences after the position with
// parallel gets, up to the stream's last sequence. Direct gets are enabled on
// the stream only with one replica; with more, gets go through the stream
// leader so that a read always sees acknowledged appends.
//
// A message that is not a journal message (published on a journal subject
// by something other than this backend: no valid headers, a truncated
// envelope) holds no record. ReadAll returns the records before it, or,
// when it is the first message read, a *persistence.CorruptRecordError with
// Position s*1000 and Next s*1000+999, after which a read starts at
// sequence s+1. Head counts such a message as ending at s*1000+999. Load of
// the order its subject names fails (the order is quarantined).
//
// # Key-value buckets
//
// Buckets <Stream>_checkpoints and <Stream>_snapshots (history 1). Keys
// outside [A-Za-z0-9_-] are stored base64url-encoded behind "=". A snapshot
// is stored with a revision check and only replaces a lower version.
package nats
