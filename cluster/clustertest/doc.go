// Package clustertest runs several OrderSystem cluster members in one
// process, each with its own actor system, real gRPC on loopback and a
// cluster.LeaseProvider on a shared registry (in memory, Redis or NATS KV),
// and breaks them the way processes break: Kill (dies without
// deregistering), Pause (SIGSTOP of the membership loop), Restart (a new
// incarnation with the same node id), Leave (graceful shutdown).
//
// Every member hosts the echo kind (EchoKind): a grain that answers a
// wrapperspb.StringValue with the node id of the member hosting it, so a
// test sees where an identity lives.
//
// Members are full (cluster.Start: remote endpoint, gossip, grains) or,
// with Options.Bare, membership only (an actor system and protoactor's
// MemberList driven by the provider). Full members cannot run several to a
// process under the race detector, because protoactor races between
// in-process members (see harness_test.go), so their tests build without
// -race only: `go test ./cluster/clustertest/` (about a minute). Bare
// members run the provider scenarios under -race in seconds.
//
// A Harness belongs to one test: Start registers its cleanup, which stops
// every member and closes the registries. Methods are safe for concurrent
// use, except that one member must not be killed, restarted or left from
// two goroutines at once.
package clustertest
