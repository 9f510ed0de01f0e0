package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/redact"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds connecting, so Connect fails fast.
	DefaultTimeout = 2 * time.Second
	// DefaultReconnectWait is the first pause between reconnection
	// attempts; it doubles up to DefaultReconnectMax.
	DefaultReconnectWait = 250 * time.Millisecond
	// DefaultReconnectMax caps the pause between reconnection attempts.
	DefaultReconnectMax = 2 * time.Second
)

// Options configures a connection made by Connect.
type Options struct {
	// URL is the server URL, or several separated by commas; it may carry
	// credentials (nats://user:pass@host:4222, nats://token@host:4222).
	URL string
	// Name is the connection name the server shows (default "ordersystem").
	Name string
	// CredsFile is an optional NATS credentials file (JWT and nkey seed).
	CredsFile string
	// Timeout bounds connecting (default DefaultTimeout); a shorter
	// deadline of Connect's context wins.
	Timeout time.Duration
	// ReconnectWait and ReconnectMax bound the pause between reconnection
	// attempts (defaults DefaultReconnectWait and DefaultReconnectMax).
	ReconnectWait, ReconnectMax time.Duration
	// Logger receives the connection's events: disconnects and
	// asynchronous errors (warn), reconnects (info). Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = "ordersystem"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = DefaultReconnectWait
	}
	if o.ReconnectMax < o.ReconnectWait {
		o.ReconnectMax = max(DefaultReconnectMax, o.ReconnectWait)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Connect connects to o.URL. After a successful connect the connection
// reconnects by itself forever, pausing ReconnectWait, then twice as long
// each time up to ReconnectMax (with jitter), and while it is disconnected
// every publish and request fails at once instead of being buffered: a
// buffered journal append could land long after its caller gave up. The
// caller owns the connection and closes it after every backend that uses
// it. A failed connect returns nats.go's error (nats.ErrNoServers for an
// unreachable server, nats.ErrAuthorization for refused credentials, ...).
func Connect(ctx context.Context, o Options) (*natsgo.Conn, error) {
	o.setDefaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Millisecond, min(timeout, time.Until(d)))
	}
	log := o.Logger.With(slog.String("nats_url", redact.URL(o.URL)), slog.String("connection", o.Name))
	opts := []natsgo.Option{
		natsgo.Name(o.Name),
		natsgo.Timeout(timeout),
		natsgo.MaxReconnects(-1),
		natsgo.CustomReconnectDelay(backoff.Policy{Base: o.ReconnectWait, Max: o.ReconnectMax}.Delay),
		natsgo.ReconnectBufSize(-1),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			log.Warn("nats: disconnected", slog.Any("error", err))
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			log.Info("nats: reconnected", slog.String("server", nc.ConnectedUrlRedacted()))
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			attrs := []any{slog.Any("error", err)}
			if sub != nil {
				attrs = append(attrs, slog.String("subject", sub.Subject))
			}
			log.Warn("nats: asynchronous error", attrs...)
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, natsgo.UserCredentials(o.CredsFile))
	}
	return natsgo.Connect(o.URL, opts...)
}

// JetStream API error codes (nats-server's server/errors.json) that mean
// the cluster cannot serve a request for now rather than that the request
// is wrong.
const (
	// "no suitable peers for placement": too few servers online to place a
	// replicated stream, while a cluster forms or one of its servers is down.
	jsClusterNoPeers jetstream.ErrorCode = 10005
	// "JetStream cluster can not handle request": no meta leader yet.
	jsClusterNotLeader jetstream.ErrorCode = 10009
	// "stream is offline": its replicas have no leader yet.
	jsStreamOffline jetstream.ErrorCode = 10118
)

// Transient reports whether a JetStream API error is one that retrying can
// fix: the system is temporarily unavailable (503, a 408 timeout), there is
// no leader yet, or a replicated stream has too few online peers to be
// placed. Any other API error is a refusal of the request itself (a bad
// configuration, replicas on a server without a cluster, a name in use)
// and false. An error that carries no API error is not judged here:
// callers treat those (timeouts, no responders, a dropped connection) as
// unavailable.
func Transient(err error) bool {
	var jerr jetstream.JetStreamError
	if !errors.As(err, &jerr) {
		return false
	}
	api := jerr.APIError()
	if api == nil {
		return false
	}
	switch api.ErrorCode {
	case jsClusterNoPeers, jsClusterNotLeader, jsStreamOffline:
		return true
	}
	return api.Code == 503 || api.Code == 408
}
