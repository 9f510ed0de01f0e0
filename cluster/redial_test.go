package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// A dial refused because nothing listens yet connects as soon as something
// does (a member restarting on its old address), instead of failing and
// leaving protoactor's endpoint writer asleep for 2 s.
func TestRedialConnectsOnceTheAddressListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := redial(context.Background(), addr, nil)
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer l.Close()
	listening := time.Now()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("redial: %v", err)
		}
		if late := time.Since(listening); late > 10*redialEvery {
			t.Fatalf("connected %v after the address listened (dialing since %v)", late, listening.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("redial did not connect after the address listened")
	}
}

func TestRedialGivesUp(t *testing.T) {
	refused := func(context.Context, string, string) (net.Conn, error) { return nil, syscall.ECONNREFUSED }
	start := time.Now()
	if _, err := redialWith(context.Background(), "x:1", nil, 10*time.Millisecond, 100*time.Millisecond, refused); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refused until the bound: %v, want ECONNREFUSED", err)
	}
	if took := time.Since(start); took < 80*time.Millisecond || took > 2*time.Second {
		t.Fatalf("gave up after %v, want about the 100ms bound", took)
	}
	calls := 0
	timeout := func(context.Context, string, string) (net.Conn, error) {
		calls++
		return nil, errors.New("i/o timeout")
	}
	if _, err := redialWith(context.Background(), "x:1", nil, time.Millisecond, time.Minute, timeout); err == nil || calls != 1 {
		t.Fatalf("a timeout: %v after %d dials, want it returned after one", err, calls)
	}
	stop := make(chan struct{})
	close(stop)
	start = time.Now()
	if _, err := redialWith(context.Background(), "x:1", stop, 10*time.Millisecond, time.Minute, refused); err == nil || time.Since(start) > time.Second {
		t.Fatalf("a stopped node: %v after %v, want the refusal at once", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := redialWith(ctx, "x:1", nil, 10*time.Millisecond, time.Minute, refused); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("a context that ends: %v", err)
	}
}

type fakeStream struct {
	grpc.ClientStream
	err error
}

func (f fakeStream) RecvMsg(any) error { return f.err }

type fakeConn struct{ state connectivity.State }

func (c fakeConn) GetState() connectivity.State { return c.state }

// The writer's own close (Canceled on a connection it shut down) ends its
// stream quietly; a lost peer (Unavailable), and a Canceled status a peer
// sends on an open connection, are still errors, which end the endpoint.
func TestCanceledIsEOF(t *testing.T) {
	closed, open := fakeConn{connectivity.Shutdown}, fakeConn{connectivity.Ready}
	canceled := status.Error(codes.Canceled, "grpc: the client connection is closing")
	for _, c := range []struct {
		err  error
		conn fakeConn
		want error
	}{
		{nil, closed, nil},
		{canceled, closed, io.EOF},
		{io.EOF, open, io.EOF},
	} {
		if got := (canceledIsEOF{fakeStream{err: c.err}, c.conn}).RecvMsg(nil); got != c.want {
			t.Errorf("RecvMsg after %v (connection %v) = %v, want %v", c.err, c.conn.state, got, c.want)
		}
	}
	for _, c := range []struct {
		err  error
		conn fakeConn
		code codes.Code
	}{
		{status.Error(codes.Unavailable, "error reading from server: EOF"), open, codes.Unavailable},
		{status.Error(codes.Unavailable, "error reading from server: EOF"), closed, codes.Unavailable},
		{status.Error(codes.Canceled, "sent by the peer"), open, codes.Canceled},
	} {
		if got := (canceledIsEOF{fakeStream{err: c.err}, c.conn}).RecvMsg(nil); status.Code(got) != c.code {
			t.Errorf("RecvMsg after %v (connection %v) = %v, want it unchanged", c.err, c.conn.state, got)
		}
	}
}

// shutdown recovers a panic of the stop it runs (protoactor's endpoint
// manager can panic while it stops) and logs it.
func TestShutdownRecoversAPanic(t *testing.T) {
	var out strings.Builder
	shutdown(slog.New(slog.NewTextHandler(&out, nil)), func() { panic("send on closed channel") })
	if !strings.Contains(out.String(), "send on closed channel") {
		t.Fatalf("the panic was not logged: %q", out.String())
	}
}
