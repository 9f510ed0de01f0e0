// Package redisreg is a registry.Registry on Redis: one key per member,
// written with SET NX PX and renewed by a Lua script that extends the key
// only while it still holds the member's own record.
//
// Key layout: <Prefix>members:<Cluster>:<memberID> (Prefix defaults to
// "<Cluster>:", so every key of a cluster starts with its name, and the
// default cluster "ordersystem" keeps ordersystem:members:ordersystem:),
// value = the member
// record's canonical JSON (registry.MemberRecord.Encode), PX = the lease.
// A dead member's key disappears when its lease runs out (Redis expiry), so
// the others stop listing it.
//
// Register also adds the member id to the set <Prefix>members:<Cluster>:index,
// and List reads that set and MGETs the members' keys: O(members) per poll,
// whatever else the database holds. Ids whose key expired are removed from
// the set by List. Register is one round trip (SET NX PX and SADD in
// MULTI/EXEC), Renew one (EVAL).
//
// Nothing has to exist beforehand: a Redis that lost its keys (a restart
// without persistence, FLUSHALL, a failover to a replica that missed the
// writes) makes Renew fail with registry.ErrLeaseLost, the member fences,
// and its next incarnation's Register creates the key and the index again.
//
// The registry works through a client of its own (Options.Addr) or one it
// is handed (Options.Client), which it then shares with the node's journal
// and transport and does not close.
package redisreg
