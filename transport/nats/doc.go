// Package nats is the transport on a NATS JetStream stream (client: nats.go
// and its jetstream package, imported as natsgo and jetstream).
//
// Wire format, which other services rely on: the stream Options.Stream
// (default "ORDER_EVENTS") holds the subjects "<prefix>.*" with the prefix
// Options.SubjectPrefix (default "orders.events"); a message is published on
// "<prefix>.<Type>" (orders.events.OrderCreated, OrderPaid, OrderShipped,
// OrderDelivered, OrderCancelled), its data is the encoded orderpb.Event
// (raw protobuf bytes) and its headers are
//
//	Nats-Msg-Id            "<orderId>:<version>", the event id
//	Ordersystem-Order-Id   the order id
//	Ordersystem-Version    the order version, decimal
//	Ordersystem-Type       the event type name
//
// so consumers need not decode the payload. A node of cluster <name> uses
// the stream ORDER_EVENTS_<NAME> (upper case) on "<name>.orders.events.*"
// instead; the default cluster "ordersystem" keeps ORDER_EVENTS on
// orders.events.*, so the two never overlap. New creates the stream or
// updates its configuration (file storage, limits retention with
// Options.MaxMsgs, duplicate window Options.DuplicateWindow, default two
// minutes). Within the window the server drops a second publish of the same
// event id, so a retried Publish does not duplicate events.
//
// Publish sends the batch with asynchronous publishes and waits for every
// acknowledgement (bounded by ctx and Options.AckTimeout); messages of one
// batch are stored in batch order.
//
// Durable groups are durable pull consumers named after
// SubscribeOptions.Group with explicit acknowledgement, AckWait
// Options.AckWait, unlimited redeliveries, and deliver policy "new": a group
// that does not exist yet receives what is published after its first
// Subscribe returns, an existing group resumes where it left off. Every member
// of a group pulls from the same consumer, so the server spreads the messages
// over them; a message not acknowledged within AckWait (its member died) is
// redelivered to any member. Members acknowledge each message after the
// handler accepted its batch, mark the batch in progress before each retry
// after a handler error, and negatively acknowledge (for prompt redelivery)
// what they hold when they close.
//
// Ephemeral subscriptions are pull consumers of their own (named
// ordersystem_eph_<random>, no acks, memory storage, Options.Replicas
// replicas, deliver policy "new"), created before Subscribe returns,
// deleted by Close and removed by the server after two minutes without a
// pull should the node die. (nats.go's ordered consumer is not used: it
// re-creates its single-replica consumer inside Next without a deadline,
// and on a cluster that lost a server that can block for minutes.)
//
// On a JetStream cluster every subscription outlives the loss of a server:
// when the iterator stops, the consumer is deleted or not found, or
// heartbeats go missing twice in a row, the subscription makes its consumer
// again (a group's durable one with CreateOrUpdate, resuming where the
// group stands; an ephemeral one fresh, from the stream sequence after the
// last message it delivered), retrying with backoff, each attempt bounded
// by Options.RequestTimeout. TestClusterKillStreamLeader and
// TestClusterKillEphemeralConsumerLeader SIGKILL a server of three.
//
// The transport connects by itself (Options.URL) or works on a connection
// it is handed (Options.Conn), which it then shares with the node's other
// NATS users and does not close: publishing and every subscription use that
// one connection.
package nats
