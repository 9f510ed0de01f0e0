// Package registry is the contract of cluster membership registries: a
// record per member incarnation (MemberRecord) kept under a lease that
// expires unless renewed (Registry), and an in-memory registry. The Redis
// (cluster/redisreg), NATS KV (cluster/natsreg) and --peers (cluster/peerreg)
// registries implement it and pass the suite in registry/registrytest. It
// links no protoactor code, so neither do they.
package registry
