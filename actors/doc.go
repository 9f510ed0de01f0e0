// Package actors holds the actors of an OrderSystem node: the order actor (a
// protoactor cluster kind whose identity is the order id, whose mailbox
// serializes the order's commands and whose journal stream is its event
// history), the outbox actor that drains the journal to the transport, and
// the client the HTTP layer uses to reach order actors anywhere in the
// cluster. The pure state machine lives in the order sub-package.
package actors
