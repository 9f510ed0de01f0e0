package drill

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Op is what a client asked for.
type Op struct {
	Order string
	Kind  string // create, pay, ship, deliver, read
	key   string // the Idempotency-Key of a create (or, if set, of a command)
}

// Outcome is what the client saw. Unknown means the outcome is not known
// (timeout, connection lost, 503): the operation may or may not have
// happened.
type Outcome struct {
	Code    int // HTTP status; 0 when unknown
	Status  string
	Version uint64
	Unknown bool
}

// register is an order as the model sees it.
type register struct {
	Status  string
	Version uint64
}

var next = map[string]struct{ from, to string }{
	"pay":     {"Pending", "Paid"},
	"ship":    {"Paid", "Shipped"},
	"deliver": {"Shipped", "Delivered"},
}

// apply returns the register after op, and whether op is allowed on r.
func apply(r register, kind string) (register, bool) {
	switch kind {
	case "create":
		if r.Version != 0 {
			return r, false
		}
		return register{Status: "Pending", Version: 1}, true
	case "cancel":
		if r.Status != "Pending" && r.Status != "Paid" {
			return r, false
		}
		return register{Status: "Cancelled", Version: r.Version + 1}, true
	default:
		t, ok := next[kind]
		if !ok || r.Status != t.from {
			return r, false
		}
		return register{Status: t.to, Version: r.Version + 1}, true
	}
}

// Model is the porcupine model of one order register per order id.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range history {
				k := op.Input.(Op).Order
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				by[k] = append(by[k], op)
			}
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() any { return register{} },
		Step: func(state, input, output any) (bool, any) {
			r, in, out := state.(register), input.(Op), output.(Outcome)
			if in.Kind == "read" {
				if out.Unknown {
					return true, r
				}
				if out.Code == 404 {
					return r.Version == 0, r
				}
				return out.Status == r.Status && out.Version == r.Version, r
			}
			after, allowed := apply(r, in.Kind)
			switch {
			case out.Unknown:
				// It may have happened (if allowed) or not; an unknown
				// operation can be linearized at the very end, so taking
				// the effect here is only one of the orders tried.
				return true, after
			case out.Code >= 200 && out.Code < 300:
				return allowed && out.Status == after.Status && out.Version == after.Version, after
			case out.Code == 409 || out.Code == 404:
				return !allowed, r
			default:
				return false, r
			}
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(Op), output.(Outcome)
			if out.Unknown {
				return fmt.Sprintf("%s(%s) -> ?", in.Kind, in.Order)
			}
			return fmt.Sprintf("%s(%s) -> %d %s v%d", in.Kind, in.Order, out.Code, out.Status, out.Version)
		},
	}
}
