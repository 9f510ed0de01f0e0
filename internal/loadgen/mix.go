package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// Op is one kind of request the generator sends.
type Op uint8

// The operations, one per API route the generator knows.
const (
	OpLive    Op = iota // GET /health/live
	OpReady             // GET /health/ready
	OpCreate            // POST /orders
	OpRead              // GET /orders/{id}
	OpPay               // POST /orders/{id}/pay
	OpShip              // POST /orders/{id}/ship
	OpDeliver           // POST /orders/{id}/deliver
	OpCancel            // POST /orders/{id}/cancel
	OpHistory           // GET /orders/{id}/history
	OpList              // GET /orders?limit=N
	OpStats             // GET /stats
	numOps
)

var opNames = [numOps]string{
	OpLive:    "live",
	OpReady:   "ready",
	OpCreate:  "create",
	OpRead:    "read",
	OpPay:     "pay",
	OpShip:    "ship",
	OpDeliver: "deliver",
	OpCancel:  "cancel",
	OpHistory: "history",
	OpList:    "list",
	OpStats:   "stats",
}

// String returns the operation's name as used in -mix and in reports.
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// ParseOp returns the operation with the given name.
func ParseOp(name string) (Op, bool) {
	for i, n := range opNames {
		if n == name {
			return Op(i), true
		}
	}
	return 0, false
}

// needsOrder reports whether the operation works on an existing order.
func (o Op) needsOrder() bool {
	switch o {
	case OpRead, OpPay, OpShip, OpDeliver, OpCancel, OpHistory:
		return true
	}
	return false
}

// DefaultMix is the -mix default: mostly reads, with enough creates, payments
// and shipments to keep orders moving through the state machine.
const DefaultMix = "create=1,pay=1,ship=1,read=7"

// maxMixWeight bounds one weight so the sum cannot overflow.
const maxMixWeight = 1_000_000

// Mix holds one integer weight per operation; an operation is chosen with
// probability weight/total.
type Mix [numOps]uint32

// MixError says which token of a -mix value is wrong and why.
type MixError struct {
	Value  string // the whole -mix value
	Token  string // the offending name=weight token
	Reason string
}

func (e *MixError) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("-mix %q: %s", e.Value, e.Reason)
	}
	return fmt.Sprintf("-mix %q: token %q: %s", e.Value, e.Token, e.Reason)
}

// ParseMix parses "name=weight,name=weight,...". Names are operation names
// (live, ready, create, read, pay, ship, deliver, cancel, history, list,
// stats), weights non-negative integers, at least one of them positive; a
// name may appear once. Errors are *MixError and name the bad token.
func ParseMix(s string) (Mix, error) {
	var m Mix
	var seen [numOps]bool
	if strings.TrimSpace(s) == "" {
		return m, &MixError{Value: s, Reason: "empty; want name=weight pairs such as " + DefaultMix}
	}
	var total uint64
	for _, tok := range strings.Split(s, ",") {
		t := strings.TrimSpace(tok)
		if t == "" {
			return m, &MixError{Value: s, Token: tok, Reason: "empty token (stray comma?)"}
		}
		name, w, ok := strings.Cut(t, "=")
		if !ok {
			return m, &MixError{Value: s, Token: t, Reason: "want name=weight"}
		}
		name = strings.TrimSpace(name)
		op, ok := ParseOp(name)
		if !ok {
			return m, &MixError{Value: s, Token: t, Reason: fmt.Sprintf("unknown operation %q (want one of %s)", name, strings.Join(opNames[:], ", "))}
		}
		if seen[op] {
			return m, &MixError{Value: s, Token: t, Reason: fmt.Sprintf("operation %q given twice", name)}
		}
		seen[op] = true
		n, err := strconv.ParseUint(strings.TrimSpace(w), 10, 32)
		if err != nil || n > maxMixWeight {
			return m, &MixError{Value: s, Token: t, Reason: fmt.Sprintf("weight %q is not an integer from 0 to %d", w, maxMixWeight)}
		}
		m[op] = uint32(n)
		total += n
	}
	if total == 0 {
		return m, &MixError{Value: s, Reason: "all weights are zero"}
	}
	return m, nil
}

// String formats the mix as ParseMix accepts it, in operation order,
// leaving out zero weights.
func (m Mix) String() string {
	var b strings.Builder
	for i, w := range m {
		if w == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(opNames[i])
		b.WriteByte('=')
		b.WriteString(strconv.FormatUint(uint64(w), 10))
	}
	return b.String()
}

func (m Mix) total() uint64 {
	var t uint64
	for _, w := range m {
		t += uint64(w)
	}
	return t
}

// picker chooses operations by weight from a cumulative table.
type picker struct {
	ops   []Op
	cum   []uint64
	total uint64
}

func newPicker(m Mix) picker {
	var p picker
	for i, w := range m {
		if w == 0 {
			continue
		}
		p.total += uint64(w)
		p.ops = append(p.ops, Op(i))
		p.cum = append(p.cum, p.total)
	}
	return p
}

// pick maps r, uniform in [0, total), to an operation.
func (p *picker) pick(r uint64) Op {
	for i, c := range p.cum {
		if r < c {
			return p.ops[i]
		}
	}
	return p.ops[len(p.ops)-1]
}
