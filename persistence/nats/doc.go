// Package nats is the NATS JetStream persistence backend: the event journal
// in one JetStream stream per partition, the partition count, checkpoints and
// snapshots in three JetStream key-value buckets. It connects by itself (Options.URL) or works on a
// connection it is handed (Options.Conn), which it then shares with the
// node's other NATS users and does not close; either way it ends the
// operations in flight as soon as the connection drops.
//
// # Journal layout
//
// The journal is split into P partitions (Options.Partitions; the order id
// maps to persistence.PartitionOf(id, P)), and partition p is the stream
// <Stream>_P<p> (Options.Stream, default ORDERS_JOURNAL) on the subjects
// <SubjectPrefix>.p<p>.* (default orders.journal.p<p>.*); order <id> lives
// on <SubjectPrefix>.p<p>.<id>, so order ids are limited to [A-Za-z0-9_-]
// (others are refused with persistence.ErrInvalidArgument). One stream per
// partition gives each partition a dense sequence of its own (its log's
// positions), cheap Head and Behind from the stream's state, and its own
// raft group on a cluster, so the leaders, and the write load, spread over
// the servers. The streams deny message delete and purge: the journal is
// append-only.
//
// The partition count is stored in the bucket <Stream>_meta (key
// "partitions"), created if absent at the first start; every New reads it
// and checks Options.Partitions against it (persistence.ResolvePartitions:
// a different count is refused with a *persistence.PartitionMismatchError).
// The single-stream layout of earlier versions (stream <Stream> on
// <SubjectPrefix>.*, whose subjects do not overlap the partitions') is not
// read: New refuses with ErrLegacyJournal when such a stream holds messages
// and no count is stored, rather than start an empty journal beside it.
//
// Two backends on one server need different streams and subject prefixes
// (JetStream refuses a stream whose subjects overlap another's). A node of
// cluster <name> uses ORDERS_JOURNAL_<NAME>_P<p> on <name>.orders.journal.p<p>.*;
// the default cluster "ordersystem" keeps ORDERS_JOURNAL_P<p> on
// orders.journal.p<p>.*.
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
// Record i (0-based) of the message with sequence s in its partition's
// stream has position s*1000 + i in that partition's log: strictly
// increasing in commit order but not dense (the contract allows gaps), and
// readable (position 42003 is record 3 of message 42). An append therefore
// holds at most 1000 records (the same ceiling NATS puts on an atomic
// batch). Head minus a checkpoint is about 1000 times the number of
// messages behind; Behind counts messages.
//
// # Reads, and a JetStream cluster
//
// No read uses a consumer. Load looks up the order's last message (a get
// by subject) and reads the messages after the cached prefix with
// next-by-subject gets, one round trip per message (an order is a handful
// of appends; a long one costs one round trip per append the first time
// and only its new messages after that). ReadAll asks the stream for its
// last sequence and gets the sequences after the position by number, 64
// in parallel. Head is the stream's state and its last message.
//
// With one replica the streams allow direct gets (any server with the
// stream answers, without the JetStream API). With more, direct gets are
// off and every get goes to the stream leader: a direct get may be
// answered by a follower that has not applied the newest appends yet, and
// ReadAll must see every acknowledged append once Head shows it (the
// outbox checks its lag against Head), and Load the order's last append.
// A consumer, by contrast, lives on one server: when that server dies,
// reads through it stall until it returns (what the earlier layout did for
// long reads). A leader get needs only a leader: when a stream leader's
// server is lost, the remaining replicas elect a new one within seconds
// (nats-server's raft election timeout), reads fail with
// persistence.ErrUnavailable meanwhile, and the caller's retry then
// succeeds; nothing waits for the lost server to return.
// (TestFailoverKillPartitionLeader measures it on a three-server cluster.)
//
// A clustered stream refuses an append with Nats-Expected-Last-Subject-
// Sequence while another append to the same order is proposed but not yet
// applied, before the head shows it; Append looks the head up again a few
// times (pausing 1 to 16 ms) and then reports a *persistence.ConflictError,
// as for any concurrent writer.
//
// A message that is not a journal message (published on a journal subject
// by something other than this backend: no valid headers, a truncated
// envelope) holds no record. ReadAll returns the records before it, or,
// when it is the first message read, a *persistence.CorruptRecordError with
// the partition, Position s*1000 and Next s*1000+999, after which a read starts at
// sequence s+1. Head counts such a message as ending at s*1000+999. Load of
// the order its subject names fails (the order is quarantined).
//
// # Key-value buckets
//
// Buckets <Stream>_checkpoints and <Stream>_snapshots (history 1, as many
// replicas as the streams). Keys
// outside [A-Za-z0-9_-] are stored base64url-encoded behind "=". A snapshot
// is stored with a revision check and only replaces a lower version.
//
// Bucket <Stream>_rmsnap holds the read-model snapshots
// (persistence.ReadModelSnapshots): per partition N a manifest under key
// p<N>.m and chunks p<N>.<generation>.<i> of at most the server's max
// payload less 4 KiB (1 MiB at most). The chunks are written first, the
// manifest then replaced with a revision check (so each of two concurrent
// writers knows exactly which generation it replaced and purges its
// chunks). A writer that dies between its chunks and its manifest leaves
// chunks that no manifest names (space, not a wrong answer). The meta
// bucket's key "journal" holds the journal identity.
package nats
