// Package natsreg is a registry.Registry on a NATS JetStream key-value
// bucket.
//
// Layout: bucket Options.Bucket (default "<Cluster>_members", one per
// cluster, so "ordersystem_members" for the default cluster; file
// storage, so that the bucket and its records survive a server restart;
// history 1; Options.Replicas), key <Cluster>.<memberID>, value = the member
// record's canonical JSON (registry.MemberRecord.Encode). Register is
// kv.Create (fails if the key exists); Renew rewrites the key expecting the
// revision this registry last wrote there (one request), and when that
// revision is unknown or stale reads the key, checks it still holds our
// record and rewrites it at the read revision, so an expired, deleted or
// foreign key fails with registry.ErrLeaseLost; Deregister purges the key at
// our revision only.
//
// A bucket that vanished (a server restarted with an empty store, a
// deleted stream, a failover to servers that never had it) is created again
// by the first call that finds its stream missing, and that call is retried
// on it: Renew then fails with registry.ErrLeaseLost (the record is gone),
// so the member fences and its next incarnation registers in the new
// bucket. A bucket created with memory storage by an older version is used
// as it is until it vanishes. List reads the keys present under <Cluster>.* from one
// stream-info request (the subjects of the bucket's stream) and Gets each:
// 1 + members requests per poll, fine for small clusters. (ListKeys, a KV
// watcher, can finish before it delivers a key renewed during the listing,
// which would drop a live member.)
//
// Expiry comes in two modes, chosen when the bucket is created (ModeAuto
// picks by the server's JetStream API level):
//
//   - ModeKeyTTL (nats-server 2.11+): the bucket allows per-message TTLs
//     (LimitMarkerTTL); Register creates the key with jetstream.KeyTTL and
//     Renew republishes it with a fresh Nats-TTL, so each member's record
//     expires on its own lease. Server TTLs are whole seconds: leases are
//     rounded up to the next second.
//   - ModeBucketTTL (older servers, such as 2.9): the bucket's MaxAge is
//     the lease, every write restarts a key's age, and a key that was not
//     rewritten for MaxAge disappears. The trade-off: the lease is a
//     property of the bucket, so every member must use the TTL the bucket
//     was created with (Register rejects another with ErrTTLMismatch), and
//     changing it means deleting the bucket.
//
// An existing bucket keeps its mode: one with LimitMarkerTTL is used in
// ModeKeyTTL, one with only MaxAge in ModeBucketTTL, one with neither is
// refused (records of dead members would never expire).
package natsreg
