package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/textproto"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ordersystem/ordersystem/metrics"
)

// MaxRequestIDLength is the longest X-Request-Id taken from a request.
const MaxRequestIDLength = 128

// headerReplayed marks an answer replayed for a reused Idempotency-Key.
const headerReplayed = "Idempotent-Replayed"

// routeUnmatched is the route label of requests that matched no route.
const routeUnmatched = "unmatched"

type requestInfoKey struct{}

// requestInfo is the context of a request below the observe middleware:
// its parent (the request's context) with the request's id and logger,
// one allocation where context.WithValue and the value would be two. It
// also holds the values of the answer's X-Request-Id and traceparent
// headers, which would be a slice each.
type requestInfo struct {
	context.Context
	id   string
	base *slog.Logger
	once sync.Once
	log  *slog.Logger // base with request_id, made on first use

	idHeader, traceHeader [1]string
}

// Value implements context.Context.
func (ri *requestInfo) Value(key any) any {
	if key == (requestInfoKey{}) {
		return ri
	}
	return ri.Context.Value(key)
}

// logger returns the request's logger. It is built on first use: most
// requests log nothing, and slog's With costs an allocation per request.
func (ri *requestInfo) logger() *slog.Logger {
	ri.once.Do(func() { ri.log = ri.base.With(slog.String("request_id", ri.id)) })
	return ri.log
}

// RequestID returns the id of the request that ctx belongs to (the
// X-Request-Id it sent, or the one minted for it), or "" outside a request.
func RequestID(ctx context.Context) string {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

// requestLogger returns the logger of the request that ctx belongs to (it
// carries request_id), or fallback.
func requestLogger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri.logger()
	}
	return fallback
}

// saneRequestID reports whether a client's X-Request-Id can be reused:
// 1 to MaxRequestIDLength printable ASCII characters.
func saneRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// methodLabel bounds the method label: a client may send any token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// routeLabel is the route template the request matched (/orders/:id), never
// the raw path, so that the label's values are bounded.
func (a *api) routeLabel(c echo.Context) string {
	if p := c.Path(); a.routes[p] {
		return p
	}
	return routeUnmatched
}

// headerRequestID is X-Request-ID in the form net/http keeps header names
// in, so that the request's id is read and written without canonicalizing
// the name each time.
var headerRequestID = textproto.CanonicalMIMEHeaderKey(echo.HeaderXRequestID)

// observe is the outermost middleware: it gives the request its id (taken
// from X-Request-Id when sane, else minted), echoes it in the answer, puts a
// logger carrying it in the request's context, starts its trace (startTrace),
// writes the answer of a
// failed handler at once (so that its status is known), records the HTTP
// metrics and logs the request: at DEBUG, or at WARN when it failed with a
// 5xx. Nothing of the request's headers or query is logged.
func (a *api) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		var id string
		if v := r.Header[headerRequestID]; len(v) > 0 {
			id = v[0]
		}
		if !saneRequestID(id) {
			id = newRequestID()
		}
		ri := &requestInfo{Context: r.Context(), id: id, base: a.cfg.Logger}
		ri.idHeader[0] = id
		c.Response().Header()[headerRequestID] = ri.idHeader[:]
		ctx, span := a.startTrace(c, ri, ri.traceHeader[:])
		c.SetRequest(r.WithContext(ctx))

		err := next(c)
		if err != nil {
			c.Error(err) // errorHandler writes the answer now
		}
		status := c.Response().Status
		endTrace(span, status)
		route, method, d := a.routeLabel(c), methodLabel(r.Method), time.Since(start)
		a.cfg.Metrics.ObserveHTTP(route, method, status, d)

		level := slog.LevelDebug
		if status >= http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		if !a.cfg.Logger.Enabled(ctx, level) {
			return nil
		}
		attrs := []slog.Attr{
			slog.String("method", method),
			slog.String("route", route),
			slog.String("path", truncate(r.URL.Path, 200)),
			slog.Int("status", status),
			slog.Duration("latency", d),
			slog.Int64("bytes", c.Response().Size),
		}
		msg := "request"
		if level == slog.LevelWarn {
			msg = "request failed"
			if err != nil {
				attrs = append(attrs, slog.String("error", err.Error()))
			}
		}
		ri.logger().LogAttrs(ctx, level, msg, attrs...)
		return nil
	}
}

// command wraps the handler of an order command to count its outcome.
func (a *api) command(name string, h echo.HandlerFunc) echo.HandlerFunc {
	if a.cfg.Metrics == nil {
		return h
	}
	return func(c echo.Context) error {
		err := h(c)
		a.cfg.Metrics.ObserveCommand(name, commandOutcome(c, err))
		return err
	}
}

// commandOutcome classifies the answer to a command for the metrics.
func commandOutcome(c echo.Context, err error) string {
	if err == nil {
		if c.Response().Header().Get(headerReplayed) == "true" {
			return metrics.OutcomeReplayed
		}
		return metrics.OutcomeOK
	}
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return metrics.OutcomeInvalid
	case errors.As(err, &ae):
		switch ae.status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return metrics.OutcomeInvalid
		case http.StatusNotFound:
			return metrics.OutcomeNotFound
		case http.StatusConflict:
			return metrics.OutcomeConflict
		case http.StatusServiceUnavailable:
			return metrics.OutcomeUnavailable
		}
	}
	return metrics.OutcomeInternal
}
