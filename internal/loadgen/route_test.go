package loadgen

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// routedConfig is testConfig for a routed run over the given nodes.
func routedConfig(scenario, route string, nodes ...*fakeNode) Config {
	cfg := testConfig(nodes[0].srv.URL, scenario)
	cfg.Targets = nil
	for _, n := range nodes {
		cfg.Targets = append(cfg.Targets, n.srv.URL)
	}
	cfg.Route = route
	cfg.MaxRequests = 600
	cfg.Pool = 30
	return cfg
}

func TestRouteOwnerSendsEachReadToTheOwner(t *testing.T) {
	for _, scenario := range []string{"read", "history"} {
		t.Run(scenario, func(t *testing.T) {
			ids := []string{"n1", "n2", "n3"}
			f := &fakeAPI{owner: spreadOwners(ids...)}
			nodes := newFakeCluster(t, f, ids...)
			cfg := routedConfig(scenario, RouteOwner, nodes[2], nodes[0], nodes[1]) // not in owner order
			rep := mustRun(t, cfg)

			if rep.Successes != 600 || rep.WarmupOrders != 30 {
				t.Fatalf("successes %d warm-up %d; want 600 and 30 (status %v errors %v)", rep.Successes, rep.WarmupOrders, rep.Status, rep.Errors)
			}
			total := 0
			for _, n := range nodes {
				for owner, c := range n.reads() {
					if owner != n.id {
						t.Errorf("node %s answered %d reads of orders owned by %q", n.id, c, owner)
					}
					total += c
				}
			}
			if total != 600 {
				t.Fatalf("nodes saw %d reads, want 600", total)
			}
			if rep.Route != RouteOwner || !slices.Equal(rep.Nodes, []string{"n3", "n1", "n2"}) {
				t.Fatalf("route %q nodes %v", rep.Route, rep.Nodes)
			}
			if want := (Routing{ToOwner: 600}); rep.Routing == nil || *rep.Routing != want {
				t.Fatalf("routing %+v, want %+v", rep.Routing, want)
			}
			var buf bytes.Buffer
			if err := WriteText(&buf, []Report{rep}); err != nil {
				t.Fatal(err)
			}
			if line := "  route=owner nodes=n3,n1,n2: to-owner=600 to-other=0 no-owner=0 moved=0\n"; !strings.Contains(buf.String(), line) {
				t.Fatalf("text report lacks %q:\n%s", line, buf.String())
			}
		})
	}
}

func TestRouteOtherSendsEachReadToTheNextTarget(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	f := &fakeAPI{owner: spreadOwners(ids...)}
	nodes := newFakeCluster(t, f, ids...)
	order := []*fakeNode{nodes[2], nodes[0], nodes[1]} // targets n3, n1, n2
	cfg := routedConfig("read", RouteOther, order...)
	rep := mustRun(t, cfg)

	if rep.Successes != 600 {
		t.Fatalf("successes %d of 600 (status %v errors %v)", rep.Successes, rep.Status, rep.Errors)
	}
	// Reads of an order owned by target i go to target i+1: node n1 (target
	// 1) gets n3's orders, n2 gets n1's, n3 gets n2's.
	total := 0
	for i, n := range order {
		prev := order[(i+len(order)-1)%len(order)].id
		for owner, c := range n.reads() {
			if owner != prev {
				t.Errorf("node %s answered %d reads of orders owned by %q; want only %q's", n.id, c, owner, prev)
			}
			total += c
		}
		if n.reads()[prev] == 0 {
			t.Errorf("node %s answered no read of %s's orders", n.id, prev)
		}
	}
	if total != 600 {
		t.Fatalf("nodes saw %d reads, want 600", total)
	}
	if want := (Routing{ToOther: 600}); rep.Routing == nil || *rep.Routing != want {
		t.Fatalf("routing %+v, want %+v", rep.Routing, want)
	}
}

func TestRouteCountsMovedOwners(t *testing.T) {
	// Every order is created on one node but answered by the next: as if
	// all owners moved between the warm-up and the measured phase.
	ids := []string{"n1", "n2"}
	spread := spreadOwners(ids...)
	f := &fakeAPI{owner: func(r *http.Request, id string) string {
		o := spread(r, id)
		if r.Method == http.MethodGet {
			o = map[string]string{"n1": "n2", "n2": "n1"}[o]
		}
		return o
	}}
	nodes := newFakeCluster(t, f, ids...)
	cfg := routedConfig("read", RouteOwner, nodes...)
	cfg.MaxRequests = 100
	rep := mustRun(t, cfg)
	if want := (Routing{ToOther: 100, Moved: 100}); rep.Routing == nil || *rep.Routing != want {
		t.Fatalf("routing %+v, want %+v", rep.Routing, want)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool {
		return strings.Contains(n, "100 of 100 requests") && strings.Contains(n, "owners moved")
	}) {
		t.Fatalf("want a note on moved owners, got %q", rep.Notes)
	}
}

func TestRouteCountsAnswersWithoutOwner(t *testing.T) {
	// The warm-up sees owners, the reads do not (the orders are gone).
	ids := []string{"n1", "n2"}
	f := &fakeAPI{owner: spreadOwners(ids...), refuse: map[string]struct{}{"GET /orders/{id}": {}}}
	nodes := newFakeCluster(t, f, ids...)
	cfg := routedConfig("read", RouteOther, nodes...)
	cfg.MaxRequests = 50
	rep := mustRun(t, cfg)
	if want := (Routing{NoOwner: 50}); rep.Status[http.StatusServiceUnavailable] != 50 || rep.Routing == nil || *rep.Routing != want {
		t.Fatalf("status %v routing %+v, want 50 503s without owner", rep.Status, rep.Routing)
	}
}

func TestRouteFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) Config
		want  []string
	}{
		{"owner not a target", func(t *testing.T) Config {
			ids := []string{"n1", "n2", "n3"}
			nodes := newFakeCluster(t, &fakeAPI{owner: spreadOwners(ids...)}, ids...)
			return routedConfig("read", RouteOwner, nodes[0], nodes[1])
		}, []string{"-route owner", `owned by node "n3"`, "none of the targets", "=n1", "=n2"}},
		{"same node twice", func(t *testing.T) Config {
			nodes := newFakeCluster(t, &fakeAPI{owner: spreadOwners("n1")}, "n1", "n1")
			return routedConfig("read", RouteOther, nodes...)
		}, []string{"-route other", `same node "n1"`}},
		{"no owner header", func(t *testing.T) Config {
			nodes := newFakeCluster(t, &fakeAPI{}, "n1", "n2")
			return routedConfig("history", RouteOwner, nodes...)
		}, []string{"-route owner", "no X-Order-Owner header"}},
		{"no node id", func(t *testing.T) Config {
			a, b := newFakeServer(t, &fakeAPI{}), newFakeServer(t, &fakeAPI{})
			cfg := testConfig(a.URL, "read")
			cfg.Targets = []string{a.URL, b.URL}
			cfg.Route = RouteOwner
			return cfg
		}, []string{"-route owner", "status 404"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.setup(t)
			_, err := Run(context.Background(), cfg)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run = %q, want it to contain %q", err, w)
				}
			}
			if tc.name == "no node id" && !strings.Contains(err.Error(), cfg.Targets[0]) {
				t.Errorf("Run = %q, want it to name the target %s", err, cfg.Targets[0])
			}
		})
	}
}

func TestValidateRoute(t *testing.T) {
	two := []string{"http://127.0.0.1:5201", "http://127.0.0.1:5202"}
	for _, tc := range []struct {
		route, scenario string
		targets         []string
		want            string // "" for valid
	}{
		{"", "read", nil, ""},
		{RouteAny, "live", nil, ""},
		{RouteAny, "read", two, ""},
		{RouteOwner, "read", two, ""},
		{RouteOther, "history", two, ""},
		{"sideways", "read", two, `-route "sideways": unknown (want one of any, owner, other)`},
		{RouteOwner, "live", two, "-route owner: only for the read and history scenarios, not live"},
		{RouteOther, "mix", two, "-route other: only for the read and history scenarios, not mix"},
		{RouteOther, "read", nil, "-route other: needs at least 2 -targets"},
	} {
		c := DefaultConfig()
		c.Route, c.Scenario = tc.route, tc.scenario
		if tc.targets != nil {
			c.Targets = tc.targets
		}
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(route %q, %s, %d targets) = %v, want nil", tc.route, tc.scenario, len(c.Targets), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(route %q, %s, %d targets) = %v, want an error containing %q", tc.route, tc.scenario, len(c.Targets), err, tc.want)
		}
	}
}
