// Package retry delivers one batch to a subscription handler until the
// handler accepts it, waiting a capped exponential backoff between attempts.
// Every transport backend uses it, so that "a handler error asks for
// redelivery" means the same thing everywhere: the same batch, in the same
// order, to the same subscription, until it succeeds or the subscription
// closes (after which the backend's own redelivery takes over).
package retry
