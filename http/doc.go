// Package httpapi is the REST API of an OrderSystem node (echo): commands go
// to order actors through a small Orders interface, GET /orders and /stats are
// served by the read model, and every error is mapped to its status and JSON
// shape in exactly one place (errorHandler).
package httpapi
