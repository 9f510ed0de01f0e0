package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// The node-to-node port's guard: gRPC server interceptors between the
// network and protoactor's endpoint reader, which trusts whatever it reads
// (an index out of range, an unknown type name, an unimplemented method
// each panic there, and grpc-go does not recover handlers).
//
//   - Every handler runs under recover: a panic is logged and answered
//     codes.Internal; the process lives on.
//   - Every call authenticates first (peerAuth), when the node has a
//     secret: codes.Unauthenticated, and protoactor never sees the call.
//   - Only the Receive stream is served; ListProcesses,
//     GetProcessDiagnostics and anything else get codes.Unimplemented.
//   - Each message of the stream is screened (screen) before protoactor
//     reads it. A malformed one (an index out of range, a nil PID, an
//     unknown type or serializer, absurd sizes) ends the stream with
//     codes.InvalidArgument: members never send one, so the peer is broken
//     or hostile, and a member's endpoint writer simply reconnects. An
//     envelope that is well formed but not allowed (see screenEnvelope) is
//     dropped from its batch and the stream goes on, so that if a member
//     ever sends something the guard does not know, only that message is
//     lost. Both are counted and logged (rate-limited).

// receiveMethod is the one method of protoactor's Remoting service served.
const receiveMethod = "/remote.Remoting/Receive"

// Bounds of one MessageBatch (protoactor's endpoint writer sends at most
// EndpointWriterBatchSize = 1000 envelopes per batch).
const maxBatchEntries = 1 << 14

// Refusal kinds, the keys of WireStats.
const (
	RefusedUnauthenticated = "unauthenticated"
	RefusedUnimplemented   = "unimplemented"
	RefusedMalformed       = "malformed"
	RefusedNotAllowed      = "not_allowed"
	RecoveredPanic         = "panic"
)

// guard holds the interceptors of one incarnation's node-to-node server.
type guard struct {
	log  *slog.Logger
	auth *peerAuth // nil: no authentication (a loopback-only member)
	self func() string
	// counts per refusal kind
	counts sync.Map // string -> *atomic.Uint64
	limit  logLimiter
}

func newGuard(log *slog.Logger, auth *peerAuth, self func() string) *guard {
	return &guard{log: log.With(slog.String("component", "node-to-node")), auth: auth, self: self}
}

func (g *guard) count(kind string) {
	c, ok := g.counts.Load(kind)
	if !ok {
		c, _ = g.counts.LoadOrStore(kind, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

// stats is a snapshot of the counts.
func (g *guard) stats() map[string]uint64 {
	out := map[string]uint64{}
	g.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// refuse counts and logs (rate-limited) one refusal.
func (g *guard) refuse(kind string, ctx context.Context, err error) {
	g.count(kind)
	if n, ok := g.limit.allow(kind); ok {
		g.log.Warn("node-to-node message refused", slog.String("kind", kind), slog.String("reason", err.Error()),
			slog.String("peer", peerAddr(ctx)), slog.Int("suppressed_since_last", n))
	}
}

func (g *guard) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(g.recoverUnary, g.authUnary, g.refuseUnary),
		grpc.ChainStreamInterceptor(g.recoverStream, g.authStream, g.screenStream),
	}
}

func (g *guard) recovered(ctx context.Context, method string, r any, err *error) {
	g.count(RecoveredPanic)
	g.log.Error("panic in a node-to-node handler, recovered", slog.String("method", method), slog.String("peer", peerAddr(ctx)),
		slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
	*err = status.Error(codes.Internal, "internal error")
}

func (g *guard) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp = nil
			g.recovered(ctx, info.FullMethod, r, &err)
		}
	}()
	return h(ctx, req)
}

func (g *guard) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			g.recovered(ss.Context(), info.FullMethod, r, &err)
		}
	}()
	return h(srv, ss)
}

func (g *guard) authenticate(ctx context.Context, method string) error {
	if g.auth == nil {
		return nil
	}
	if err := g.auth.verify(ctx, method, g.self()); err != nil {
		g.refuse(RefusedUnauthenticated, ctx, err)
		return status.Error(codes.Unauthenticated, "node-to-node call refused: not authenticated as a member of this cluster")
	}
	return nil
}

func (g *guard) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := g.authenticate(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (g *guard) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := g.authenticate(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// refuseUnary answers every unary call: protoactor implements none of them
// (ListProcesses and GetProcessDiagnostics panic "implement me").
func (g *guard) refuseUnary(ctx context.Context, _ any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	g.refuse(RefusedUnimplemented, ctx, fmt.Errorf("method %s", info.FullMethod))
	return nil, status.Errorf(codes.Unimplemented, "%s is not served", info.FullMethod)
}

func (g *guard) screenStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if info.FullMethod != receiveMethod {
		g.refuse(RefusedUnimplemented, ss.Context(), fmt.Errorf("method %s", info.FullMethod))
		return status.Errorf(codes.Unimplemented, "%s is not served", info.FullMethod)
	}
	return h(srv, &screenedStream{ServerStream: ss, g: g})
}

// screenedStream screens every RemoteMessage the endpoint reader receives.
type screenedStream struct {
	grpc.ServerStream
	g    *guard
	from string // the peer's address, from its connect request
}

// cutAddrs holds the node-to-node addresses of in-process members whose
// traffic is cut (SimulateCut).
var cutAddrs sync.Map // address -> struct{}

// SimulateCut cuts (or, with cut false, restores) the node-to-node traffic
// of the in-process member listening at address, both ways, as a firewall
// that drops its packets would: every message batch that member receives,
// and every batch other in-process members receive from it, is dropped.
// Connections stay up. It is a test hook (clustertest.Harness.Cut); the
// drills cut real processes with iptables.
func SimulateCut(address string, cut bool) {
	if cut {
		cutAddrs.Store(address, struct{}{})
	} else {
		cutAddrs.Delete(address)
	}
}

func isCut(address string) bool {
	if address == "" {
		return false
	}
	_, ok := cutAddrs.Load(address)
	return ok
}

// cutLinks holds the links between two in-process members that are cut
// (SimulateLinkCut), as "a|b" with a < b.
var cutLinks sync.Map // string -> struct{}

func linkKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "|" + b
}

// SimulateLinkCut cuts (or restores) the node-to-node traffic between the
// in-process members at addresses a and b only, both ways: an asymmetric
// partition, in which both still reach every other member. A test hook, as
// SimulateCut.
func SimulateLinkCut(a, b string, cut bool) {
	if cut {
		cutLinks.Store(linkKey(a, b), struct{}{})
	} else {
		cutLinks.Delete(linkKey(a, b))
	}
}

// dropped reports whether a batch from the member at from to the member at
// self is lost to a simulated cut.
func dropped(from, self string) bool {
	if isCut(from) || isCut(self) {
		return true
	}
	if from == "" {
		return false
	}
	_, ok := cutLinks.Load(linkKey(from, self))
	return ok
}

func (s *screenedStream) RecvMsg(m any) error {
	for {
		if err := s.ServerStream.RecvMsg(m); err != nil {
			return err
		}
		rm, ok := m.(*remote.RemoteMessage)
		if !ok {
			return status.Errorf(codes.Internal, "unexpected message type %T", m)
		}
		keep, refused, err := screen(rm, s.g.self())
		if err != nil {
			s.g.refuse(RefusedMalformed, s.Context(), err)
			return status.Errorf(codes.InvalidArgument, "malformed node-to-node message: %v", err)
		}
		for _, r := range refused {
			s.g.refuse(RefusedNotAllowed, s.Context(), r)
		}
		if cr := rm.GetConnectRequest(); cr != nil {
			s.from = cr.GetServerConnection().GetAddress()
		} else if dropped(s.from, s.g.self()) {
			continue
		}
		if keep {
			return nil
		}
	}
}

// errMalformed wraps every reason screen gives for a malformed message.
var errMalformed = errors.New("malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// screen checks one message from a peer before protoactor's endpoint
// reader handles it, where self is this member's address. It returns an
// error if the message is malformed (the stream must end); otherwise
// whether to hand it on (keep), after it removed the envelopes that are not
// allowed from a batch, each with its reason in refused. It never panics
// (FuzzScreen) and, when it keeps a batch, protoactor's reader can index
// and deserialize every envelope of it.
func screen(rm *remote.RemoteMessage, self string) (keep bool, refused []error, err error) {
	switch t := rm.GetMessageType().(type) {
	case *remote.RemoteMessage_ConnectRequest:
		// Members connect as servers; protoactor implements nothing else.
		sc := t.ConnectRequest.GetServerConnection()
		if sc == nil {
			return false, []error{errors.New("connect request that is not a server connection")}, nil
		}
		return true, nil, nil
	case *remote.RemoteMessage_MessageBatch:
		return screenBatch(t.MessageBatch, self)
	default:
		// Nothing else travels from a member's endpoint writer.
		return false, []error{fmt.Errorf("unexpected %T on the receive stream", t)}, nil
	}
}

func screenBatch(b *remote.MessageBatch, self string) (keep bool, refused []error, err error) {
	if b == nil {
		return false, nil, malformed("empty batch")
	}
	if len(b.Envelopes) > maxBatchEntries || len(b.TypeNames) > maxBatchEntries ||
		len(b.Targets) > maxBatchEntries || len(b.Senders) > maxBatchEntries {
		return false, nil, malformed("batch of %d envelopes, %d types, %d targets, %d senders (at most %d each)",
			len(b.Envelopes), len(b.TypeNames), len(b.Targets), len(b.Senders), maxBatchEntries)
	}
	for i, p := range b.Targets {
		if p == nil {
			return false, nil, malformed("target %d is nil", i)
		}
	}
	for i, p := range b.Senders {
		if p == nil {
			return false, nil, malformed("sender %d is nil", i)
		}
	}
	types := make([]wireType, len(b.TypeNames))
	for i, name := range b.TypeNames {
		wt, ok := lookupWireType(name)
		if !ok {
			return false, nil, malformed("type %d %.80q is not a known protobuf message", i, name)
		}
		types[i] = wt
	}
	kept := b.Envelopes[:0]
	for i, e := range b.Envelopes {
		if e == nil {
			return false, nil, malformed("envelope %d is nil", i)
		}
		if e.Target < 0 || int(e.Target) >= len(b.Targets) {
			return false, nil, malformed("envelope %d: target index %d of %d", i, e.Target, len(b.Targets))
		}
		if e.Sender < 0 || int(e.Sender) > len(b.Senders) {
			return false, nil, malformed("envelope %d: sender index %d of %d", i, e.Sender, len(b.Senders))
		}
		if e.TypeId < 0 || int(e.TypeId) >= len(types) {
			return false, nil, malformed("envelope %d: type index %d of %d", i, e.TypeId, len(types))
		}
		if e.SerializerId != 0 {
			// Members use protoactor's protobuf serializer (id 0) only.
			return false, nil, malformed("envelope %d: serializer %d", i, e.SerializerId)
		}
		if why := screenEnvelope(b.Targets[e.Target], types[e.TypeId], e.MessageData, self); why != nil {
			refused = append(refused, fmt.Errorf("envelope %d to %.80q: %w", i, b.Targets[e.Target].GetId(), why))
			continue
		}
		kept = append(kept, e)
	}
	// The dropped envelopes' slots would still hold them: clear the tail.
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return len(kept) > 0, refused, nil
}

// Actors of a member that other members may only send one message type
// to, or none at all.
var (
	nameActivationRequest    = string(proto.MessageName(&pcluster.ActivationRequest{}))
	nameActivationTerminated = string(proto.MessageName(&pcluster.ActivationTerminated{}))
	nameGossipRequest        = string(proto.MessageName(&pcluster.GossipRequest{}))
	nameProbeRequest         = string(proto.MessageName(&orderpb.ProbeRequest{}))

	// onlyType is what each named infrastructure actor accepts from the
	// wire: our placement activations and reachability probes,
	// protoactor's gossip and the event-stream broadcast of a stopped
	// activation (placement.RemovePid).
	onlyType = map[string]string{
		placementName:                   nameActivationRequest,
		"eventstream":                   nameActivationTerminated,
		pcluster.DefaultGossipActorName: nameGossipRequest,
		probeName:                       nameProbeRequest,
	}
	// closedActors accept nothing from the wire: protoactor's remote spawn
	// activator and endpoint actors, its pub-sub delivery and the
	// activators of the identity lookups this node does not run.
	closedActors = []string{"activator", "EndpointSupervisor", pcluster.PubSubDeliveryName, "placement-activator", "partition-activator"}
)

// screenEnvelope says why a well-formed envelope must not be delivered, or
// nil. Members send user messages only: requests to grains and to the
// infrastructure actors of onlyType, and replies to futures. No member
// ever sends a system message (Stop, Watch, Unwatch, Terminated: this
// system watches and supervises nothing across members) or a PoisonPill, so
// those are refused whatever the target; so are protoactor's pub-sub
// transports (unused here, and their own deserializer panics on bad input),
// and messages for an actor of another address (the reader would forward
// them: a relay).
func screenEnvelope(target *actor.PID, wt wireType, data []byte, self string) error {
	if target.GetAddress() != self {
		return fmt.Errorf("addressed to %.80q, not this member", target.GetAddress())
	}
	if wt.lifecycle {
		return fmt.Errorf("lifecycle message %s", wt.name)
	}
	if wt.rootSerialized {
		return fmt.Errorf("pub-sub transport %s", wt.name)
	}
	id := target.GetId()
	for _, name := range closedActors {
		if id == name || strings.HasPrefix(id, name+"/") {
			return fmt.Errorf("%s accepts nothing from other members", name)
		}
	}
	only, ok := onlyType[id]
	if !ok {
		return nil
	}
	if wt.name != only {
		return fmt.Errorf("%s accepts only %s, not %s", id, only, wt.name)
	}
	if only == nameProbeRequest {
		// A relayed probe makes this member dial the address named: it
		// must be one.
		var req orderpb.ProbeRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return fmt.Errorf("undecodable %s: %v", wt.name, err)
		}
		if to := req.GetRelayTo(); to != "" {
			if _, _, err := net.SplitHostPort(to); err != nil || len(to) > 300 {
				return fmt.Errorf("%s relayed to %.80q, not a host:port", wt.name, to)
			}
		}
	}
	if only == nameActivationRequest {
		// The placement actor must not fail on a request: a nil identity
		// would restart it, losing its map of activations.
		var req pcluster.ActivationRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return fmt.Errorf("undecodable %s: %v", wt.name, err)
		}
		if ci := req.GetClusterIdentity(); ci.GetIdentity() == "" || ci.GetKind() == "" {
			return fmt.Errorf("%s without an identity or kind", wt.name)
		}
	}
	return nil
}

// wireType is what the guard knows of a message type name.
type wireType struct {
	name           string
	lifecycle      bool // an actor.SystemMessage or actor.AutoReceiveMessage
	rootSerialized bool // a remote.RootSerialized (protoactor's pub-sub)
}

var wireTypes sync.Map // type name -> wireType, for resolvable names only

// lookupWireType resolves a type name as protoactor's protobuf serializer
// does (protoregistry.GlobalTypes), and classifies it.
func lookupWireType(name string) (wireType, bool) {
	if wt, ok := wireTypes.Load(name); ok {
		return wt.(wireType), true
	}
	fn := protoreflect.FullName(name)
	if !fn.IsValid() {
		return wireType{}, false
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(fn)
	if err != nil || mt == nil {
		return wireType{}, false
	}
	msg := mt.New().Interface()
	_, sys := msg.(actor.SystemMessage)
	_, auto := msg.(actor.AutoReceiveMessage)
	_, root := msg.(remote.RootSerialized)
	wt := wireType{name: name, lifecycle: sys || auto, rootSerialized: root}
	wireTypes.Store(name, wt)
	return wt, true
}

// logLimiter lets one log line per kind through every logEvery, and counts
// the lines it held back.
type logLimiter struct {
	mu    sync.Mutex
	state map[string]*limitState
}

type limitState struct {
	last       time.Time
	suppressed int
}

const logEvery = 10 * time.Second

func (l *logLimiter) allow(kind string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == nil {
		l.state = map[string]*limitState{}
	}
	st := l.state[kind]
	if st == nil {
		st = &limitState{}
		l.state[kind] = st
	}
	now := time.Now()
	if !st.last.IsZero() && now.Sub(st.last) < logEvery {
		st.suppressed++
		return 0, false
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return n, true
}

// WireStats is what a member's node-to-node guard refused or recovered
// from, by kind (the Refused* and RecoveredPanic constants), since the
// incarnation started.
type WireStats map[string]uint64

// String lists the counts sorted by kind.
func (s WireStats) String() string {
	kinds := make([]string, 0, len(s))
	for k := range s {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s=%d", k, s[k])
	}
	return strings.Join(parts, " ")
}

// peerAddr is the network address of a call's peer, for logs.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}
