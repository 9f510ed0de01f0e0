package natsconn

import (
	"context"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"

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
