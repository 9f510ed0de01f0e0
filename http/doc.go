// Package httpapi is the REST API of an OrderSystem node (echo): commands go
// to order actors through a small Orders interface, GET /orders and /stats are
// served by the read model, and every error is mapped to its status and JSON
// shape in exactly one place (errorHandler).
//
// The API is described by openapi.yaml (written first, embedded, served as
// JSON at GET /openapi.json); tests keep it and the routes in step and
// validate real answers against it. Every request gets an id (X-Request-Id)
// that its log lines carry; requests are logged at DEBUG, failures (5xx) at
// WARN. With Config.Metrics set, HTTP and command metrics are recorded by
// route template and served at GET /metrics.
package httpapi
