package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// newTransport returns a transport sized for the run: an idle connection per
// worker and target, keep-alive, no proxy (loopback traffic must stay
// loopback whatever HTTP_PROXY says), no compression.
func newTransport(cfg *Config, targets int) *http.Transport {
	d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowRemote {
		d.Control = loopbackOnly
	}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        (cfg.Concurrency + 1) * targets,
		MaxIdleConnsPerHost: cfg.Concurrency + 1,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		DisableCompression:  true,
	}
}

// notLoopbackError is returned by the dialer when a target name resolved to
// an address that is not loopback.
type notLoopbackError struct{ addr string }

func (e *notLoopbackError) Error() string {
	return fmt.Sprintf("refusing to connect to %s: not a loopback address (pass -allow-remote)", e.addr)
}

// loopbackOnly is a net.Dialer Control function: the second line of defence
// behind the target check, in case "localhost" resolves somewhere else.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &notLoopbackError{addr: address}
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return &notLoopbackError{addr: address}
	}
	return nil
}

// classify maps a transport error to an error kind.
func classify(err error) errKind {
	var nl *notLoopbackError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &nl):
		return ekNotLoopback
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ekTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ekConnRefused
	case errors.Is(err, syscall.ECONNRESET):
		return ekConnReset
	case errors.Is(err, syscall.EPIPE):
		return ekBrokenPipe
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return ekAddrNotAvailable
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return ekTooManyOpenFiles
	case errors.As(err, &dns):
		return ekDNS
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ekEOF
	case errors.As(err, &ne) && ne.Timeout():
		return ekTimeout
	}
	return ekOther
}

// opRoute is the method and path (after the target's path prefix; %s stands
// for the order id) of each operation.
var opRoute = [numOps]struct{ method, prefix, suffix string }{
	OpLive:    {http.MethodGet, "/health/live", ""},
	OpReady:   {http.MethodGet, "/health/ready", ""},
	OpCreate:  {http.MethodPost, "/orders", ""},
	OpRead:    {http.MethodGet, "/orders/", ""},
	OpPay:     {http.MethodPost, "/orders/", "/pay"},
	OpShip:    {http.MethodPost, "/orders/", "/ship"},
	OpDeliver: {http.MethodPost, "/orders/", "/deliver"},
	OpCancel:  {http.MethodPost, "/orders/", "/cancel"},
	OpHistory: {http.MethodGet, "/orders/", "/history"},
	OpList:    {http.MethodGet, "/orders", ""},
	OpStats:   {http.MethodGet, "/stats", ""},
}

// Request bodies, encoded once and shared by every request.
var (
	payBody  = []byte(`{"paymentMethod":"card"}`)
	shipBody = []byte(`{"trackingNumber":"T1"}`)
)

// createBody is a worker's POST /orders body.
func createBody(worker int) []byte {
	return []byte(`{"customerId":"loadgen-` + strconv.Itoa(worker) +
		`","items":[{"productId":"p-1","name":"Laptop","quantity":1,"price":999.99},` +
		`{"productId":"p-2","name":"Mouse","quantity":2,"price":29.99}]}`)
}

// target holds one base URL and a request template per operation. Templates
// are never sent themselves: each request is a shallow copy made by
// WithContext, sharing the template's read-only header map.
type target struct {
	base   *url.URL
	tmpl   [numOps]*http.Request
	nodeID string // routed runs: the node id GET / answered
}

func newTarget(base *url.URL, cfg *Config) *target {
	t := &target{base: base}
	plain := http.Header{}
	withBody := http.Header{"Content-Type": {"application/json"}}
	if cfg.Token != "" {
		plain.Set("Authorization", "Bearer "+cfg.Token)
		withBody.Set("Authorization", "Bearer "+cfg.Token)
	}
	for op := range numOps {
		rt := opRoute[op]
		u := *base
		u.Path = base.Path + rt.prefix
		if op == OpList {
			u.RawQuery = "limit=" + strconv.Itoa(cfg.ListLimit)
		}
		h := plain
		switch op {
		case OpCreate, OpPay, OpShip:
			h = withBody
		}
		t.tmpl[op] = &http.Request{
			Method:     rt.method,
			URL:        &u,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     h,
			Host:       u.Host,
		}
	}
	return t
}

// orderURL returns the URL of an order operation.
func (t *target) orderURL(op Op, id string) *url.URL {
	u := *t.base
	rt := &opRoute[op]
	u.Path = t.base.Path + rt.prefix + id + rt.suffix
	return &u
}

// body is a request body over shared bytes.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

func newBody(b []byte) *body {
	bd := &body{}
	bd.Reset(b)
	return bd
}

// idFromLocation extracts the order id from a Location header such as
// "/orders/123" or "http://host/orders/123".
func idFromLocation(loc string) string {
	i := strings.LastIndex(loc, "/orders/")
	if i < 0 {
		return ""
	}
	id := loc[i+len("/orders/"):]
	if j := strings.IndexAny(id, "/?#"); j >= 0 {
		id = id[:j]
	}
	return id
}
