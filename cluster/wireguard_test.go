package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ordersystem/ordersystem/proto/orderpb"
)

const self = "127.0.0.1:7001"

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batch is one envelope of msg from a future of another member to target
// on this member, as protoactor's endpoint writer builds it.
func batch(t testing.TB, target string, msg proto.Message) *remote.MessageBatch {
	return &remote.MessageBatch{
		TypeNames: []string{string(proto.MessageName(msg))},
		Targets:   []*actor.PID{actor.NewPID(self, target)},
		Senders:   []*actor.PID{actor.NewPID("127.0.0.1:7002", "future$1")},
		Envelopes: []*remote.MessageEnvelope{{MessageData: mustMarshal(t, msg), Target: 0, Sender: 1, TypeId: 0}},
	}
}

func wrap(b *remote.MessageBatch) *remote.RemoteMessage {
	return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}}
}

func activationReq() *pcluster.ActivationRequest {
	return &pcluster.ActivationRequest{ClusterIdentity: &pcluster.ClusterIdentity{Identity: "o1", Kind: "order"}}
}

func TestScreen(t *testing.T) {
	type verdict int
	const (
		deliver verdict = iota
		drop
		bad
	)
	cases := map[string]struct {
		msg  func(t *testing.T) *remote.RemoteMessage
		want verdict
	}{
		"activation request to placement": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, placementName, activationReq()))
		}, deliver},
		"request to a grain": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "o1$5", wrapperspb.String("x")))
		}, deliver},
		"reply to a future": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "future$a", &pcluster.ActivationResponse{}))
		}, deliver},
		"gossip": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "gossip", &pcluster.GossipRequest{}))
		}, deliver},
		"activation terminated to the event stream": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "eventstream", &pcluster.ActivationTerminated{}))
		}, deliver},
		"probe": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, probeName, &orderpb.ProbeRequest{FromMemberId: "m"}))
		}, deliver},
		"relayed probe": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, probeName, &orderpb.ProbeRequest{FromMemberId: "m", RelayTo: "127.0.0.1:7001", RelayTimeoutMs: 500}))
		}, deliver},
		"probe relayed to no address": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, probeName, &orderpb.ProbeRequest{RelayTo: "not an address"}))
		}, drop},
		"other type to the probe actor": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, probeName, &pcluster.ActivationRequest{}))
		}, drop},
		"server connect": {func(t *testing.T) *remote.RemoteMessage {
			return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
				ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "x", Address: "y"}}}}}
		}, deliver},

		"Stop to placement":       {func(t *testing.T) *remote.RemoteMessage { return wrap(batch(t, placementName, &actor.Stop{})) }, drop},
		"PoisonPill to placement": {func(t *testing.T) *remote.RemoteMessage { return wrap(batch(t, placementName, &actor.PoisonPill{})) }, drop},
		"Stop to a grain":         {func(t *testing.T) *remote.RemoteMessage { return wrap(batch(t, "o1$5", &actor.Stop{})) }, drop},
		"Watch": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "o1$5", &actor.Watch{Watcher: actor.NewPID("x", "y")}))
		}, drop},
		"Terminated": {func(t *testing.T) *remote.RemoteMessage { return wrap(batch(t, "o1$5", &actor.Terminated{})) }, drop},
		"topology to the eventstream": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "eventstream", &pcluster.ClusterTopology{}))
		}, drop},
		"other type to placement": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, placementName, &pcluster.ClusterTopology{}))
		}, drop},
		"activation without identity": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, placementName, &pcluster.ActivationRequest{}))
		}, drop},
		"remote activator": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "activator", &remote.ActorPidRequest{Kind: "k"}))
		}, drop},
		"endpoint actors": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "EndpointSupervisor/$1", wrapperspb.String("x")))
		}, drop},
		"pub-sub transport": {func(t *testing.T) *remote.RemoteMessage {
			return wrap(batch(t, "o1$5", &pcluster.PubSubBatchTransport{}))
		}, drop},
		"foreign target": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, "o1$5", wrapperspb.String("x"))
			b.Targets[0].Address = "10.0.0.9:6000"
			return wrap(b)
		}, drop},
		"client connect": {func(t *testing.T) *remote.RemoteMessage {
			return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{}}}
		}, drop},
		"disconnect request": {func(t *testing.T) *remote.RemoteMessage {
			return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_DisconnectRequest{}}
		}, drop},
		"no type": {func(t *testing.T) *remote.RemoteMessage { return &remote.RemoteMessage{} }, drop},

		"target index out of range": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes[0].Target = 3
			return wrap(b)
		}, bad},
		"negative target index": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes[0].Target = -1
			return wrap(b)
		}, bad},
		"sender index out of range": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes[0].Sender = 2
			return wrap(b)
		}, bad},
		"type index out of range": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes[0].TypeId = 1
			return wrap(b)
		}, bad},
		"unknown type name": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.TypeNames[0] = "no.such.Type"
			return wrap(b)
		}, bad},
		"invalid type name": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.TypeNames[0] = "\x00"
			return wrap(b)
		}, bad},
		"json serializer": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes[0].SerializerId = 1
			return wrap(b)
		}, bad},
		"unknown serializer": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes[0].SerializerId = 9
			return wrap(b)
		}, bad},
		"nil target": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Targets[0] = nil
			return wrap(b)
		}, bad},
		"nil sender": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Senders[0] = nil
			return wrap(b)
		}, bad},
		"nil envelope": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			b.Envelopes = append(b.Envelopes, nil)
			return wrap(b)
		}, bad},
		"nil batch": {func(t *testing.T) *remote.RemoteMessage {
			return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{}}
		}, bad},
		"huge batch": {func(t *testing.T) *remote.RemoteMessage {
			b := batch(t, placementName, activationReq())
			for len(b.Envelopes) <= maxBatchEntries {
				b.Envelopes = append(b.Envelopes, b.Envelopes[0])
			}
			return wrap(b)
		}, bad},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			keep, refused, err := screen(c.msg(t), self)
			var got verdict
			switch {
			case err != nil:
				got = bad
				if !errors.Is(err, errMalformed) {
					t.Errorf("error %v is not errMalformed", err)
				}
			case keep:
				got = deliver
			default:
				got = drop
				if len(refused) == 0 && name != "nil batch" {
					t.Error("dropped without a reason")
				}
			}
			if got != c.want {
				t.Fatalf("verdict %d, want %d (keep %v, refused %v, err %v)", got, c.want, keep, refused, err)
			}
		})
	}
}

// A batch mixing allowed and refused envelopes keeps the allowed ones, in
// order.
func TestScreenDropsOnlyRefusedEnvelopes(t *testing.T) {
	b := batch(t, placementName, activationReq())
	b.TypeNames = append(b.TypeNames, string(proto.MessageName(&actor.Stop{})))
	stop := &remote.MessageEnvelope{MessageData: mustMarshal(t, &actor.Stop{}), TypeId: 1}
	second := proto.Clone(b.Envelopes[0]).(*remote.MessageEnvelope)
	b.Envelopes = []*remote.MessageEnvelope{b.Envelopes[0], stop, second}
	keep, refused, err := screen(wrap(b), self)
	if err != nil || !keep || len(refused) != 1 {
		t.Fatalf("keep %v refused %v err %v", keep, refused, err)
	}
	if len(b.Envelopes) != 2 || b.Envelopes[0].TypeId != 0 || b.Envelopes[1] != second {
		t.Fatalf("envelopes after screening: %v", b.Envelopes)
	}
	if !strings.Contains(refused[0].Error(), "lifecycle") {
		t.Errorf("reason %v", refused[0])
	}
}

// FuzzScreen: whatever bytes arrive, screen never panics, and a batch it
// keeps can be read by protoactor's endpoint reader: every index is in
// range, and every message deserializes without a panic.
func FuzzScreen(f *testing.F) {
	for _, m := range []proto.Message{activationReq(), &actor.Stop{}, wrapperspb.String("x"), &pcluster.GossipRequest{}} {
		for _, target := range []string{placementName, "o1$1", "eventstream"} {
			b, err := proto.Marshal(wrap(batch(f, target, m)))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rm remote.RemoteMessage
		if err := proto.Unmarshal(data, &rm); err != nil {
			return
		}
		keep, _, err := screen(&rm, self)
		if err != nil || !keep {
			return
		}
		b := rm.GetMessageBatch()
		if b == nil {
			return
		}
		for _, e := range b.Envelopes {
			name := b.TypeNames[e.TypeId]
			_ = b.Targets[e.Target]
			if e.Sender > 0 {
				_ = b.Senders[e.Sender-1]
			}
			if _, err := remote.Deserialize(e.MessageData, name, e.SerializerId); err != nil {
				continue // protoactor ends the stream with this error
			}
		}
	})
}

func incoming(token, authority string) context.Context {
	md := metadata.MD{":authority": []string{authority}}
	if token != "" {
		md[authHeader] = []string{token}
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestPeerAuth(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, err := newPeerAuth(secret, "c1")
	if err != nil {
		t.Fatal(err)
	}
	tok := func(a *peerAuth, authority string) string {
		s, err := a.token(authority, "/remote.Remoting")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := a.verify(incoming(tok(a, self), self), receiveMethod, self); err != nil {
		t.Fatalf("a fresh token: %v", err)
	}
	t.Run("replay", func(t *testing.T) {
		s := tok(a, self)
		if err := a.verify(incoming(s, self), receiveMethod, self); err != nil {
			t.Fatal(err)
		}
		if err := a.verify(incoming(s, self), receiveMethod, self); !errors.Is(err, errReplay) {
			t.Fatalf("replayed token: %v", err)
		}
	})
	t.Run("another member's token", func(t *testing.T) {
		s := tok(a, "127.0.0.1:7002")
		if err := a.verify(incoming(s, "127.0.0.1:7002"), receiveMethod, self); !errors.Is(err, errAuthority) {
			t.Fatalf("token for another address: %v", err)
		}
		if err := a.verify(incoming(s, self), receiveMethod, self); !errors.Is(err, errBadMAC) {
			t.Fatalf("token for another address, authority rewritten: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		other, _ := newPeerAuth([]byte("fedcba9876543210fedcba9876543210"), "c1")
		if err := a.verify(incoming(tok(other, self), self), receiveMethod, self); !errors.Is(err, errBadMAC) {
			t.Fatalf("another secret: %v", err)
		}
	})
	t.Run("other cluster name", func(t *testing.T) {
		other, _ := newPeerAuth(secret, "c2")
		if err := a.verify(incoming(tok(other, self), self), receiveMethod, self); !errors.Is(err, errBadMAC) {
			t.Fatalf("another cluster: %v", err)
		}
	})
	t.Run("other service", func(t *testing.T) {
		s, _ := a.token(self, "/grpc.health.v1.Health")
		if err := a.verify(incoming(s, self), receiveMethod, self); !errors.Is(err, errBadMAC) {
			t.Fatalf("token for another service: %v", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		old, _ := newPeerAuth(secret, "c1")
		old.now = func() time.Time { return time.Now().Add(-authWindow - time.Minute) }
		if err := a.verify(incoming(tok(old, self), self), receiveMethod, self); !errors.Is(err, errStale) {
			t.Fatalf("stale token: %v", err)
		}
	})
	t.Run("missing and garbage", func(t *testing.T) {
		for _, s := range []string{"", "v1", "v1.1.2.3", "v2." + strings.Repeat("x", 80), tok(a, self) + "x"} {
			if err := a.verify(incoming(s, self), receiveMethod, self); err == nil {
				t.Errorf("token %q accepted", s)
			}
		}
	})
	t.Run("short secret", func(t *testing.T) {
		if _, err := newPeerAuth([]byte("short"), "c1"); !errors.Is(err, errSecretLength) {
			t.Fatalf("short secret: %v", err)
		}
	})
	t.Run("credentials", func(t *testing.T) {
		creds, err := PeerCredentials(secret, "c1")
		if err != nil {
			t.Fatal(err)
		}
		md, err := creds.GetRequestMetadata(context.Background(), "https://"+self+"/remote.Remoting")
		if err != nil {
			t.Fatal(err)
		}
		if creds.RequireTransportSecurity() {
			t.Error("RequireTransportSecurity: the token works over plaintext")
		}
		if err := a.verify(incoming(md[authHeader], self), receiveMethod, self); err != nil {
			t.Fatalf("token from PeerCredentials: %v", err)
		}
		if strings.Contains(md[authHeader], string(secret)) {
			t.Error("the token contains the secret")
		}
	})
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	if _, ok := l.allow("k"); !ok {
		t.Fatal("first line held back")
	}
	for range 5 {
		if _, ok := l.allow("k"); ok {
			t.Fatal("a second line within logEvery let through")
		}
	}
	if _, ok := l.allow("other"); !ok {
		t.Fatal("another kind held back")
	}
	l.state["k"].last = time.Now().Add(-logEvery)
	if n, ok := l.allow("k"); !ok || n != 5 {
		t.Fatalf("after logEvery: ok %v suppressed %d, want 5", ok, n)
	}
}
