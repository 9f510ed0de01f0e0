// Package cluster boots an OrderSystem node's actor system as a protoactor
// cluster member (a one-member cluster in standalone mode, so that the same
// code path serves both modes), provides membership providers, and offers
// Request: a cluster call with explicit per-call timeouts and retries that
// never touches protoactor's package-global call configuration.
//
// Node is one incarnation of a member (one actor system, one member id).
// Member is the process's member across incarnations: when its lease
// provider fences itself, it stops the fenced incarnation and joins again
// as a new one, so its callers never swap members themselves; it also
// replaces an incarnation whose placement actor stopped (Member.Check).
//
// The node-to-node port is guarded (wireguard.go): every call
// authenticates with a token derived from the cluster secret (peerauth.go,
// PeerCredentials), handlers run under recover, only protoactor's message
// stream is served, and each message is screened before protoactor reads
// it. A standalone node (Config.LocalOnly) keeps no node-to-node listener.
package cluster
