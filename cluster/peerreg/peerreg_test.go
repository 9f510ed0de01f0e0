package peerreg_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/cluster/peerreg"
	"github.com/ordersystem/ordersystem/cluster/registry"
	"github.com/ordersystem/ordersystem/cluster/registry/registrytest"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newReg(t *testing.T, opts peerreg.Options) *peerreg.Registry {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	r, err := peerreg.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func listIDs(t *testing.T, r registry.Registry) []string {
	t.Helper()
	recs, err := r.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.MemberID
	}
	return ids
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// One member alone: its own records under the contract.
func TestContractOwnRecords(t *testing.T) {
	registrytest.Run(t, registrytest.Options{TTL: 300 * time.Millisecond, ExpirySlack: 500 * time.Millisecond},
		func(t *testing.T, _ time.Duration) registry.Registry { return newReg(t, peerreg.Options{}) })
}

// throughPeer writes to one member and lists through another that asks it
// over HTTP (with a secret): the contract as the other members see it.
type throughPeer struct {
	*peerreg.Registry // the member that holds the records
	lister            *peerreg.Registry
}

func (p throughPeer) List(ctx context.Context) ([]registry.MemberRecord, error) {
	return p.lister.List(ctx)
}

func TestContractThroughAPeer(t *testing.T) {
	registrytest.Run(t, registrytest.Options{TTL: 300 * time.Millisecond, ExpirySlack: 500 * time.Millisecond},
		func(t *testing.T, _ time.Duration) registry.Registry {
			holder := newReg(t, peerreg.Options{Secret: "s3cret", Cluster: "c1"})
			lister := newReg(t, peerreg.Options{Secret: "s3cret", Cluster: "c1", Peers: []string{holder.Addr()}})
			return throughPeer{holder, lister}
		})
}

// Two members that list each other, as two nodes started with --peers.
func TestTwoMembers(t *testing.T) {
	addrA := "127.0.0.1:" + strconv.Itoa(testservers.FreePort(t))
	addrB := "127.0.0.1:" + strconv.Itoa(testservers.FreePort(t))
	peers := []string{addrA, addrB}
	a := newReg(t, peerreg.Options{Listen: addrA, Peers: peers, Secret: "k"})
	b := newReg(t, peerreg.Options{Listen: addrB, Peers: peers, Secret: "k"})

	ra, rb := registrytest.Record(registrytest.NewID("a"), "n1"), registrytest.Record(registrytest.NewID("b"), "n2")
	for _, x := range []struct {
		r   *peerreg.Registry
		rec registry.MemberRecord
	}{{a, ra}, {b, rb}} {
		if err := x.r.Register(ctx(t), x.rec, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	want := sorted(ra.MemberID, rb.MemberID)
	for name, r := range map[string]*peerreg.Registry{"a": a, "b": b} {
		if got := listIDs(t, r); !slices.Equal(got, want) {
			t.Fatalf("%s lists %v, want %v", name, got, want)
		}
	}
	recs, _ := a.List(ctx(t))
	for _, rec := range recs {
		if rec.MemberID == rb.MemberID && (rec.NodeID != "n2" || rec.Port != rb.Port || rec.Host != rb.Host) {
			t.Fatalf("b's record reached a as %+v, want %+v", rec, rb)
		}
	}
	// The same id cannot be registered while a peer lists it.
	if err := a.Register(ctx(t), rb, time.Second); err == nil {
		t.Fatal("a registered b's member id while b lists it")
	}

	// A graceful leave is seen at the next poll.
	if err := b.Deregister(ctx(t), rb); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, a); !slices.Equal(got, []string{ra.MemberID}) {
		t.Fatalf("after b deregistered, a lists %v", got)
	}

	// A member whose process is gone (connection refused) is dropped at
	// once, without waiting for its lease.
	rb2 := registrytest.Record(registrytest.NewID("b"), "n2")
	if err := b.Register(ctx(t), rb2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, a); !slices.Contains(got, rb2.MemberID) {
		t.Fatalf("a does not list b's new incarnation: %v", got)
	}
	_ = b.Close()
	if got := listIDs(t, a); !slices.Equal(got, []string{ra.MemberID}) {
		t.Fatalf("after b's process went away, a lists %v", got)
	}
	if _, err := b.List(ctx(t)); err == nil {
		t.Fatal("List of a closed registry did not fail")
	}
}

// stubPeer is a peer whose answers the test writes.
func stubPeer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func answer(cluster string, lease time.Duration, recs ...registry.MemberRecord) []byte {
	type m struct {
		Record      json.RawMessage `json:"record"`
		LeaseMillis int64           `json:"leaseMillis"`
	}
	out := struct {
		Cluster string `json:"cluster"`
		Members []m    `json:"members"`
	}{Cluster: cluster}
	for _, r := range recs {
		b, err := r.Encode()
		if err != nil {
			b, _ = json.Marshal(r)
		}
		out.Members = append(out.Members, m{Record: b, LeaseMillis: lease.Milliseconds()})
	}
	b, _ := json.Marshal(out)
	return b
}

// A peer that stops answering (paused) keeps its records for the lease it
// last reported, and List does not wait longer than the timeout for it.
func TestSilentPeerKeepsItsLease(t *testing.T) {
	rec := registrytest.Record(registrytest.NewID("p"), "paused")
	var calls atomic.Int64
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	peer := stubPeer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			_, _ = w.Write(answer("ordersystem", 700*time.Millisecond, rec))
			return
		}
		select { // paused: accepts, never answers
		case <-r.Context().Done():
		case <-release:
		}
	})
	lister := newReg(t, peerreg.Options{Peers: []string{peer}, Timeout: 100 * time.Millisecond})
	start := time.Now()
	if got := listIDs(t, lister); !slices.Equal(got, []string{rec.MemberID}) {
		t.Fatalf("first List = %v", got)
	}
	t0 := time.Now()
	if got := listIDs(t, lister); !slices.Equal(got, []string{rec.MemberID}) {
		t.Fatalf("a peer that missed one answer was dropped: %v", got)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("List waited %v for a silent peer (timeout 100ms)", d)
	}
	for time.Since(start) < 700*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	if got := listIDs(t, lister); len(got) != 0 {
		t.Fatalf("a silent peer is still listed %v after its lease: %v", time.Since(start), got)
	}
}

// What a peer answers is bounded and validated; a bad answer lists nothing.
func TestHostileAnswers(t *testing.T) {
	good := registrytest.Record(registrytest.NewID("g"), "n")
	bad := good
	bad.MemberID = "a:b*c"
	many := make([]registry.MemberRecord, 17)
	for i := range many {
		many[i] = registrytest.Record(registrytest.NewID("m"), "n")
	}
	huge := []byte(`{"cluster":"ordersystem","members":[],"pad":"` + strings.Repeat("x", 70<<10) + `"}`)
	for name, body := range map[string][]byte{
		"other cluster":    answer("elsewhere", time.Second, good),
		"not JSON":         []byte("<html>"),
		"too big":          huge,
		"too many records": answer("ordersystem", time.Second, many...),
		"bad member id":    answer("ordersystem", time.Second, bad),
		"no lease":         answer("ordersystem", 0, good),
	} {
		t.Run(name, func(t *testing.T) {
			peer := stubPeer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
			lister := newReg(t, peerreg.Options{Peers: []string{peer}})
			if got := listIDs(t, lister); len(got) != 0 {
				t.Fatalf("List = %v, want nothing from a bad answer", got)
			}
		})
	}
	t.Run("lease capped", func(t *testing.T) {
		var calls atomic.Int64
		peer := stubPeer(t, func(w http.ResponseWriter, _ *http.Request) {
			if calls.Add(1) == 1 {
				_, _ = w.Write(answer("ordersystem", 1000*time.Hour, good))
				return
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
		})
		lister := newReg(t, peerreg.Options{Peers: []string{peer}, MaxLease: 200 * time.Millisecond})
		if got := listIDs(t, lister); len(got) != 1 {
			t.Fatalf("List = %v", got)
		}
		time.Sleep(300 * time.Millisecond)
		if got := listIDs(t, lister); len(got) != 0 {
			t.Fatalf("a peer's claimed lease of 1000h was not capped: %v", got)
		}
	})
}

// With a secret, the endpoint answers only requests that carry it, and a
// member with another secret sees nothing.
func TestSecret(t *testing.T) {
	holder := newReg(t, peerreg.Options{Secret: "right"})
	rec := registrytest.Record(registrytest.NewID("s"), "n")
	if err := holder.Register(ctx(t), rec, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	url := "http://" + holder.Addr() + peerreg.Path
	for _, auth := range []string{"", "Bearer wrong", "Bearer righ", "Bearer rightt", "right", "Basic cmlnaHQ="} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), rec.MemberID) {
			t.Fatalf("Authorization %q: %d %s, want 401 without records", auth, res.StatusCode, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer right")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), rec.MemberID) {
		t.Fatalf("with the secret: %d %s", res.StatusCode, body)
	}
	// Other methods and paths are not served.
	for _, u := range []string{"http://" + holder.Addr() + "/", "http://" + holder.Addr() + "/_health"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", u, res.StatusCode)
		}
	}
	res, err = http.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s = %d, want 405", peerreg.Path, res.StatusCode)
	}

	for name, secret := range map[string]string{"wrong secret": "wrong", "no secret": ""} {
		lister := newReg(t, peerreg.Options{Secret: secret, Peers: []string{holder.Addr()}})
		if got := listIDs(t, lister); len(got) != 0 {
			t.Errorf("%s: a member lists %v", name, got)
		}
	}
	lister := newReg(t, peerreg.Options{Secret: "right", Peers: []string{holder.Addr()}})
	if got := listIDs(t, lister); !slices.Equal(got, []string{rec.MemberID}) {
		t.Errorf("with the secret a member lists %v", got)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestOptionsValidation(t *testing.T) {
	for name, opts := range map[string]peerreg.Options{
		"bad peer":         {Listen: "127.0.0.1:0", Peers: []string{"no-port"}},
		"bad cluster":      {Listen: "127.0.0.1:0", Cluster: "a b"},
		"bad listen":       {Listen: "127.0.0.1:99999"},
		"negative timeout": {Listen: "127.0.0.1:0", Timeout: -time.Second},
		"one TLS side":     {Listen: "127.0.0.1:0", ServerTLS: &tls.Config{MinVersion: tls.VersionTLS12}},
	} {
		if r, err := peerreg.New(opts); err == nil {
			_ = r.Close()
			t.Errorf("%s: New(%+v) succeeded", name, opts)
		}
	}
	// A busy membership port is an error, not a silent second listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r, err := peerreg.New(peerreg.Options{Listen: l.Addr().String()}); err == nil {
		_ = r.Close()
		t.Fatal("New on a busy port succeeded")
	} else if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("error %q does not name the address", err)
	}
}
