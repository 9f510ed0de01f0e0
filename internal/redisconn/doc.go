// Package redisconn is the Redis plumbing the Redis backends (journal,
// transport, membership registry) share: the one parser of the --redis
// address (host:port, or a redis:// or rediss:// URL with a user, a password
// and a database), the one decision of which Redis errors mean "retry later",
// and the constructor of the go-redis client with the settings every backend
// relies on (bounded timeouts, no hidden retries).
//
// A node opens one client with New and hands it to every backend, which use
// it through the goredis.UniversalClient interface and never close it. New
// follows go-redis' universal-client convention: one address is a
// single-server client, a comma-separated list the seeds of a Redis
// Cluster, and a master name makes the list Sentinels (a failover client).
package redisconn
