// Package loadgen drives load against the OrderSystem HTTP API and measures
// what comes back: throughput, latency percentiles from a bounded log-linear
// histogram, status codes and transport errors by kind.
//
// A run executes one scenario (see [Scenarios]) either as a closed loop of a
// fixed number of workers, each sending its next request as soon as the
// previous one finished (this is what measures capacity), or as an open loop
// that starts requests at a fixed rate with a cap on requests in flight.
// Every run is bounded by [Config.Duration], which may not exceed
// [MaxDuration], and by default only loopback targets are accepted.
//
// The generator is built to stay out of the way of the server it measures:
// one tuned [net/http.Transport] whose idle pool holds a connection per worker,
// request templates and bodies built once, per-worker statistics merged only
// at the end, and no locks on the request path. A [Report] says how much CPU
// the generator itself used, so a run can show that it was not the
// bottleneck.
package loadgen
