// Package testservers finds or starts the Redis and NATS servers that
// integration tests need. Shared servers (127.0.0.1:6379, :4222) serve tests
// that only read and write; tests that kill, pause or restart a server get a
// private one on a free port. When no server can be found or started the test
// is skipped with a clear message, except under CI (CI set), where it fails.
package testservers
