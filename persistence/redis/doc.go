// Package redis is the Redis persistence backend: the event journal,
// checkpoints and snapshots of OrderSystem kept in Redis: one server
// (standalone, or a primary with replicas when Options.WaitReplicas is set),
// a Redis Cluster (Options.Addr a comma-separated list of seeds, or a
// cluster client in Options.Client), or a Sentinel-managed primary (a
// failover client in Options.Client). The client is its own or one it is
// handed (Options.Client), which it then shares with the node's other Redis
// users and does not close.
//
// # Key layout
//
// The journal has P partitions (Options.Partitions, stored at first start;
// see persistence.Journal); order <id> lives in partition
// N = persistence.PartitionOf(id, P). Every key starts with Options.Prefix
// (default "ordersystem:"):
//
//	<prefix>meta                  hash {partitions: P, journal: identity}, each
//	                              field written once (HSETNX) by the first start
//	                              and read at every open: another configured count
//	                              is refused; the identity (random) tells a wiped
//	                              and restarted journal from the one a read-model
//	                              snapshot was made of.
//	<prefix>{p<N>}:log            Redis Stream, partition N's log. Entry id
//	                              "0-<position>", fields s (stream id), v (version),
//	                              t (type), d (data).
//	<prefix>{p<N>}:seq            string counter: partition N's last position (Head).
//	<prefix>{p<N>}:stream:<id>    list of the positions of stream <id>'s records in
//	                              its partition's log, in version order; its length
//	                              is the stream's version.
//	<prefix>{p<N>}:checkpoint:<name>
//	                              string: partition N's checkpoint <name> (the
//	                              outbox's outbox-<N>), through
//	                              persistence.LogCheckpoints.
//	<prefix>checkpoints           hash: checkpoint name -> position, for the
//	                              checkpoints of no partition (Backend.LoadCheckpoint
//	                              and SaveCheckpoint); earlier releases kept the
//	                              outbox's there too (see below).
//	<prefix>snapshot:<id>         hash {v: version, d: data}: the newest snapshot.
//	<prefix>{p<N>}:rmsnap         string: the manifest of partition N's read-model
//	                              snapshot (persistence.EncodeSnapshotManifest).
//	<prefix>{p<N>}:rmsnap:<g>:<i> string: chunk i (4 MiB at most) of generation g.
//	                              Written with a one-hour expiry; the commit script
//	                              makes them permanent, swaps the manifest and
//	                              returns the one it replaced, whose chunks are
//	                              then deleted.
//
// Each event is stored once (in its partition's log); a stream list holds
// positions only. The keys of one partition share the hash tag {p<N>}, so
// they live in one slot of a Redis Cluster and one script reaches all of
// them, while different partitions spread over the cluster's shards (how
// evenly depends on which slots the tags hash to and how the slots are
// assigned: with 16 partitions on 3 shards expect some shards to hold more
// partitions than others). A partition's checkpoints share its tag too, so
// losing a shard stalls only its own partitions' outboxes, and one MGET
// reads a checkpoint with its partition's counter (Head). Order snapshots,
// the checkpoints hash and the meta key are single-key commands and live
// wherever their slots are.
//
// A partition's checkpoint that has no key yet but a field of that name in
// the <prefix>checkpoints hash (where earlier releases kept every outbox
// checkpoint) is read from the hash once and written to its key with SETNX;
// after that only the key is used. The hash is never deleted or changed by
// the move.
//
// A prefix that holds a journal of the older, unpartitioned layout (a
// <prefix>log key and no meta key) is refused at open with
// persistence.ErrInvalidArgument, never read as an empty journal; there is
// no migration.
//
// Two backends with different prefixes share nothing: a node uses
// "<cluster-name>:" (the default cluster "ordersystem" keeps "ordersystem:"),
// so clusters on one server keep apart their orders, the command ids
// journaled with them, the outbox checkpoints and the snapshots.
//
// # Appends
//
// One Lua script (EVALSHA, re-loaded after a server restart) checks the
// stream's length against the expected version, takes positions from the
// partition's counter, XADDs the records to the partition's log and RPUSHes
// their positions to the stream list: all records or none, and a conflict
// reply with the actual version when the stream moved. Positions are dense
// and strictly increasing in commit order within a partition because Redis
// runs scripts one at a time and a partition's keys are on one server.
//
// Concurrent appends are group-committed: callers hand their append to two
// committer goroutines (owned by the Backend, stopped by Close), each of which
// sends whatever is waiting (up to Options.MaxBatch) as one pipeline of
// EVALSHA calls, followed by one WAIT when Options.WaitReplicas is set, while
// the other one waits for its replies. Each append still runs as its own
// script and gets its own result; the pipeline only saves round trips (with
// 32 concurrent writers it doubles the appends per second). On a cluster
// client go-redis splits the pipeline by node and follows MOVED and ASK
// redirects; the scripts are loaded on every primary at start and re-loaded
// (on every primary) after a NOSCRIPT reply.
//
// WAIT counts the replicas that have the writes of the connection it runs
// on, so on a cluster with WaitReplicas the committer splits each batch
// itself: it looks up the primary that owns each append's partition now
// (ClusterClient.MasterForKey) and sends one pipeline per primary, its
// appends followed by one WAIT, all primaries at once. A reply that says
// the topology moved (a network error, MOVED, CLUSTERDOWN, READONLY) fails
// those appends with ErrUnavailable (the caller retries) and makes the
// cluster client reload the slot map, so that a promoted replica takes the
// next batches. A caller whose
// context ends while its append waits gets ErrUnavailable; the append may
// still be committed, as ErrUnavailable allows.
//
// An append refused as not replicated is still on the primary, and a later
// read finds it. Sync (persistence.Syncer) tells whether a stream's records
// are as durable as an acknowledged append now: with WaitReplicas it sends
// INCRBY <partition counter> 0 (a write that changes nothing but moves the
// connection's replication offset past every record before it) and WAIT to
// the partition's primary; the order actor asks it before it answers a
// retried command from the journal.
//
// Nothing but the script may write a log, its counter or the stream lists:
// a counter must stay ahead of its log's last id (Sync's INCRBY by 0
// changes no value).
//
// # Entries outside the layout
//
// Whoever can write the server can still add to a log by hand. ReadAll
// reports an entry 0-<position> without a stream, a version and a type as a
// *persistence.CorruptRecordError (with its partition; Next is that
// position), so that readers
// skip exactly that entry. An entry with any other id (an XADD with an id
// of Redis's making) sorts after every entry the script writes: ReadAll
// stops before it and logs it once (Options.Logger); appends fail while it
// is there, because Redis refuses the lower ids the script adds after it
// (each failed append still takes a position from the counter, which then
// holds nothing). The repair is XDEL of the entry and XSETID of the log
// back to the last record's id.
//
// A prefix should not hold braces: a hash tag in it ("{ordersystem}:") would
// put every key in one slot, which works but leaves a cluster's other
// shards idle.
package redis
