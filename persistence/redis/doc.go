// Package redis is the Redis persistence backend: the event journal,
// checkpoints and snapshots of OrderSystem kept in one Redis server
// (standalone, or a primary with replicas when Options.WaitReplicas is set),
// through a client of its own or one it is handed (Options.Client), which
// it then shares with the node's other Redis users and does not close.
//
// # Key layout
//
// Every key starts with Options.Prefix (default "ordersystem:"):
//
//	<prefix>log              Redis Stream, the global log. Entry id "0-<position>",
//	                         fields s (stream id), v (version), t (type), d (data).
//	<prefix>seq              string counter: the last position handed out (Head).
//	<prefix>stream:<id>      list of the positions of stream <id>'s records, in
//	                         version order; its length is the stream's version.
//	<prefix>checkpoints      hash: checkpoint name -> position.
//	<prefix>snapshot:<id>    hash {v: version, d: data}: the newest snapshot.
//
// Each event is stored once (in the log); a stream list holds positions only.
//
// Two backends with different prefixes share nothing: a node uses
// "<cluster-name>:" (the default cluster "ordersystem" keeps "ordersystem:"),
// so clusters on one server keep apart their orders, the command ids
// journaled with them, the outbox checkpoint and the snapshots.
//
// # Appends
//
// One Lua script (EVALSHA, re-loaded after a server restart) checks the
// stream's length against the expected version, takes positions from the
// counter, XADDs the records to the log and RPUSHes their positions to the
// stream list: all records or none, and a conflict reply with the actual
// version when the stream moved. Positions are dense and strictly increasing
// in commit order because Redis runs scripts one at a time.
//
// Concurrent appends are group-committed: callers hand their append to two
// committer goroutines (owned by the Backend, stopped by Close), each of which
// sends whatever is waiting (up to Options.MaxBatch) as one pipeline of
// EVALSHA calls, followed by one WAIT when Options.WaitReplicas is set, while
// the other one waits for its replies. Each append still runs as its own
// script and gets its own result; the pipeline only saves round trips (with
// 32 concurrent writers it doubles the appends per second). A caller whose
// context ends while its append waits gets ErrUnavailable; the append may
// still be committed, as ErrUnavailable allows.
//
// Nothing but the script may write the log, the counter or the stream lists:
// the counter must stay ahead of the log's last id.
//
// # Entries outside the layout
//
// Whoever can write the server can still add to the log by hand. ReadAll
// reports an entry 0-<position> without a stream, a version and a type as a
// *persistence.CorruptRecordError (Next is that position), so that readers
// skip exactly that entry. An entry with any other id (an XADD with an id
// of Redis's making) sorts after every entry the script writes: ReadAll
// stops before it and logs it once (Options.Logger); appends fail while it
// is there, because Redis refuses the lower ids the script adds after it
// (each failed append still takes a position from the counter, which then
// holds nothing). The repair is XDEL of the entry and XSETID of the log
// back to the last record's id.
//
// For Redis Cluster all keys must live in one slot: use a hash-tag prefix
// such as "{ordersystem}:" (this backend opens a standalone client only).
package redis
