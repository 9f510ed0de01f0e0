// Package natsconn is the NATS plumbing the NATS backends (journal,
// transport, membership registry) share: the options of a connection (a
// name the server shows, reconnection forever with capped backoff,
// publishes that fail at once while disconnected, connection events logged
// through the injected *slog.Logger) and its constructor.
//
// A node opens one connection with Connect and hands it to every backend;
// a backend given a connection never closes it.
package natsconn
