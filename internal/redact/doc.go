// Package redact removes credentials from server addresses (Redis and NATS
// URLs, host:port, comma-separated lists of either) before they reach a log
// line, an error message or an HTTP answer. It never parses the address as a
// URL first, so a malformed address (one url.Parse refuses, and whose error
// would quote it whole) is redacted exactly like a well-formed one.
package redact
