package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ordersystem/ordersystem/feed"
	"github.com/ordersystem/ordersystem/internal/lazydeadline"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
	"github.com/ordersystem/ordersystem/readmodel"
)

// Orders reaches order actors (actors.OrderClient implements it). An error
// means the actor could not be reached; refusals come back in Reply.Error.
// It must be safe for concurrent use.
type Orders interface {
	// Command delivers a command (create, pay, ship, deliver, cancel).
	Command(ctx context.Context, orderID string, cmd *orderpb.Command) (*orderpb.Reply, error)
	// Get returns the order in Reply.Order.
	Get(ctx context.Context, orderID string) (*orderpb.Reply, error)
	// History returns the order's events in Reply.History.
	History(ctx context.Context, orderID string) (*orderpb.Reply, error)
	// AsOf returns in Reply.Order the order as it was at the point q names
	// (after q.Version, or at q.At when set), its Version the last event
	// folded in; a point the order does not reach is refused NOT_FOUND.
	AsOf(ctx context.Context, orderID string, q *orderpb.GetOrderAsOf) (*orderpb.Reply, error)
}

// ReadModel serves the query side (readmodel.ReadModel implements it).
type ReadModel interface {
	List(status order.Status, limit int, cursor string) ([]readmodel.Summary, string, error)
	Stats() readmodel.Stats
}

// Health answers the probes.
type Health interface {
	// Live reports whether the process and its actor system run.
	Live() error
	// Ready reports whether the node can serve writes now, with the state
	// of each component for GET /health.
	Ready(ctx context.Context) (ok bool, report HealthReport)
}

// Config wires the API to the node.
type Config struct {
	Orders Orders
	// Committed, if set, answers GET /orders/{id} (without asOf) of an
	// order whose actor is active on this node with its committed state and
	// the owner's node id, without a call to the actor: the node is its
	// journal's only writer (see actors.Published). false sends the read to
	// the actor.
	Committed func(id string) (state order.State, owner string, ok bool)
	ReadModel ReadModel
	Health    Health
	// Writable, if set, is asked before every command; an error refuses it
	// at once with 503 (a backend is known to be down).
	Writable func() error
	// Info returns the body of GET / (node id, mode, backends, members...);
	// without it GET / names the service only.
	Info func() Info
	// Outbox, if set, returns the outbox figures shown in GET /stats.
	Outbox func() OutboxFigures
	// ReadModelFigures, if set, returns the read side's figures shown in
	// GET /stats (applied, repaired, dead-lettered, quarantined).
	ReadModelFigures func() ReadModelFigures
	// APIToken, when set, is required as "Authorization: Bearer <token>" on
	// every route but the probes and /metrics (see ProtectMetrics).
	APIToken string
	// Metrics, if set, receives the HTTP and command metrics and is served
	// at GET /metrics.
	Metrics *metrics.Metrics
	// ProtectMetrics requires the APIToken on /metrics too (by default it
	// is open, like the probes, for scrapers).
	ProtectMetrics bool
	// RequestTimeout bounds one call to an order actor (default 10 s).
	RequestTimeout time.Duration
	// MaxInFlight bounds the order writes (POST /orders...) served at once;
	// past it they are refused at once with 503 instead of queueing (0: no
	// limit).
	MaxInFlight int
	// MaxInFlightReads bounds the order reads (GET /orders, /orders/{id},
	// /orders/{id}/history) the same way, with a budget of their own: a
	// flood of writes never refuses a read, nor a flood of reads a write
	// (0: no limit).
	MaxInFlightReads int
	// Events, if set, serves the event streams GET /events and
	// GET /orders/{id}/events (Server-Sent Events).
	Events *feed.Hub
	// EventsHeartbeat is the pause between two heartbeat comments on an
	// idle event stream, which keep proxies from closing it (default 15 s).
	EventsHeartbeat time.Duration
	// Tracer, if set, records a server span per request; without it the
	// request's W3C trace context is still continued (a new span id in the
	// incoming trace, or a new trace) and answered in traceparent.
	Tracer trace.Tracer
	// BodyLimit is the largest request body accepted (default 1 MiB).
	BodyLimit int64
	Logger    *slog.Logger
}

// Limits of the list endpoint.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// New returns the echo server with every route.
func New(cfg Config) *echo.Echo {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.EventsHeartbeat <= 0 {
		cfg.EventsHeartbeat = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{cfg: cfg, routes: map[string]bool{}, served: map[route]bool{}, origin: http.NewCrossOriginProtection()}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	chain := []echo.MiddlewareFunc{a.observe, a.refuseCrossOrigin, a.limitBody}
	if cfg.APIToken != "" {
		chain = append(chain, a.requireToken)
	}
	chain = append(chain, a.checkQuery)
	// The body is read before the in-flight slot is taken: a slow client
	// holds a connection (bounded by the server's timeouts and connection
	// cap), never a slot.
	chain = append(chain, a.readBody)
	if cfg.MaxInFlight > 0 || cfg.MaxInFlightReads > 0 {
		a.writes = newBudget("writes", cfg.MaxInFlight)
		a.reads = newBudget("reads", cfg.MaxInFlightReads)
		chain = append(chain, a.limitInFlight)
	}
	e.Use(once(chain))

	e.GET("/", a.info)
	e.GET("/health", a.health)
	e.GET("/health/live", a.live)
	e.GET("/health/ready", a.ready)
	// Load balancers and some probes ask with HEAD: the same status, no body.
	e.HEAD("/health", a.health)
	e.HEAD("/health/live", a.live)
	e.HEAD("/health/ready", a.ready)
	e.GET("/stats", a.stats)
	e.POST("/orders", a.command("create", a.createOrder))
	e.GET("/orders", a.listOrders)
	e.GET("/orders/:id", a.getOrder)
	e.GET("/orders/:id/history", a.history)
	e.GET("/orders/:id/events", a.orderEvents)
	e.GET("/events", a.events)
	for _, op := range []string{"pay", "ship", "deliver", "cancel"} {
		e.POST("/orders/:id/"+op, a.command(op, a.transition(op)))
	}
	e.GET("/openapi.json", a.openAPI)
	a.consoleRoutes(e)
	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics.Handler()))
	}
	for _, r := range e.Routes() {
		a.routes[r.Path] = true
		a.served[route{r.Method, r.Path}] = true
	}
	return e
}

// once returns chain as one middleware that is built once. Echo applies
// the middleware of Use to every request anew (a closure per middleware and
// request); this one is built around a handler that calls the request's
// route handler (c.Handler(), which is the next handler echo passes to the
// middleware of Use: the route's, or its 404 or 405 handler), so that
// applying it per request costs nothing.
func once(chain []echo.MiddlewareFunc) echo.MiddlewareFunc {
	h := func(c echo.Context) error { return c.Handler()(c) }
	for i := len(chain) - 1; i >= 0; i-- {
		h = chain[i](h)
	}
	return func(echo.HandlerFunc) echo.HandlerFunc { return h }
}

type api struct {
	cfg    Config
	routes map[string]bool // route templates, for the metrics' route label
	served map[route]bool  // method and template of every route
	writes *budget         // MaxInFlight
	reads  *budget         // MaxInFlightReads
	origin *http.CrossOriginProtection
}

// route is a method and a route template.
type route struct{ method, path string }

// matched reports whether the request matched a route (not a 404 or 405).
func (a *api) matched(c echo.Context) bool {
	return a.served[route{c.Request().Method, c.Path()}]
}

// readBody reads the body of a command (a POST on a route) in full, after
// checking that it is declared as JSON: a Content-Type other than
// application/json (charset utf-8 at most), or a non-empty body without
// one, is refused with 415. This also refuses cross-site HTML form posts,
// which cannot send application/json. An empty body without Content-Type
// is accepted (the transitions' bodies are optional).
func (a *api) readBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodPost || !a.matched(c) {
			return next(c)
		}
		cts := r.Header.Values(echo.HeaderContentType)
		if err := checkContentType(cts, r.ContentLength > 0); err != nil {
			return err
		}
		body, err := readAll(r.Body, r.ContentLength)
		if err != nil {
			return bodyError(err)
		}
		if err := checkContentType(cts, len(body) > 0); err != nil {
			return err
		}
		r.Body = &fullBody{data: body}
		return next(c)
	}
}

// ownQuery are the GET routes that read their query themselves, strictly
// (parseQuery).
var ownQuery = map[string]bool{"/orders": true, "/orders/:id": true, "/events": true, "/orders/:id/events": true}

// checkQuery refuses any query parameter on the routes that read none:
// every route but the GET routes of ownQuery and /metrics, which is
// Prometheus' handler.
func (a *api) checkQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.URL.RawQuery == "" || c.Path() == "/metrics" || (ownQuery[c.Path()] && r.Method == http.MethodGet) || !a.matched(c) {
			return next(c)
		}
		if err := parseQuery(r.URL.RawQuery, nil); err != nil {
			return err
		}
		return next(c)
	}
}

// budget is a bound on the order requests of one kind served at once: a
// semaphore, or nil for no bound.
type budget struct {
	kind  string // "writes" or "reads", for the refusal
	slots chan struct{}
}

func newBudget(kind string, n int) *budget {
	if n <= 0 {
		return nil
	}
	return &budget{kind: kind, slots: make(chan struct{}, n)}
}

// limitInFlight takes a slot of the request's budget for an order request
// (writes for a POST, reads otherwise), or refuses it with 503 at once. It
// runs after readBody, so a slot is held only while the request is served,
// not while its body trickles in.
func (a *api) limitInFlight(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !strings.HasPrefix(r.URL.Path, "/orders") || c.Path() == "/orders/:id/events" {
			return next(c) // an event stream holds no slot: the feed caps its subscribers
		}
		b := a.reads
		if r.Method == http.MethodPost {
			b = a.writes
		}
		if b == nil {
			return next(c)
		}
		select {
		case b.slots <- struct{}{}:
			defer func() { <-b.slots }()
			return next(c)
		default:
			return &apiError{status: http.StatusServiceUnavailable, code: "overloaded",
				msg: fmt.Sprintf("more than %d order %s in flight; retry shortly", cap(b.slots), b.kind)}
		}
	}
}

// refuseCrossOrigin refuses state-changing requests that a browser sends
// from another origin (net/http's CrossOriginProtection: Sec-Fetch-Site, else
// Origin against Host), so that a web page cannot make its visitors' browsers
// create, pay or cancel orders on a node without --api-token (or with a
// token the browser holds). Clients that are not browsers send neither
// header and pass.
func (a *api) refuseCrossOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := a.origin.Check(c.Request()); err != nil {
			return &apiError{status: http.StatusForbidden, code: "cross_origin",
				msg: "cross-origin request refused: " + err.Error()}
		}
		return next(c)
	}
}

// apiError is an error with its HTTP status and code; every handler returns
// these (or errors errorHandler maps) and errorHandler writes them.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", msg: fmt.Sprintf(format, args...)}
}

// errorHandler is the one place where errors become statuses.
func (a *api) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", msg: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &he):
		ae = &apiError{status: he.Code, code: strings.ToLower(strings.ReplaceAll(http.StatusText(he.Code), " ", "_")), msg: fmt.Sprint(he.Message)}
		if he.Code == http.StatusNotFound {
			ae.msg = fmt.Sprintf("no route %s %s", c.Request().Method, c.Request().URL.Path)
		}
		if he.Code == http.StatusMethodNotAllowed {
			ae.msg = fmt.Sprintf("method %s not allowed on %s", c.Request().Method, c.Request().URL.Path)
		}
	default:
		requestLogger(c.Request().Context(), a.cfg.Logger).Error("unhandled error", slog.String("route", a.routeLabel(c)), slog.Any("error", err))
		ae = &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal error"}
	}
	if ae.status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "1")
	}
	_ = c.JSON(ae.status, errorJSON{Error: ae.msg, Code: ae.code, Field: ae.field})
}

// replyError maps an order actor's refusal to an apiError.
func replyError(e *orderpb.Error) *apiError {
	ae := &apiError{msg: e.GetMessage(), field: e.GetField()}
	switch e.GetCode() {
	case orderpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:
		ae.status, ae.code = http.StatusBadRequest, "invalid_argument"
	case orderpb.ErrorCode_ERROR_CODE_NOT_FOUND:
		ae.status, ae.code = http.StatusNotFound, "not_found"
	case orderpb.ErrorCode_ERROR_CODE_CONFLICT:
		ae.status, ae.code = http.StatusConflict, "invalid_transition"
	case orderpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS:
		ae.status, ae.code = http.StatusConflict, "already_exists"
	case orderpb.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH:
		ae.status, ae.code = http.StatusUnprocessableEntity, "idempotency_key_reused"
	case orderpb.ErrorCode_ERROR_CODE_UNAVAILABLE, orderpb.ErrorCode_ERROR_CODE_NOT_SERVING:
		ae.status, ae.code = http.StatusServiceUnavailable, "unavailable"
	case orderpb.ErrorCode_ERROR_CODE_QUARANTINED:
		// A record of the order's journal cannot be read: the server's
		// data is at fault, not the request (so no 4xx: 409 would tell
		// the client to change something, and nothing it sends can
		// succeed), and retrying does not help until an operator repairs
		// the journal (so no 503, whose Retry-After: 1 invites retries
		// forever and tells proxies the node is down). 500, with a code
		// and a message naming the order and the version.
		ae.status, ae.code = http.StatusInternalServerError, "order_quarantined"
	default:
		ae.status, ae.code = http.StatusInternalServerError, "internal"
	}
	return ae
}

func (a *api) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > a.cfg.BodyLimit {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", msg: fmt.Sprintf("request body is larger than %d bytes", a.cfg.BodyLimit)}
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, a.cfg.BodyLimit)
		}
		return next(c)
	}
}

func isProbe(path string) bool { return path == "/health" || strings.HasPrefix(path, "/health/") }

// open reports whether a path is served without the API token: the probes,
// the console's assets, and /metrics unless ProtectMetrics is set.
func (a *api) open(path string) bool {
	return isProbe(path) || isConsole(path) || (path == "/metrics" && a.cfg.Metrics != nil && !a.cfg.ProtectMetrics)
}

// requireToken checks "Authorization: Bearer <token>" (the scheme in any
// case, one header). The token is compared by its SHA-256, in constant time
// whatever its length.
func (a *api) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(a.cfg.APIToken))
	return func(c echo.Context) error {
		if a.open(c.Request().URL.Path) {
			return next(c)
		}
		tok, ok := "", false
		if h := c.Request().Header.Values(echo.HeaderAuthorization); len(h) == 1 {
			tok, ok = bearerToken(h[0])
		}
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !ok {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="ordersystem"`)
			return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "missing or wrong bearer token in the Authorization header"}
		}
		return next(c)
	}
}

func orderID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !order.ValidID(id) {
		return "", &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "orderId",
			msg: fmt.Sprintf("orderId: must be 1 to 64 letters, digits, '-' or '_' (got %q)", truncate(id, 80))}
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// commandID returns the Idempotency-Key, or mints an id when there is none.
func commandID(c echo.Context) (id string, fromKey bool, err error) {
	key := c.Request().Header.Get("Idempotency-Key")
	if key == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]), false, nil
	}
	if len(key) > 255 {
		return "", false, badRequest("Idempotency-Key: must be at most 255 characters (got %d)", len(key))
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return "", false, badRequest("Idempotency-Key: must be printable ASCII without spaces (got %q)", truncate(key, 80))
		}
	}
	return key, true, nil
}

// fingerprint identifies a request's content so that a reused key with a
// different request is refused. A command without an Idempotency-Key has a
// random id no client can send again (only the cluster's own retry of the
// same message reuses it), so it needs none: it gets "" and saves the
// deterministic marshal and the hash of every key-less command.
func fingerprint(fromKey bool, op, orderID string, payload proto.Message) string {
	if !fromKey {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write([]byte(orderID))
	h.Write([]byte{0})
	if payload != nil {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(payload)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// newOrderID derives the order id from the idempotency key (so that a retried
// create reaches the same order) or makes a random one.
func newOrderID(key string, fromKey bool) string {
	if fromKey {
		return order.IDForKey(key)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sendCommand delivers cmd to order id, unless writes are refused now.
func (a *api) sendCommand(c echo.Context, id string, cmd *orderpb.Command) (*orderpb.Reply, error) {
	if a.cfg.Writable != nil {
		if err := a.cfg.Writable(); err != nil {
			return nil, &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: err.Error()}
		}
	}
	return a.call(c, id, func(ctx context.Context) (*orderpb.Reply, error) { return a.cfg.Orders.Command(ctx, id, cmd) })
}

// call runs one call to the actor of order id, bounded by RequestTimeout,
// and maps its reply: headers for the owner, staleness and replays, an
// apiError for an unreachable actor or a refusal.
func (a *api) call(c echo.Context, id string, f func(ctx context.Context) (*orderpb.Reply, error)) (*orderpb.Reply, error) {
	// The deadline bounds the call's own waits (the cluster's attempts read
	// it); a timer is made only if something waits on ctx.Done().
	ctx, cancel := lazydeadline.WithTimeout(c.Request().Context(), a.cfg.RequestTimeout)
	defer cancel()
	reply, err := f(ctx)
	if err != nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "order " + id + " is unavailable right now: " + err.Error()}
	}
	if reply.GetOwner() != "" {
		c.Response().Header().Set("X-Order-Owner", reply.GetOwner())
	}
	if reply.GetError() != nil {
		return nil, replyError(reply.GetError())
	}
	if reply.GetStale() {
		// The journal could not be read: this is the last state the
		// owning actor knew, which may miss recent writes.
		c.Response().Header().Set("X-Order-Stale", "true")
	}
	if reply.GetReplayed() {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return reply, nil
}

func (a *api) createOrder(c echo.Context) error {
	body, err := requestBody(c.Request())
	if err != nil {
		return bodyError(err)
	}
	create, err := decodeCreate(body)
	if err != nil {
		return err
	}
	cmdID, fromKey, err := commandID(c)
	if err != nil {
		return err
	}
	id := newOrderID(cmdID, fromKey)
	cmd := &orderpb.Command{CommandId: cmdID, Fingerprint: fingerprint(fromKey, "create", "", create), Command: &orderpb.Command_Create{Create: create}}
	reply, err := a.sendCommand(c, id, cmd)
	if err != nil {
		return err
	}
	o := reply.GetOrder()
	c.Response().Header().Set(echo.HeaderLocation, "/orders/"+id)
	return writeCreated(c, o)
}

func (a *api) transition(op string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := orderID(c)
		if err != nil {
			return err
		}
		body, err := requestBody(c.Request())
		if err != nil {
			return bodyError(err)
		}
		cmd, err := decodeTransition(op, body)
		if err != nil {
			return err
		}
		cmdID, fromKey, err := commandID(c)
		if err != nil {
			return err
		}
		cmd.CommandId = cmdID
		cmd.Fingerprint = fingerprint(fromKey, op, id, cmd)
		reply, err := a.sendCommand(c, id, cmd)
		if err != nil {
			return err
		}
		return writeOrderReply(c, reply.GetOrder())
	}
}

func (a *api) getOrder(c echo.Context) error {
	id, err := orderID(c)
	if err != nil {
		return err
	}
	q := [...]queryParam{{name: "asOf"}}
	if err := parseQuery(c.Request().URL.RawQuery, q[:]); err != nil {
		return err
	}
	if q[0].set {
		return a.getOrderAsOf(c, id, q[0].value)
	}
	if a.cfg.Committed != nil {
		if st, owner, ok := a.cfg.Committed(id); ok {
			c.Response().Header().Set("X-Order-Owner", owner)
			return writeOrder(c, &st)
		}
	}
	reply, err := a.call(c, id, func(ctx context.Context) (*orderpb.Reply, error) { return a.cfg.Orders.Get(ctx, id) })
	if err != nil {
		return err
	}
	return writeOrderReply(c, reply.GetOrder())
}

// getOrderAsOf answers the order as it was after version n (asOf=n) or at
// time t (asOf=<RFC 3339>: after the last event at or before t). The order
// actor folds it (from the order's snapshot when the snapshot lies at or
// before that point) and refuses a point the order does not reach.
func (a *api) getOrderAsOf(c echo.Context, id, asOf string) error {
	q := &orderpb.GetOrderAsOf{}
	if n, err := strconv.ParseUint(asOf, 10, 64); err == nil && n > 0 {
		q.Version = n
	} else if t, terr := time.Parse(time.RFC3339Nano, asOf); terr == nil {
		q.At = timestamppb.New(t)
	} else {
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "asOf",
			msg: fmt.Sprintf("asOf: must be a version (1, 2, ...) or an RFC 3339 time such as 2026-01-02T15:04:05Z (got %q)", truncate(asOf, 40))}
	}
	reply, err := a.call(c, id, func(ctx context.Context) (*orderpb.Reply, error) { return a.cfg.Orders.AsOf(ctx, id, q) })
	if err != nil {
		return err
	}
	o := reply.GetOrder()
	c.Response().Header().Set("X-Order-As-Of-Version", strconv.FormatUint(o.GetVersion(), 10))
	return writeOrderReply(c, o)
}

func (a *api) history(c echo.Context) error {
	id, err := orderID(c)
	if err != nil {
		return err
	}
	reply, err := a.call(c, id, func(ctx context.Context) (*orderpb.Reply, error) { return a.cfg.Orders.History(ctx, id) })
	if err != nil {
		return err
	}
	out := make([]eventJSON, len(reply.GetHistory()))
	for i, e := range reply.GetHistory() {
		out[i] = toEventJSON(e)
	}
	return c.JSON(http.StatusOK, out)
}

func (a *api) listOrders(c echo.Context) error {
	q := [...]queryParam{{name: "status"}, {name: "limit"}, {name: "cursor"}}
	if err := parseQuery(c.Request().URL.RawQuery, q[:]); err != nil {
		return err
	}
	status := order.StatusNone
	if s := q[0].value; s != "" {
		st, ok := order.ParseStatus(s)
		if !ok {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "status",
				msg: fmt.Sprintf("status: must be one of Pending, Paid, Shipped, Delivered, Cancelled (got %q)", truncate(s, 40))}
		}
		status = st
	}
	limit := DefaultListLimit
	if s := q[1].value; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "limit",
				msg: fmt.Sprintf("limit: must be an integer from 1 to %d (got %q)", MaxListLimit, truncate(s, 40))}
		}
		limit = n
	}
	page, next, err := a.cfg.ReadModel.List(status, limit, q[2].value)
	if errors.Is(err, readmodel.ErrBadCursor) {
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "cursor", msg: "cursor: not a cursor this API returned"}
	}
	if err != nil {
		return err
	}
	if next != "" {
		c.Response().Header().Set("X-Next-Cursor", next)
		u := *c.Request().URL
		v := url.Values{"cursor": {next}}
		for _, p := range q[:2] {
			if p.set {
				v.Set(p.name, p.value)
			}
		}
		u.RawQuery = v.Encode()
		c.Response().Header().Set("Link", "<"+u.RequestURI()+`>; rel="next"`)
	}
	out := make([]summaryJSON, len(page))
	for i, s := range page {
		out[i] = summaryJSON{OrderID: s.OrderID, CustomerID: s.CustomerID, Status: s.Status.String(), Total: s.Total,
			ItemCount: s.Items, Version: s.Version, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC()}
	}
	return c.JSON(http.StatusOK, out)
}

func (a *api) stats(c echo.Context) error {
	st := a.cfg.ReadModel.Stats()
	out := statsJSON{TotalOrders: st.TotalOrders, ByStatus: make(map[string]int, len(st.ByStatus)), TotalRevenue: st.TotalRevenue, Timestamp: time.Now().UTC()}
	for s, n := range st.ByStatus {
		out.ByStatus[s.String()] = n
	}
	if a.cfg.Outbox != nil {
		o := a.cfg.Outbox()
		out.Outbox = &o
	}
	if a.cfg.ReadModelFigures != nil {
		f := a.cfg.ReadModelFigures()
		out.ReadModel = &f
	}
	return c.JSON(http.StatusOK, out)
}

func (a *api) info(c echo.Context) error {
	if a.cfg.Info == nil {
		return c.JSON(http.StatusOK, map[string]string{"service": "ordersystem"})
	}
	return c.JSON(http.StatusOK, a.cfg.Info())
}

func (a *api) live(c echo.Context) error {
	if err := a.cfg.Health.Live(); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "down", "error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "up"})
}

func (a *api) ready(c echo.Context) error {
	ok, report := a.cfg.Health.Ready(c.Request().Context())
	if !ok {
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusServiceUnavailable, report)
	}
	return c.JSON(http.StatusOK, report)
}

func (a *api) health(c echo.Context) error {
	live := a.cfg.Health.Live()
	ok, report := a.cfg.Health.Ready(c.Request().Context())
	status := http.StatusOK
	if live != nil || !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, report)
}
