// Package localcall is the reply path of a request to an actor on the same
// member: the request carries the channel its answer comes back on, instead
// of a future registered in protoactor's process registry (a PID, a registry
// entry added and removed, a condition variable and a timer per request:
// about a tenth of the CPU of a read, measured in BENCHMARKS.md).
//
// Only actors written to answer a Call may get one: they take the message
// from Unwrap and answer with Respond. A Call never leaves the process (it is
// not a protobuf message, so protoactor's remote cannot serialize it).
package localcall

import "github.com/asynkron/protoactor-go/actor"

// Call is a request to a local actor and the channel of its answer.
type Call struct {
	// Msg is the request.
	Msg   any
	reply chan any
}

// New returns a call carrying msg.
func New(msg any) *Call { return &Call{Msg: msg, reply: make(chan any, 1)} }

// Reply is the channel the answer arrives on (at most one).
func (c *Call) Reply() <-chan any { return c.reply }

// Respond answers the call. Only the first answer counts; later ones (a
// panic handler answering after the handler did) are dropped. It never
// blocks.
func (c *Call) Respond(res any) {
	select {
	case c.reply <- res:
	default:
	}
}

// Unwrap returns the request msg carries and its Call, or msg itself and
// nil when msg is not a Call.
func Unwrap(msg any) (any, *Call) {
	if c, ok := msg.(*Call); ok {
		return c.Msg, c
	}
	return msg, nil
}

// Respond answers the message ctx is handling: through call when it came
// as one, else to its sender as ctx.Respond does.
func Respond(ctx actor.Context, call *Call, res any) {
	if call != nil {
		call.Respond(res)
		return
	}
	ctx.Respond(res)
}

// Expects reports whether the message ctx is handling waits for an answer.
func Expects(ctx actor.Context, call *Call) bool { return call != nil || ctx.Sender() != nil }
