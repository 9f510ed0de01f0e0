// Package transport publishes order events to other services and delivers
// them to subscribers. Backends live in sub-packages (memory, redis, nats);
// every one passes the contract suite in transporttest.
//
// The wire format other services consume:
//   - NATS: JetStream stream ORDER_EVENTS, subjects orders.events.<Type>,
//     header Nats-Msg-Id: <orderId>:<version>, payload = orderpb.Event bytes.
//   - Redis: stream key orders:events, fields eventId (<orderId>:<version>),
//     type, payload (orderpb.Event bytes).
//
// Delivery is at-least-once: consumers deduplicate by event id
// (Message.ID). Messages of one order arrive in the order they were
// published, to an ephemeral subscription and to each member of a group;
// only a redelivery after a member failed can come late.
//
// Identifiers travel in subjects, headers and stream fields, so they are
// checked before anything is sent: see ValidateBatch and ValidateGroup.
// Errors: ErrUnavailable (the server could not be reached or did not answer;
// retry), ErrClosed (after Close), ErrInvalidArgument (a malformed call).
package transport
