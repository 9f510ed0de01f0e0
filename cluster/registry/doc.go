// Package registry is the contract of cluster membership registries: a
// record per member incarnation (MemberRecord) kept under a lease that
// expires unless renewed (Registry), and an in-memory registry. The Redis
// (cluster/redisreg) and NATS KV (cluster/natsreg) registries implement it
// and pass the suite in registry/registrytest. It links no protoactor code,
// so neither do they.
package registry
