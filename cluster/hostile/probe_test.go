package hostile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/cluster"
)

// tally counts probes per kind: how many ran, were refused, and left the
// target serving.
type tally struct {
	mu   sync.Mutex
	rows map[string]*row
}

type row struct{ probes, refused, survived int }

// all is the tally of every test of the package (TestMain prints it).
var all = &tally{}

func (ta *tally) record(kind string, refused, survived bool) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if ta.rows == nil {
		ta.rows = map[string]*row{}
	}
	r := ta.rows[kind]
	if r == nil {
		r = &row{}
		ta.rows[kind] = r
	}
	r.probes++
	if refused {
		r.refused++
	}
	if survived {
		r.survived++
	}
}

func (ta *tally) String() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	kinds := make([]string, 0, len(ta.rows))
	width := 0
	for k := range ta.rows {
		kinds = append(kinds, k)
		width = max(width, len(k))
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  probes  refused  survived\n", width, "probe")
	var tot row
	for _, k := range kinds {
		r := ta.rows[k]
		fmt.Fprintf(&b, "%-*s  %6d  %7d  %8d\n", width, k, r.probes, r.refused, r.survived)
		tot.probes, tot.refused, tot.survived = tot.probes+r.probes, tot.refused+r.refused, tot.survived+r.survived
	}
	fmt.Fprintf(&b, "%-*s  %6d  %7d  %8d\n", width, "total", tot.probes, tot.refused, tot.survived)
	return b.String()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() && len(all.rows) > 0 {
		fmt.Printf("\nhostile probes, all targets:\n%s", all)
	}
	os.Exit(code)
}

// target is what the probes attack: the address of its node-to-node port
// and a check that it still serves (an order or a grain request through
// it, readiness).
type target struct {
	name   string
	addr   string
	serves func(ctx context.Context) error
	tally  tally
}

// probe runs one attack on tg: attack reports whether it was refused (and
// how); afterwards tg must still serve.
func (tg *target) probe(t *testing.T, kind string, attack func(ctx context.Context) (refused bool, how string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	refused, how := attack(ctx)
	err := tg.serves(ctx)
	tg.tally.record(kind, refused, err == nil)
	all.record(kind, refused, err == nil)
	switch {
	case !refused:
		t.Errorf("%s: %s was not refused: %s", tg.name, kind, how)
	case err != nil:
		t.Errorf("%s: does not serve after %s: %v", tg.name, kind, err)
	default:
		t.Logf("%s: %s refused (%s); still serves", tg.name, kind, how)
	}
}

func (tg *target) report(t *testing.T) {
	t.Logf("hostile probes against %s:\n%s", tg.name, &tg.tally)
}

// dial connects to addr like protoactor's endpoint writer, with opts
// (insecure transport unless opts say otherwise).
func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("grpc client for %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// withSecret is the dial option of a client that holds secret.
func withSecret(t *testing.T, secret []byte) grpc.DialOption {
	t.Helper()
	creds, err := cluster.PeerCredentials(secret, "ordersystem")
	if err != nil {
		t.Fatal(err)
	}
	return grpc.WithPerRPCCredentials(creds)
}

// stream is an open Receive stream that got its ConnectResponse.
type stream struct {
	s remote.Remoting_ReceiveClient
}

func connectRequest() *remote.RemoteMessage {
	return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{
			SystemId: "hostile", Address: "127.0.0.1:1"}}}}}
}

// open opens the Receive stream and connects as protoactor does; the error
// is what the server answered.
func open(ctx context.Context, conn *grpc.ClientConn) (*stream, error) {
	s, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		return nil, err
	}
	st := &stream{s: s}
	return st, st.ping()
}

// ping sends a ConnectRequest and waits for the ConnectResponse: it proves
// the stream is open and everything sent before it was read.
func (st *stream) ping() error {
	// A Send on a stream the server ended fails with io.EOF; the status is
	// what Recv then returns.
	if err := st.s.Send(connectRequest()); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	res, err := st.s.Recv()
	if err != nil {
		return err
	}
	if res.GetConnectResponse() == nil {
		return fmt.Errorf("answered %v, want a connect response", res)
	}
	return nil
}

// batch is one envelope carrying msg to id on addr.
func batch(addr, id string, msg proto.Message) *remote.MessageBatch {
	data, _ := proto.Marshal(msg)
	return &remote.MessageBatch{
		TypeNames: []string{string(proto.MessageName(msg))},
		Targets:   []*actor.PID{actor.NewPID(addr, id)},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data}},
	}
}

func sendBatch(st *stream, b *remote.MessageBatch) error {
	return st.s.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}})
}

// wantCode reports whether err is a gRPC status with one of codes.
func wantCode(err error, cs ...codes.Code) (bool, string) {
	if err == nil {
		return false, "no error"
	}
	c := status.Code(err)
	return slices.Contains(cs, c), fmt.Sprintf("%v: %v", c, status.Convert(err).Message())
}

// Attacks. Each returns refused and how.

// noCredentials opens a stream as a plain protoactor client would.
func streamRefused(conn func() *grpc.ClientConn, cs ...codes.Code) func(context.Context) (bool, string) {
	return func(ctx context.Context) (bool, string) {
		_, err := open(ctx, conn())
		return wantCode(err, cs...)
	}
}

// sendRefused opens a stream and sends b on it (with a ConnectRequest
// first, as the endpoint writer does): refused if the stream fails with
// one of cs.
func sendRefused(conn func() *grpc.ClientConn, b *remote.MessageBatch, cs ...codes.Code) func(context.Context) (bool, string) {
	return func(ctx context.Context) (bool, string) {
		s, err := remote.NewRemotingClient(conn()).Receive(ctx)
		if err != nil {
			return wantCode(err, cs...)
		}
		st := &stream{s: s}
		_ = s.Send(connectRequest())
		_ = sendBatch(st, b)
		for {
			if _, err := s.Recv(); err != nil {
				return wantCode(err, cs...)
			}
		}
	}
}

// droppedOnOpenStream sends b on an authenticated stream: refused if the
// stream stays open (the batch was dropped, not delivered: the target
// checks that the actor lives) and the guard counted it.
func droppedOnOpenStream(conn func() *grpc.ClientConn, b *remote.MessageBatch) func(context.Context) (bool, string) {
	return func(ctx context.Context) (bool, string) {
		st, err := open(ctx, conn())
		if err != nil {
			return false, fmt.Sprintf("stream: %v", err)
		}
		if err := sendBatch(st, b); err != nil {
			return false, fmt.Sprintf("send: %v", err)
		}
		if err := st.ping(); err != nil {
			return false, fmt.Sprintf("stream after the batch: %v", err)
		}
		return true, "dropped, the stream goes on"
	}
}

func unaryRefused(conn func() *grpc.ClientConn, call func(context.Context, remote.RemotingClient) error, cs ...codes.Code) func(context.Context) (bool, string) {
	return func(ctx context.Context) (bool, string) {
		return wantCode(call(ctx, remote.NewRemotingClient(conn())), cs...)
	}
}

func listProcesses(ctx context.Context, c remote.RemotingClient) error {
	_, err := c.ListProcesses(ctx, &remote.ListProcessesRequest{Pattern: "", Type: remote.ListProcessesMatchType_MatchPartOfString})
	return err
}

func getDiagnostics(ctx context.Context, c remote.RemotingClient) error {
	_, err := c.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{Pid: actor.NewPID("x", "order-placement")})
	return err
}

// activation asks placement at addr to activate an order the HTTP API
// would refuse (a made-up id).
func activation(addr string) *remote.MessageBatch {
	b := batch(addr, "order-placement", &pcluster.ActivationRequest{
		ClusterIdentity: &pcluster.ClusterIdentity{Identity: "../not an order id", Kind: "order"}})
	b.Senders = []*actor.PID{actor.NewPID("127.0.0.1:1", "future$1")}
	b.Envelopes[0].Sender = 1
	return b
}

// malformations are the batches that crashed a member before the guard.
func malformations(addr string) map[string]*remote.MessageBatch {
	target := batch(addr, "order-placement", &pcluster.ActivationRequest{})
	target.Envelopes[0].Target = 7
	sender := activation(addr)
	sender.Envelopes[0].Sender = 9
	typ := batch(addr, "order-placement", &pcluster.ActivationRequest{})
	typ.TypeNames[0] = "hostile.NoSuchType"
	return map[string]*remote.MessageBatch{
		"target index out of range": target,
		"sender index out of range": sender,
		"unknown type name":         typ,
	}
}
