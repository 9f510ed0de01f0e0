package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

// Factory returns a fresh, empty registry for one subtest whose leases
// last ttl (a registry whose expiry is a bucket setting needs it up front).
// The factory registers its own cleanup (t.Cleanup) to close the registry
// and delete what it stored.
type Factory func(t *testing.T, ttl time.Duration) registry.Registry

// Options tune the suite to a backend.
type Options struct {
	// TTL is the lease used by the suite (default 500 ms). Backends with a
	// coarse expiry (NATS per-message TTLs are whole seconds) use more.
	TTL time.Duration
	// ExpirySlack is how long after TTL a stale record may still be listed
	// (default 2 s): backends expire keys on their own schedule.
	ExpirySlack time.Duration
}

var seq atomic.Int64

// NewID returns a member id unique within the process.
func NewID(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-" + strconv.FormatInt(seq.Add(1), 10)
}

// Record returns a valid record for member id of node.
func Record(memberID, nodeID string) registry.MemberRecord {
	return registry.MemberRecord{
		MemberID:  memberID,
		NodeID:    nodeID,
		Host:      "127.0.0.1",
		Port:      7000 + int(seq.Add(1)%1000),
		Kinds:     []string{"order", "echo"},
		StartedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ids(recs []registry.MemberRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.MemberID
	}
	return out
}

func list(t *testing.T, reg registry.Registry) []registry.MemberRecord {
	t.Helper()
	recs, err := reg.List(ctxT(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return recs
}

func listed(t *testing.T, reg registry.Registry, id string) bool {
	t.Helper()
	return slices.Contains(ids(list(t, reg)), id)
}

func register(t *testing.T, reg registry.Registry, rec registry.MemberRecord, ttl time.Duration) {
	t.Helper()
	if err := reg.Register(ctxT(t), rec, ttl); err != nil {
		t.Fatalf("Register(%s): %v", rec.MemberID, err)
	}
}

// waitGone polls until id is no longer listed and returns how long it took.
func waitGone(t *testing.T, reg registry.Registry, id string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for listed(t, reg, id) {
		if time.Now().After(deadline) {
			t.Fatalf("member %s still listed %v after its last renewal", id, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func sameRecord(a, b registry.MemberRecord) error {
	switch {
	case a.MemberID != b.MemberID, a.NodeID != b.NodeID, a.Host != b.Host, a.Port != b.Port:
		return fmt.Errorf("got %+v, want %+v", a, b)
	case !a.StartedAt.Equal(b.StartedAt):
		return fmt.Errorf("StartedAt %v, want %v", a.StartedAt, b.StartedAt)
	}
	ak, bk := slices.Clone(a.Kinds), slices.Clone(b.Kinds)
	slices.Sort(ak)
	slices.Sort(bk)
	if !slices.Equal(ak, bk) {
		return fmt.Errorf("kinds %v, want %v", a.Kinds, b.Kinds)
	}
	return nil
}

// Run runs the contract against registries made by newRegistry. Subtests
// run in parallel, each with its own registry.
func Run(t *testing.T, opts Options, newRegistry Factory) {
	if opts.TTL == 0 {
		opts.TTL = 500 * time.Millisecond
	}
	if opts.ExpirySlack == 0 {
		opts.ExpirySlack = 2 * time.Second
	}
	ttl := opts.TTL
	longTTL := 30 * time.Second
	if ttl > longTTL {
		longTTL = 2 * ttl
	}

	t.Run("RegisterAndList", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		if got := list(t, reg); len(got) != 0 {
			t.Fatalf("fresh registry lists %v", ids(got))
		}
		a, b := Record(NewID("b"), "node-b"), Record(NewID("a"), "node-a")
		register(t, reg, a, longTTL)
		register(t, reg, b, longTTL)
		got := list(t, reg)
		want := []registry.MemberRecord{a, b}
		registry.SortRecords(want)
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("List = %v, want %v (sorted by member id)", ids(got), ids(want))
		}
		for i := range got {
			if err := sameRecord(got[i], want[i]); err != nil {
				t.Fatalf("record %d does not round-trip: %v", i, err)
			}
		}
	})

	t.Run("RegisterTwiceFails", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		a := Record(NewID("m"), "node-1")
		register(t, reg, a, longTTL)
		if err := reg.Register(ctxT(t), a, longTTL); !errors.Is(err, registry.ErrMemberExists) {
			t.Fatalf("second Register = %v, want ErrMemberExists", err)
		}
		other := a
		other.NodeID = "node-2"
		if err := reg.Register(ctxT(t), other, longTTL); !errors.Is(err, registry.ErrMemberExists) {
			t.Fatalf("Register of another record under the same id = %v, want ErrMemberExists", err)
		}
	})

	t.Run("InvalidRecord", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		for _, id := range []string{"", "a.b", "a:b", "a*", "a b"} {
			if err := reg.Register(ctxT(t), Record(id, "n"), longTTL); !errors.Is(err, registry.ErrInvalidRecord) {
				t.Errorf("Register(member id %q) = %v, want ErrInvalidRecord", id, err)
			}
		}
	})

	t.Run("RenewKeepsLeaseAlive", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, ttl)
		a := Record(NewID("m"), "node-1")
		register(t, reg, a, ttl)
		// Renew at ttl/3 for 2.5 TTLs: the record must stay listed
		// throughout, well past its first lease.
		end := time.Now().Add(ttl*5/2 + opts.ExpirySlack/2)
		for time.Now().Before(end) {
			if err := reg.Renew(ctxT(t), a, ttl); err != nil {
				t.Fatalf("Renew: %v", err)
			}
			if !listed(t, reg, a.MemberID) {
				t.Fatalf("renewed member %s not listed", a.MemberID)
			}
			time.Sleep(ttl / 3)
		}
	})

	t.Run("ExpiresWithoutRenewal", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, ttl)
		a, b := Record(NewID("m"), "node-1"), Record(NewID("m"), "node-2")
		register(t, reg, a, ttl)
		register(t, reg, b, ttl)
		if !listed(t, reg, a.MemberID) {
			t.Fatalf("member %s not listed right after Register", a.MemberID)
		}
		// b stays alive: expiry is per record.
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			tk := time.NewTicker(ttl / 4)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					done <- nil
					return
				case <-tk.C:
					ctx, cancel := context.WithTimeout(context.Background(), ttl)
					err := reg.Renew(ctx, b, ttl)
					cancel()
					if err != nil {
						done <- err
						return
					}
				}
			}
		}()
		took := waitGone(t, reg, a.MemberID, ttl+opts.ExpirySlack)
		t.Logf("record expired %v after registration (ttl %v)", took.Round(time.Millisecond), ttl)
		if took < ttl/2 {
			t.Errorf("record expired after %v, before half its ttl %v", took, ttl)
		}
		close(stop)
		if err := <-done; err != nil {
			t.Fatalf("renewing the other member: %v", err)
		}
		if !listed(t, reg, b.MemberID) {
			t.Fatalf("renewed member %s expired with the other one", b.MemberID)
		}
	})

	t.Run("RenewAfterExpiryFails", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, ttl)
		a := Record(NewID("m"), "node-1")
		register(t, reg, a, ttl)
		waitGone(t, reg, a.MemberID, ttl+opts.ExpirySlack)
		if err := reg.Renew(ctxT(t), a, ttl); !errors.Is(err, registry.ErrLeaseLost) {
			t.Fatalf("Renew after expiry = %v, want ErrLeaseLost", err)
		}
		if listed(t, reg, a.MemberID) {
			t.Fatalf("failed Renew brought member %s back", a.MemberID)
		}
		if err := reg.Renew(ctxT(t), Record(NewID("never"), "n"), ttl); !errors.Is(err, registry.ErrLeaseLost) {
			t.Fatalf("Renew of a never registered member = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("RenewOfAnotherRecordFails", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		a := Record(NewID("m"), "node-1")
		register(t, reg, a, longTTL)
		impostor := a
		impostor.StartedAt = a.StartedAt.Add(time.Second)
		if err := reg.Renew(ctxT(t), impostor, longTTL); !errors.Is(err, registry.ErrLeaseLost) {
			t.Fatalf("Renew with a different record under the same id = %v, want ErrLeaseLost", err)
		}
		if err := reg.Renew(ctxT(t), a, longTTL); err != nil {
			t.Fatalf("Renew of the own record: %v", err)
		}
	})

	t.Run("DeregisterOnlyOwnRecord", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		a, b := Record(NewID("m"), "node-1"), Record(NewID("m"), "node-2")
		register(t, reg, a, longTTL)
		register(t, reg, b, longTTL)
		impostor := a
		impostor.NodeID = "node-x"
		if err := reg.Deregister(ctxT(t), impostor); err != nil {
			t.Fatalf("Deregister of a record that is not ours: %v, want nil (nothing of ours to delete)", err)
		}
		if err := reg.Deregister(ctxT(t), Record(NewID("never"), "n")); err != nil {
			t.Fatalf("Deregister of an unknown member: %v", err)
		}
		if got := ids(list(t, reg)); len(got) != 2 {
			t.Fatalf("after foreign deregistrations List = %v, want both members", got)
		}
		if err := reg.Deregister(ctxT(t), a); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		if got, want := ids(list(t, reg)), []string{b.MemberID}; !slices.Equal(got, want) {
			t.Fatalf("after Deregister List = %v, want %v", got, want)
		}
		if err := reg.Deregister(ctxT(t), a); err != nil {
			t.Fatalf("second Deregister: %v (must be idempotent)", err)
		}
		if err := reg.Renew(ctxT(t), a, longTTL); !errors.Is(err, registry.ErrLeaseLost) {
			t.Fatalf("Renew after Deregister = %v, want ErrLeaseLost", err)
		}
	})

	// A member missing from one List is dropped and blocked by protoactor
	// for good, so List must not miss records renewed while it runs.
	t.Run("ListDuringRenewals", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		recs := make([]registry.MemberRecord, 3)
		for i := range recs {
			recs[i] = Record(NewID("m"), "node-"+strconv.Itoa(i))
			register(t, reg, recs[i], longTTL)
		}
		stop := make(chan struct{})
		errs := make(chan error, len(recs))
		for _, rec := range recs {
			go func() {
				for {
					select {
					case <-stop:
						errs <- nil
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := reg.Renew(ctx, rec, longTTL)
					cancel()
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for range 40 {
			if got := list(t, reg); len(got) != len(recs) {
				close(stop)
				t.Fatalf("List during renewals returned %v, want all %d members", ids(got), len(recs))
			}
		}
		close(stop)
		for range recs {
			if err := <-errs; err != nil {
				t.Fatalf("Renew: %v", err)
			}
		}
	})

	t.Run("IncarnationsAreSeparateMembers", func(t *testing.T) {
		t.Parallel()
		reg := newRegistry(t, longTTL)
		old, cur := Record(NewID("inc1"), "node-1"), Record(NewID("inc2"), "node-1")
		register(t, reg, old, longTTL)
		register(t, reg, cur, longTTL)
		got := list(t, reg)
		if len(got) != 2 || got[0].NodeID != "node-1" || got[1].NodeID != "node-1" {
			t.Fatalf("List = %+v, want both incarnations of node-1", got)
		}
		if err := reg.Deregister(ctxT(t), old); err != nil {
			t.Fatalf("Deregister old incarnation: %v", err)
		}
		if got := ids(list(t, reg)); !slices.Equal(got, []string{cur.MemberID}) {
			t.Fatalf("after the old incarnation left List = %v, want only %s", got, cur.MemberID)
		}
		if err := reg.Renew(ctxT(t), cur, longTTL); err != nil {
			t.Fatalf("Renew of the new incarnation: %v", err)
		}
		if err := reg.Renew(ctxT(t), old, longTTL); !errors.Is(err, registry.ErrLeaseLost) {
			t.Fatalf("Renew of the old incarnation = %v, want ErrLeaseLost", err)
		}
	})
}
