package hostile_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/cluster/clustertest"
	"github.com/ordersystem/ordersystem/cluster/redisreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/node"
)

// attacks runs the probes every node-to-node target must refuse, by an
// outsider (no secret, a wrong one) and, where secret is set, by a client
// that holds the cluster secret (a member gone bad: it may talk, but not
// crash or stop anything).
func attacks(t *testing.T, tg *target, secret []byte) {
	plain := func() *grpc.ClientConn { return dial(t, tg.addr) }
	wrong, _ := registry.NewSecret()
	wrongSecret := func() *grpc.ClientConn { return dial(t, tg.addr, withSecret(t, wrong)) }

	tg.probe(t, "stream without credentials", streamRefused(plain, codes.Unauthenticated))
	tg.probe(t, "stream with a wrong secret", streamRefused(wrongSecret, codes.Unauthenticated))
	tg.probe(t, "ListProcesses without secret", unaryRefused(plain, listProcesses, codes.Unauthenticated))
	tg.probe(t, "GetProcessDiagnostics without secret", unaryRefused(plain, getDiagnostics, codes.Unauthenticated))
	tg.probe(t, "ActivationRequest to placement without secret", sendRefused(plain, activation(tg.addr), codes.Unauthenticated))
	tg.probe(t, "Stop to order-placement without secret", sendRefused(plain, batch(tg.addr, "order-placement", &actor.Stop{}), codes.Unauthenticated))
	for name, b := range malformations(tg.addr) {
		tg.probe(t, name+" without secret", sendRefused(plain, b, codes.Unauthenticated))
	}
	if secret == nil {
		return
	}
	member := func() *grpc.ClientConn { return dial(t, tg.addr, withSecret(t, secret)) }
	tg.probe(t, "ListProcesses with the secret", unaryRefused(member, listProcesses, codes.Unimplemented))
	tg.probe(t, "GetProcessDiagnostics with the secret", unaryRefused(member, getDiagnostics, codes.Unimplemented))
	for name, b := range malformations(tg.addr) {
		tg.probe(t, name+" with the secret", sendRefused(member, b, codes.InvalidArgument))
	}
	tg.probe(t, "Stop to order-placement with the secret", droppedOnOpenStream(member, batch(tg.addr, "order-placement", &actor.Stop{})))
	tg.probe(t, "PoisonPill to order-placement with the secret", droppedOnOpenStream(member, batch(tg.addr, "order-placement", &actor.PoisonPill{})))
	tg.probe(t, "Watch of order-placement with the secret", droppedOnOpenStream(member, batch(tg.addr, "order-placement",
		&actor.Watch{Watcher: actor.NewPID("127.0.0.1:1", "x")})))
	tg.probe(t, "Stop to gossip with the secret", droppedOnOpenStream(member, batch(tg.addr, pcluster.DefaultGossipActorName, &actor.Stop{})))
	tg.probe(t, "topology to the event stream with the secret", droppedOnOpenStream(member, batch(tg.addr, "eventstream", &pcluster.ClusterTopology{})))
	relay := batch(tg.addr, "order-placement", &pcluster.ActivationRequest{})
	relay.Targets[0].Address = "10.255.255.1:6000"
	tg.probe(t, "message to relay elsewhere with the secret", droppedOnOpenStream(member, relay))
}

// httpNode drives a node.Node over HTTP.
type httpNode struct {
	base string
}

func (h httpNode) get(ctx context.Context, path string, v any) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", h.base+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			return res.StatusCode, err
		}
	}
	return res.StatusCode, nil
}

// serves creates an order, reads it back and checks readiness.
func (h httpNode) serves(ctx context.Context) error {
	body := `{"customerId":"c-hostile","items":[{"productId":"p1","name":"Thing","quantity":1,"price":9.99}]}`
	req, _ := http.NewRequestWithContext(ctx, "POST", h.base+"/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var created struct{ OrderID string }
	err = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || err != nil {
		return fmt.Errorf("create: %d %v", res.StatusCode, err)
	}
	if code, err := h.get(ctx, "/orders/"+created.OrderID, nil); code != http.StatusOK || err != nil {
		return fmt.Errorf("get %s: %d %v", created.OrderID, code, err)
	}
	// Readiness is cached for 250 ms: wait that out, so that the answer is
	// about the node after the probe.
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	if code, err := h.get(ctx, "/health/ready", nil); code != http.StatusOK || err != nil {
		return fmt.Errorf("ready: %d %v", code, err)
	}
	return nil
}

type info struct {
	Members []struct{ ID, Address string }
}

func (h httpNode) members(t *testing.T) info {
	t.Helper()
	var in info
	if _, err := h.get(context.Background(), "/", &in); err != nil {
		t.Fatalf("GET /: %v", err)
	}
	return in
}

func startNode(t *testing.T, mutate func(*node.Config)) httpNode {
	t.Helper()
	cfg := node.Default()
	cfg.Port = testservers.FreePort(t)
	cfg.NodeID = "hostile"
	cfg.OutboxInterval = 50 * time.Millisecond
	cfg.DrainDelay = 0 // nothing balances load in a test
	mutate(&cfg)
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return httpNode{base: "http://" + n.Addr()}
}

// A node started as the binary starts one, in cluster mode on a private
// Redis, with no secret given: it uses the one the backend keeps, which the
// probes read from Redis as whoever can read the backend can. Each probe is
// refused, and the node then creates and reads an order, is ready, and is
// still the same incarnation (a stopped placement actor would have made it
// start a new one).
func TestHostileNodeOnRedis(t *testing.T) {
	rs := testservers.StartRedis(t)
	hn := startNode(t, func(c *node.Config) {
		c.Cluster, c.Persistence, c.Transport, c.Redis = true, node.Redis, node.Redis, rs.Addr()
		c.RemotePort = testservers.FreePort(t)
		c.ClusterName = "hostile"
	})
	before := hn.members(t)
	if len(before.Members) != 1 {
		t.Fatalf("members %v", before.Members)
	}
	reg, err := redisreg.New(redisreg.Options{Addr: rs.Addr(), Cluster: "hostile"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	secret, err := reg.ClusterSecret(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{name: "node on Redis", addr: before.Members[0].Address, serves: func(ctx context.Context) error {
		if err := hn.serves(ctx); err != nil {
			return err
		}
		if now := hn.members(t); len(now.Members) != 1 || now.Members[0].ID != before.Members[0].ID {
			return fmt.Errorf("the member changed: %v, was %v", now.Members, before.Members)
		}
		return nil
	}}
	attacks(t, tg, secret)
	tg.report(t)
}

// A member behind mutual TLS and the secret: a client with a certificate
// the cluster CA signed but without the secret is refused, so is one
// without a certificate; one with both gets in (so the refusals are the
// secret's and the certificate's doing, not a broken setup).
func TestHostileTLSMember(t *testing.T) {
	serverTLS, clientTLS := mutualTLS(t)
	secret, _ := registry.NewSecret()
	n, err := cluster.Start(cluster.Config{NodeID: "tls", Host: "127.0.0.1", Secret: secret, ServerTLS: serverTLS, ClientTLS: clientTLS,
		Kinds: []*pcluster.Kind{clustertest.EchoKindFor("tls")}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)
	seq := 0
	tg := &target{name: "TLS member", addr: n.Address(), serves: func(ctx context.Context) error {
		if err := n.PlacementAlive(time.Second); err != nil {
			return err
		}
		seq++
		res, err := n.Request(ctx, fmt.Sprint("t", seq), clustertest.EchoKind, wrapperspb.String("x"))
		if err != nil {
			return err
		}
		if s, ok := res.(*wrapperspb.StringValue); !ok || s.GetValue() != "tls" {
			return fmt.Errorf("echo answered %v", res)
		}
		return nil
	}}
	caSigned := func() *grpc.ClientConn {
		return dial(t, tg.addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	}
	noCert := clientTLS.Clone()
	noCert.Certificates = nil
	anonymous := func() *grpc.ClientConn {
		return dial(t, tg.addr, grpc.WithTransportCredentials(credentials.NewTLS(noCert)))
	}
	tg.probe(t, "CA-signed certificate without secret", streamRefused(caSigned, codes.Unauthenticated))
	tg.probe(t, "CA-signed certificate, ListProcesses without secret", unaryRefused(caSigned, listProcesses, codes.Unauthenticated))
	tg.probe(t, "CA-signed certificate, Stop to order-placement without secret",
		sendRefused(caSigned, batch(tg.addr, "order-placement", &actor.Stop{}), codes.Unauthenticated))
	tg.probe(t, "TLS without a client certificate", streamRefused(anonymous, codes.Unavailable))
	tg.probe(t, "plaintext to a TLS member", streamRefused(func() *grpc.ClientConn { return dial(t, tg.addr, withSecret(t, secret)) }, codes.Unavailable))
	both := func() *grpc.ClientConn {
		return dial(t, tg.addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)), withSecret(t, secret))
	}
	tg.probe(t, "CA-signed certificate with the secret, Stop to order-placement",
		droppedOnOpenStream(both, batch(tg.addr, "order-placement", &actor.Stop{})))
	tg.report(t)
}

// A standalone node listens on its HTTP port only: its node-to-node
// address (GET / still names one) refuses connections.
func TestHostileStandaloneNode(t *testing.T) {
	before := listening(t)
	hn := startNode(t, func(*node.Config) {})
	port, _ := strconv.Atoi(hn.base[strings.LastIndexByte(hn.base, ':')+1:])
	for p := range listening(t) {
		if !before[p] && p != port {
			t.Errorf("the standalone node listens on TCP port %d besides HTTP %d", p, port)
		}
	}
	in := hn.members(t)
	if len(in.Members) != 1 {
		t.Fatalf("members %v", in.Members)
	}
	tg := &target{name: "standalone node", addr: in.Members[0].Address, serves: hn.serves}
	plain := func() *grpc.ClientConn { return dial(t, tg.addr) }
	tg.probe(t, "stream to a standalone node", streamRefused(plain, codes.Unavailable))
	tg.probe(t, "ListProcesses on a standalone node", unaryRefused(plain, listProcesses, codes.Unavailable))
	tg.probe(t, "Stop to order-placement of a standalone node", sendRefused(plain, batch(tg.addr, "order-placement", &actor.Stop{}), codes.Unavailable))
	tg.report(t)
}

// listening returns the TCP ports this process listens on: the listening
// entries of /proc/self/net/tcp{,6} (the whole network namespace) whose
// socket inode is one of this process's file descriptors.
func listening(t *testing.T) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if s, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(s, "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			p, _ := strconv.ParseInt(fs[1][i+1:], 16, 32)
			ports[int(p)] = true
		}
		fh.Close()
	}
	return ports
}

// mutualTLS makes a CA and one certificate it signs for 127.0.0.1, and the
// server and client configurations of a member that uses it.
func mutualTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// TestStopWaitsForHandlers: a member's Stop returns only once its gRPC
// handlers have returned. An open node-to-node stream's handler that
// outlived Stop went on touching protoactor's and gRPC's state after the
// member was gone (and raced with the next member the process started:
// gRPC's logger is a global protoactor sets on every start).
func TestStopWaitsForHandlers(t *testing.T) {
	secret, _ := registry.NewSecret()
	n, err := cluster.Start(cluster.Config{NodeID: "stops", Host: "127.0.0.1", Secret: secret,
		Kinds: []*pcluster.Kind{clustertest.EchoKindFor("stops")}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			n.Stop(false)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const streams = 4
	for range streams {
		if _, err := open(ctx, dial(t, n.Address(), withSecret(t, secret))); err != nil {
			t.Fatalf("stream with the secret: %v", err)
		}
	}
	if got := handlers(); got < streams {
		t.Fatalf("%d stream handlers running, want %d", got, streams)
	}
	// The kill of the node-to-node server alone (what Stop(false) ends
	// with), so that nothing after it gives the handlers time to return.
	remote.GetRemote(n.System()).Shutdown(false)
	if got := handlers(); got != 0 {
		t.Fatalf("%d stream handlers still running after the server's stop returned", got)
	}
	n.Stop(false)
	stopped = true
}

// handlers counts the goroutines in protoactor's stream handler.
func handlers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "remote.(*endpointReader).Receive(")
}
