// Package tracing carries the W3C Trace Context of a request across the
// places OrderSystem cannot hand a context.Context on: HTTP headers,
// protobuf messages between cluster members, and the metadata of journaled
// events. It holds the propagator and the helpers every layer shares, and
// nothing that exports spans (the node wires the exporter), so that the
// HTTP layer and the read side can use it without linking gRPC.
//
// A nil trace.Tracer anywhere in OrderSystem means "propagate, record
// nothing": the trace id that came in is handed on unchanged to the reply,
// the cluster call and the events, at the cost of copying two strings.
package tracing
