// Package metrics holds a node's Prometheus metrics: HTTP requests, order
// commands, journal appends, the outbox, active order actors, cluster
// membership and backend health, plus the Go runtime and process collectors.
//
// Each Metrics has its own registry (never the global one), so that a test
// process can run several nodes. Every method is safe for concurrent use, and
// every method is a no-op on a nil *Metrics, so the data path can call them
// unconditionally whether metrics are enabled or not.
package metrics
