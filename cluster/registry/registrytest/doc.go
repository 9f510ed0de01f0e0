// Package registrytest is the contract suite every registry.Registry must
// pass (memory, Redis, NATS KV): register, list, renew, lease expiry,
// ErrLeaseLost after expiry or for another incarnation's record, deregister
// only one's own record, and separate records for two incarnations of one
// node. A backend's test calls Run with a factory of fresh registries.
package registrytest
