package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// poolRoute is where the reads of one warm-up order go: to is the index of
// the target they are sent to, owner that of the target whose node owned
// the order when the warm-up created it.
type poolRoute struct{ to, owner int32 }

// Routing counts, for a routed run (Config.Route owner or other), the
// requests of the measured phase by the node that answered them, as named
// by the X-Order-Owner header of the answer. They add up to Report.Requests.
type Routing struct {
	// ToOwner counts requests answered by the node of the target they were
	// sent to: that target owned the order and served it locally.
	ToOwner uint64 `json:"toOwner"`
	// ToOther counts requests answered by another node: the target they
	// were sent to did not own the order and forwarded it.
	ToOther uint64 `json:"toOther"`
	// NoOwner counts requests whose answer named no owner (transport
	// errors, and answers that did not reach an order actor).
	NoOwner uint64 `json:"noOwner"`
	// Moved counts requests answered by a node other than the one that
	// owned the order at warm-up: the owner moved during the run (after a
	// membership change), so the owner/other split is not clean.
	Moved uint64 `json:"moved"`
}

// routeCounts is one worker's share of Routing.
type routeCounts struct{ toOwner, toOther, noOwner, moved uint64 }

// routed counts a routed request: answeredBy is its X-Order-Owner ("" when
// there was none), target the node id it was sent to, owner the node id
// that owned the order at warm-up.
func (c *routeCounts) routed(answeredBy, target, owner string) {
	switch answeredBy {
	case "":
		c.noOwner++
		return
	case target:
		c.toOwner++
	default:
		c.toOther++
	}
	if answeredBy != owner {
		c.moved++
	}
}

// maxInfoBody bounds the answer to GET / read for the node id.
const maxInfoBody = 1 << 20

// learnNodes asks every target for its node id (GET / answers a JSON object
// with "nodeId") and refuses two targets on the same node.
func (r *runner) learnNodes(ctx context.Context) error {
	seen := make(map[string]int, len(r.targets))
	for i, t := range r.targets {
		id, err := r.nodeID(ctx, t)
		if err != nil {
			return fmt.Errorf("-route %s: target %s: %w", r.cfg.Route, r.cfg.Targets[i], err)
		}
		if j, dup := seen[id]; dup {
			return fmt.Errorf("-route %s: targets %s and %s are the same node %q; give each cluster member once",
				r.cfg.Route, r.cfg.Targets[j], r.cfg.Targets[i], id)
		}
		seen[id] = i
		t.nodeID = id
	}
	return nil
}

// nodeID reads the node id of one target from GET / within cfg.Timeout.
func (r *runner) nodeID(ctx context.Context, t *target) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	u := *t.base
	u.Path = t.base.Path + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header = t.tmpl[OpLive].Header.Clone() // Authorization, if any
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u.String(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxInfoBody))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u.String(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d, want 200 with the node id", u.String(), resp.StatusCode)
	}
	var v struct {
		NodeID string `json:"nodeId"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.NodeID == "" {
		return "", fmt.Errorf("GET %s: no nodeId in the answer (is this an OrderSystem node?)", u.String())
	}
	return v.NodeID, nil
}

// routePool decides where the reads of each warm-up order go, from the
// owners the warm-up recorded (owners[i] owns r.pool[i]). It fails when an
// order has no owner or its owner is none of the targets.
func (r *runner) routePool(owners []string) error {
	n := len(r.targets)
	index := make(map[string]int32, n)
	for i, t := range r.targets {
		index[t.nodeID] = int32(i)
	}
	routes := make([]poolRoute, len(r.pool))
	for i, o := range owners {
		if o == "" {
			return fmt.Errorf("-route %s: the answer that created order %s had no %s header, so its owner is unknown",
				r.cfg.Route, r.pool[i], OwnerHeader)
		}
		k, ok := index[o]
		if !ok {
			return fmt.Errorf("-route %s: order %s is owned by node %q, which is none of the targets (%s); list every cluster member in -targets",
				r.cfg.Route, r.pool[i], o, r.describeNodes())
		}
		to := k
		if r.cfg.Route == RouteOther {
			to = (k + 1) % int32(n)
		}
		routes[i] = poolRoute{to: to, owner: k}
	}
	r.poolRoute = routes
	return nil
}

// describeNodes lists the targets with their node ids: "url=id, ...".
func (r *runner) describeNodes() string {
	parts := make([]string, len(r.targets))
	for i, t := range r.targets {
		parts[i] = r.cfg.Targets[i] + "=" + t.nodeID
	}
	return strings.Join(parts, ", ")
}

// routedStep sends one request of a routed run on a random pool order to
// the target its route names, and counts who answered.
func (w *worker) routedStep(ctx context.Context, i int) bool {
	r := w.r
	pr := r.poolRoute[i]
	t := r.targets[pr.to]
	_, _, more := w.sendTo(ctx, t, r.op, r.pool[i])
	if more {
		w.rec.route.routed(w.owner, t.nodeID, r.targets[pr.owner].nodeID)
	}
	return more
}
