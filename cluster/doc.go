// Package cluster boots an OrderSystem node's actor system as a protoactor
// cluster member (a one-member cluster in standalone mode, so that the same
// code path serves both modes), provides membership providers, and offers
// Request: a cluster call with explicit per-call timeouts and retries that
// never touches protoactor's package-global call configuration.
package cluster
