// Package node assembles one OrderSystem node from its parts: persistence and
// transport backends, the read model and its subscription, the order and
// outbox actors on a protoactor cluster member, health checks and the HTTP
// API; and takes it down again in the order that loses nothing.
package node
