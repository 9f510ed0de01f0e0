// Package redisreg is a registry.Registry on Redis: one key per member,
// written with SET NX PX and renewed by a Lua script that extends the key
// only while it still holds the member's own record.
//
// Key layout: <Prefix>members:<Cluster>:<memberID>, value = the member
// record's canonical JSON (registry.MemberRecord.Encode), PX = the lease.
// A dead member's key disappears when its lease runs out (Redis expiry), so
// the others stop listing it.
//
// List is SCAN MATCH <Prefix>members:<Cluster>:* plus MGET: O(keys in the
// database) per poll, fine for small clusters and a Redis that is not
// shared with millions of other keys; a very large deployment would keep a
// sorted set of members with expiry scores instead.
package redisreg
