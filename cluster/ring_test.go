package cluster

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// oneHost is the README's cluster of three processes on one machine:
// addresses that differ in their last byte, member ids as the actor system
// mints them (one per incarnation).
func oneHost() []*pcluster.Member {
	return []*pcluster.Member{
		{Id: "qWsX4nHcTzPdJ8bE2vLkRa", Host: "127.0.0.1", Port: 6001, Kinds: []string{"order", "outbox"}},
		{Id: "Z7mC3yGfUe9hNtBp5sKwDq", Host: "127.0.0.1", Port: 6002, Kinds: []string{"order", "outbox"}},
		{Id: "c2VbR6jLxAo4MiYg8uTnHe", Host: "127.0.0.1", Port: 6003, Kinds: []string{"order", "outbox"}},
	}
}

// orderIDs returns n order ids shaped like the API's (16 hex digits),
// the same on every run.
func orderIDs(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, n)
	for i := range ids {
		var b [8]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		ids[i] = hex.EncodeToString(b[:])
	}
	return ids
}

func shares(r *ring, kind string, ids []string) map[string]int {
	got := map[string]int{}
	for _, id := range ids {
		got[r.owner(&pcluster.ClusterIdentity{Identity: id, Kind: kind})]++
	}
	return got
}

// Three members on one host each own a third of the orders, within 15 %
// (protoactor's FNV-1a rendezvous gave the hex ids 4989, 2462 and 2549).
func TestRingSpreadsEvenly(t *testing.T) {
	const n = 10000
	hex := orderIDs(n)
	seq := make([]string, n)
	for i := range seq {
		seq[i] = fmt.Sprintf("order-%d", i)
	}
	otherHosts := []*pcluster.Member{
		{Id: "m1", Host: "10.0.0.1", Port: 6000, Kinds: []string{"order"}},
		{Id: "m2", Host: "10.0.0.2", Port: 6000, Kinds: []string{"order"}},
		{Id: "m3", Host: "10.0.0.3", Port: 6000, Kinds: []string{"order"}},
	}
	for _, tc := range []struct {
		name    string
		members []*pcluster.Member
		ids     []string
	}{
		{"one host, hex ids", oneHost(), hex},
		{"one host, sequential ids", oneHost(), seq},
		{"three hosts, hex ids", otherHosts, hex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := shares(newRing(tc.members), "order", tc.ids)
			if len(got) != len(tc.members) {
				t.Fatalf("owners %v, want all %d members", got, len(tc.members))
			}
			third := float64(n) / 3
			for addr, c := range got {
				if dev := (float64(c) - third) / third; dev > 0.15 || dev < -0.15 {
					t.Errorf("%s owns %d of %d (%.1f %% off a third); all: %v", addr, c, n, 100*dev, got)
				}
			}
			t.Logf("shares of %d: %v", n, got)
		})
	}
}

// The owner is a fixed function of the identity and the addresses: the same
// in every process and on every run, whatever order the members come in.
// The pins catch a change of the hash (which moves orders between members).
func TestRingIsStable(t *testing.T) {
	pins := map[string]string{
		"0123456789abcdef": "127.0.0.1:6003",
		"fedcba9876543210": "127.0.0.1:6002",
		"order-1":          "127.0.0.1:6003",
		"order-7":          "127.0.0.1:6001",
		"outbox":           "127.0.0.1:6002",
	}
	ms := oneHost()
	r := newRing(ms)
	reversed := newRing([]*pcluster.Member{ms[2], ms[1], ms[0]})
	for id, want := range pins {
		ci := &pcluster.ClusterIdentity{Identity: id, Kind: "order"}
		got := r.owner(ci)
		if got != want {
			t.Errorf("%s is owned by %s, pinned to %s", id, got, want)
		}
		if rev := reversed.owner(ci); rev != got {
			t.Errorf("%s: owner %s, %s with the members in another order", id, got, rev)
		}
	}
}

// Only members that host the kind own its identities; no such member means
// no owner.
func TestRingHonoursKinds(t *testing.T) {
	ms := oneHost()
	ms[0].Kinds = []string{"outbox"}
	r := newRing(ms)
	for _, id := range orderIDs(300) {
		if got := r.owner(&pcluster.ClusterIdentity{Identity: id, Kind: "order"}); got == ms[0].Address() || got == "" {
			t.Fatalf("%s owned by %q, which does not host orders", id, got)
		}
	}
	if got := r.owner(&pcluster.ClusterIdentity{Identity: "x", Kind: "unknown"}); got != "" {
		t.Fatalf("an unknown kind is owned by %q", got)
	}
	if got := newRing(nil).owner(&pcluster.ClusterIdentity{Identity: "x", Kind: "order"}); got != "" {
		t.Fatalf("an empty ring names owner %q", got)
	}
}

// The view's digest is a function of the members, not of the order they
// come in; it changes when a member is missing or re-incarnated (a new
// member id at the same address), so members can compare routing views.
func TestRingViewDigest(t *testing.T) {
	ms := oneHost()
	a := newRing(ms).view()
	b := newRing([]*pcluster.Member{ms[2], ms[0], ms[1]}).view()
	if a.Digest != b.Digest || a.Sum != b.Sum || a.Members != 3 || len(a.Digest) != 16 {
		t.Fatalf("views %+v and %+v of the same members", a, b)
	}
	if a.Sum >= 1<<53 {
		t.Fatalf("sum %d does not fit a float64 exactly", a.Sum)
	}
	fewer := newRing(ms[:2]).view()
	again := &pcluster.Member{Id: ms[1].Id + "-next", Host: ms[1].Host, Port: ms[1].Port, Kinds: ms[1].Kinds}
	reborn := newRing([]*pcluster.Member{ms[0], again, ms[2]}).view()
	for name, v := range map[string]View{"two members": fewer, "a re-incarnated member": reborn} {
		if v.Digest == a.Digest {
			t.Fatalf("%s: the same digest %s as the three members", name, v.Digest)
		}
	}
	if empty := (&ring{}).view(); empty.Members != 0 || empty.Digest == a.Digest {
		t.Fatalf("empty view %+v", empty)
	}
}
