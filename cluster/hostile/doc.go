// Package hostile holds the hostile-world test suite of the node-to-node
// port: real gRPC clients (protoactor's generated RemotingClient) that
// probe a running two-member cluster, a node started the way the binary
// starts one (cluster mode on Redis), a member behind mutual TLS and a
// standalone node, the way an attacker on the same network would. Each
// probe must be refused, and the target must still serve afterwards.
//
// It has no code but its tests. Run it, with the figures per probe kind:
//
//	go test -run Hostile -v ./cluster/hostile/
package hostile
