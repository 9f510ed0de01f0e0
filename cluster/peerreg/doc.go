// Package peerreg is a registry.Registry without a server: static
// membership over a fixed list of peers (the node's --peers), for clusters
// that have no shared backend (in-memory experiments).
//
// Each member keeps the records it registered itself, under their leases,
// in its own memory, and serves them over HTTP (HTTPS with mutual TLS when
// TLS configs are given) at one path on its membership address. List asks
// every peer at once, each with a short timeout, and returns this member's
// own live records plus the records its peers reported:
//
//   - A peer that answers replaces what was known of it: a record it no
//     longer serves (deregistered, expired) is gone at once.
//   - A peer that does not answer in time (paused, overloaded, cut off)
//     keeps its last reported records until the lease it reported for each
//     runs out, counted from when the request was sent, so a single slow
//     answer does not drop a live member (which protoactor would block for
//     good) and a dead one disappears within its lease, as with the Redis
//     and NATS registries.
//   - A peer that refuses the connection (nothing listens: the process is
//     gone) is dropped at once.
//
// Register, Renew and Deregister act on this member's own records only:
// a member renews its own lease, locally. The lease therefore cannot be
// lost to a backend; what the LeaseProvider on top still catches is a
// member that was paused past its lease (it fences itself and rejoins as a
// new incarnation) while the others dropped it.
//
// With Options.Secret set, a request must carry it (Authorization: Bearer,
// compared in constant time) or gets 401 and no record; members send it to
// every peer. Over plain HTTP the secret travels in clear text: bind the
// membership address to loopback or a private network, or give TLS configs.
// Answers are bounded (size, number of records, lease length) and every
// record is validated; a peer of another cluster (Options.Cluster) is
// ignored.
//
// Wire format (GET Path): {"cluster": name, "members": [{"record":
// <registry.MemberRecord canonical JSON>, "leaseMillis": remaining lease}]}.
package peerreg
