package clustertest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the harness, the providers and the registry clients
// leave no goroutine behind. Ignored, because protoactor gives no way to
// stop them (pseudo-version 2024-08-22):
//
//   - actor/throttler.go: NewThrottle and NewThrottleWithLogger start a
//     goroutine that waits out the throttle period (60 s for gossip logging,
//     1 s for dead letters) on a ticker nothing can cancel. The names are
//     the inlined closures as they appear in stacks, plus the non-inlined
//     forms.
//   - remote/endpoint_writer.go initialize: every failed connect attempt
//     (a peer that died) grpc.Dials a new ClientConn and overwrites
//     state.conn without closing the previous one, so up to five gRPC
//     client connections per attempt keep redialing with nothing holding
//     them. Only full members (harness_test.go) create these; we ignore the
//     gRPC client goroutines (CallbackSerializer.run and the redial loop,
//     addrConn.resetTransportAndUnlock), which nothing of ours creates.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
	)
}
