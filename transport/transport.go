package transport

import (
	"context"
	"errors"

	"github.com/ordersystem/ordersystem/order"
)

// Errors shared by every transport.
var (
	// ErrUnavailable means the transport's server could not be reached or
	// did not acknowledge in time; the publish may be retried.
	ErrUnavailable = errors.New("transport unavailable")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("transport closed")
)

// Message is one order event on the wire.
type Message struct {
	// OrderID and Version identify the event; ID() is "<OrderID>:<Version>".
	OrderID string
	Version uint64
	// Type is the event type name (OrderCreated, OrderPaid, ...).
	Type string
	// Payload is the encoded orderpb.Event.
	Payload []byte
}

// ID is the event id consumers deduplicate by.
func (m Message) ID() string { return order.EventID(m.OrderID, m.Version) }

// Handler processes a batch of delivered messages. Returning nil acknowledges
// the batch; returning an error asks for redelivery (at-least-once): every
// backend calls the handler again with the same batch after a backoff, until
// it returns nil or the subscription closes (after which a durable group's
// next member receives it). A handler is never called concurrently with
// itself for one subscription. ctx is canceled when the subscription or the
// transport is closing; a batch the handler then fails is redelivered later.
// The batch belongs to the handler; its payloads are read-only, since a
// backend may hand the same bytes to every subscriber (the in-memory one
// does).
type Handler func(ctx context.Context, batch []Message) error

// SubscribeOptions selects what a subscription receives.
type SubscribeOptions struct {
	// Group names a durable consumer group: every message is delivered to
	// one member of the group, and the group resumes where it left off after
	// a restart. A group that does not exist yet starts with the messages
	// published after its first Subscribe returns. Messages of one order
	// keep their order within each member; with several members they may
	// be spread over them. Group names are letters, digits, '_' and '-'
	// (see ValidateGroup).
	//
	// Empty means an ephemeral subscription that receives every message
	// published after Subscribe returns.
	Group string
}

// Transport publishes and delivers order events. Implementations are safe for
// concurrent use.
type Transport interface {
	// Publish sends the batch and returns only after the server acknowledged
	// every message (or with an error; some messages may then have been
	// published, which the event ids make harmless). Messages of one order
	// are delivered in the order published. A malformed batch is refused
	// whole with ErrInvalidArgument (see ValidateBatch); after Close,
	// Publish returns ErrClosed. The payloads must not change afterwards:
	// a backend may keep them (the in-memory one does; the outbox publishes
	// the journal's bytes, which never change). The batch slice itself is
	// the caller's again once Publish returns.
	Publish(ctx context.Context, batch []Message) error
	// Subscribe starts delivering messages to h until the returned
	// Subscription is closed or the transport is closed. ctx bounds the
	// setup (creating the group or consumer) only. Each subscription runs
	// one goroutine of its own, which Close stops.
	Subscribe(ctx context.Context, opts SubscribeOptions, h Handler) (Subscription, error)
	// Ping checks that the transport's server answers; after Close it
	// returns ErrClosed.
	Ping(ctx context.Context) error
	// Name is the backend name: inmemory, redis or nats.
	Name() string
	// Close stops every subscription and releases connections; idempotent.
	Close() error
}

// Subscription is a running subscription.
type Subscription interface {
	// Close stops delivery and waits for a running handler call to return; idempotent.
	Close() error
}
