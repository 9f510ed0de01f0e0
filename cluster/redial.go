package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// A member that restarts on its old address (the same host and
// --remote-port, as on one machine or a VM) must be reachable at once.
// protoactor makes an endpoint writer for an address at the first message
// to it, which after a kill -9 comes before the member is dropped from the
// view (a request, a reply, gossip); that writer cannot connect, and
// protoactor then sleeps 2 s before its next attempt, holding every message
// sent to the address meanwhile. The new incarnation, started a second
// later, was therefore cut off from the survivors until that sleep ended:
// their gossip and probes to it timed out, and orders that failed over to
// it answered up to 2 s late (the failover-distribution drill). Ending the
// sleeping writer early does not help: a writer that stops after it
// connected publishes EndpointTerminatedEvent, which makes protoactor drop
// the address's current writer too, with the messages it holds.
//
// So the node-to-node connections dial with redial: a refused dial (nothing
// listens there: the process is gone or not started yet) is tried again
// every redialEvery for up to redialFor, and the writer connects as soon as
// the new incarnation listens. Every other error (a timeout, an
// unreachable host) is returned at once, for grpc's own backoff. Requests
// in flight to a dead member do not wait for this: the death watch ends
// them (see deathWatch).
const (
	redialEvery = 50 * time.Millisecond
	redialFor   = 10 * time.Second
)

// redial is the dialer of the node-to-node connections (see above); it
// gives up at once when stop is closed (the node stops: protoactor waits
// for its endpoint writers then).
func redial(ctx context.Context, addr string, stop <-chan struct{}) (net.Conn, error) {
	return redialWith(ctx, addr, stop, redialEvery, redialFor, (&net.Dialer{}).DialContext)
}

func redialWith(ctx context.Context, addr string, stop <-chan struct{}, every, wait time.Duration,
	dial func(ctx context.Context, network, addr string) (net.Conn, error)) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := dial(ctx, "tcp", addr)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || !time.Now().Add(every).Before(deadline) {
			return c, err
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-stop:
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// A writer's own close must not look like a lost peer. protoactor's
// endpoint writer reads its stream on a goroutine of its own and publishes
// EndpointTerminatedEvent on every read error, also the Canceled its own
// close causes (when it is stopped, for example because the address's
// member left); and every EndpointTerminatedEvent makes protoactor drop
// the address's current writer, with the messages it holds. The stop of
// one writer then stopped the next one, which by then had connected, and
// so on for as long as messages kept making new ones: 10 to 30 writers in
// a row after a member restarted on its old address, each dropping what
// it held (requests to the new incarnation answered 2 s late, at their
// attempt timeout). closeIsEOF makes a Canceled read on a connection that
// this member has shut down the end of the stream (io.EOF), which
// protoactor takes quietly. Anything else is still an error that ends the
// endpoint at once: a real loss (the peer died, the connection was reset:
// Unavailable), and a Canceled status sent by the peer while the
// connection is open (taken quietly, that would leave the address with a
// writer that can no longer send, and every later message to it lost).
func closeIsEOF(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return canceledIsEOF{ClientStream: s, cc: cc}, nil
}

type canceledIsEOF struct {
	grpc.ClientStream
	cc interface{ GetState() connectivity.State }
}

func (s canceledIsEOF) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && status.Code(err) == codes.Canceled && s.cc.GetState() == connectivity.Shutdown {
		return io.EOF
	}
	return err
}
