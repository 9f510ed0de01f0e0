package order

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// decimalSyntax is the grammar ParseCents accepts, written independently of
// its implementation: sign, digits with an optional fraction, decimal exponent.
var decimalSyntax = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// plainAmount is the common wire form, whose value the test computes itself.
var plainAmount = regexp.MustCompile(`^(-?)([0-9]{1,15})(?:\.([0-9]{1,2}))?$`)

var renderedCents = regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]{2}$`)

func FuzzParseCents(f *testing.F) {
	for _, s := range []string{
		"999.99", "29.99", "10", "0.5", "1e2", "1.50", "-1", "0", "-0", "1059.97", ".5", "5.", "+1",
		"1.999", "abc", "1/2", "NaN", "Infinity", "", "1e", "0x10", "0b1", "0o7", "0x1p-2", "1_0",
		"92233720368547758.07", "-92233720368547758.08", "92233720368547758.08", "1e20", "1e-2", "1e999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCents(s)
		if err != nil {
			if c != 0 {
				t.Fatalf("ParseCents(%q) = %d with error %v", s, int64(c), err)
			}
			if m := plainAmount.FindStringSubmatch(s); m != nil {
				t.Fatalf("ParseCents(%q) refused a plain amount: %v", s, err)
			}
			return
		}
		if !decimalSyntax.MatchString(s) {
			t.Fatalf("ParseCents(%q) = %d, but %q is not a decimal number", s, int64(c), s)
		}
		out := c.String()
		if !renderedCents.MatchString(out) {
			t.Fatalf("Cents(%d).String() = %q", int64(c), out)
		}
		back, err := ParseCents(out)
		if err != nil || back != c {
			t.Fatalf("ParseCents(%q) = %d; ParseCents(%q) = %d, %v", s, int64(c), out, int64(back), err)
		}
		if m := plainAmount.FindStringSubmatch(s); m != nil {
			whole, _ := strconv.ParseInt(m[2], 10, 64)
			frac, _ := strconv.ParseInt((m[3] + "00")[:2], 10, 64)
			want := whole*100 + frac
			if m[1] == "-" {
				want = -want
			}
			if int64(c) != want {
				t.Fatalf("ParseCents(%q) = %d, want %d", s, int64(c), want)
			}
		}
	})
}

// allowedNext is the state machine as DESIGN.md states it, kept apart from
// the code under test.
var allowedNext = map[Status][]Status{
	StatusNone:    {StatusPending},
	StatusPending: {StatusPaid, StatusCancelled},
	StatusPaid:    {StatusShipped, StatusCancelled},
	StatusShipped: {StatusDelivered},
}

// commandTarget is the status each command leads to when it is allowed.
var commandTarget = map[string]Status{
	"create": StatusPending, "pay": StatusPaid, "ship": StatusShipped,
	"deliver": StatusDelivered, "cancel": StatusCancelled,
}

// fuzzCommand turns one byte of the fuzz input into a command whose strings,
// quantities and prices come from the other fuzz arguments.
func fuzzCommand(op byte, a, b string, q int32, p int64) Command {
	pick := func(bit byte) string {
		switch (op >> bit) & 3 {
		case 0:
			return a
		case 1:
			return b
		case 2:
			return ""
		default:
			return "x"
		}
	}
	switch op % 9 {
	case 0, 1: // a create built from fuzzed values
		n := int(op>>4)%4 + int(q&1)*(MaxItems-1) // 0..3 items, or around MaxItems
		items := make([]Item, n)
		for i := range items {
			it := Item{ProductID: pick(4), Name: a, Quantity: q, UnitPrice: Cents(p)}
			if op&1 == 1 || i > 0 { // mostly within the limits, so creates succeed
				it.ProductID = "p" + strconv.Itoa(i)
				it.Quantity = 1 + int32(uint32(q+int32(i))%MaxQuantity)
				it.UnitPrice = 1 + Cents(uint64(p+int64(i))%uint64(MaxPrice))
				if len(a) > MaxTextLength {
					it.Name = ""
				}
			}
			items[i] = it
		}
		return Create{CustomerID: pick(2), Items: items}
	case 2:
		return seedCreate()
	case 3:
		return Pay{PaymentMethod: pick(4)}
	case 4:
		return Ship{TrackingNumber: pick(4)}
	case 5:
		return Deliver{}
	case 6:
		return Cancel{Reason: pick(4)}
	case 7:
		return Pay{}
	default:
		return Ship{TrackingNumber: "TRK"}
	}
}

// sumLines computes the total of items with big integers, so it cannot
// overflow the way the code under test might.
func sumLines(items []Item) *big.Int {
	sum := new(big.Int)
	for _, it := range items {
		line := new(big.Int).Mul(big.NewInt(int64(it.Quantity)), big.NewInt(int64(it.UnitPrice)))
		sum.Add(sum, line)
	}
	return sum
}

func FuzzDecideEvolve(f *testing.F) {
	f.Add([]byte{2, 7, 8, 5}, "card", "TRK-1", int32(2), int64(2999))
	f.Add([]byte{1, 3, 6, 6, 2, 0}, "", "reason", int32(MaxQuantity), int64(MaxPrice))
	f.Add([]byte{0, 2, 3, 4, 5, 6, 7, 8}, "x\xff", strings.Repeat("y", 300), int32(-1), int64(math.MinInt64))
	f.Add([]byte{17, 33, 49, 65, 81, 97}, "é", "\x00", int32(math.MaxInt32), int64(math.MaxInt64))
	f.Add([]byte{5, 4, 3, 2, 1, 0, 2, 2}, "Ω", "", int32(0), int64(0))

	base := time.Date(2030, 7, 1, 12, 0, 0, 0, time.FixedZone("fuzz", -3*3600-30*60))
	f.Fuzz(func(t *testing.T, ops []byte, a, b string, q int32, p int64) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		s := State{ID: "fuzz-order"}
		for i, op := range ops {
			cmd := fuzzCommand(op, a, b, q, p)
			now := base.Add(time.Duration(i) * time.Minute)
			before := cloneState(s)

			events, err := Decide(s, cmd, now)

			if !reflect.DeepEqual(s, before) {
				t.Fatalf("step %d: Decide changed its state", i)
			}
			if err != nil {
				if events != nil {
					t.Fatalf("step %d: events %v with error %v", i, events, err)
				}
				matched := 0
				for _, sentinel := range allSentinels {
					if errors.Is(err, sentinel) {
						matched++
					}
				}
				if matched != 1 {
					t.Fatalf("step %d: error %v matches %d sentinels, want exactly 1", i, err, matched)
				}
				_, isCreate := cmd.(Create)
				switch {
				case isCreate && s.Exists() && !errors.Is(err, ErrAlreadyExists),
					!isCreate && !s.Exists() && !errors.Is(err, ErrNotFound):
					t.Fatalf("step %d: %s on a %v order: %v", i, CommandName(cmd), s.Status, err)
				case errors.Is(err, ErrAlreadyExists) && !(isCreate && s.Exists()),
					errors.Is(err, ErrNotFound) && !(!isCreate && !s.Exists()):
					t.Fatalf("step %d: %s on a %v order: %v", i, CommandName(cmd), s.Status, err)
				case errors.Is(err, ErrTransition):
					var te *TransitionError
					if !errors.As(err, &te) || te.From != s.Status || te.Command != CommandName(cmd) || te.OrderID != s.ID {
						t.Fatalf("step %d: transition error %+v from %v", i, te, s.Status)
					}
					if slices.Contains(allowedNext[s.Status], commandTarget[CommandName(cmd)]) {
						t.Fatalf("step %d: %s refused from %v, which allows it", i, CommandName(cmd), s.Status)
					}
				case errors.Is(err, ErrInvalid):
					var ve *ValidationError
					if !errors.As(err, &ve) || ve.Field == "" || !strings.Contains(err.Error(), ve.Value) {
						t.Fatalf("step %d: validation error %v", i, err)
					}
					if c, ok := cmd.(Create); ok {
						if _, verr := ValidateCreate(c); verr == nil {
							t.Fatalf("step %d: Decide refused a create ValidateCreate accepts: %v", i, err)
						}
					}
				}
				continue
			}

			if len(events) != 1 {
				t.Fatalf("step %d: %s produced %d events", i, CommandName(cmd), len(events))
			}
			next := s
			for _, e := range events {
				next = Evolve(next, e)
			}
			if !slices.Contains(allowedNext[s.Status], next.Status) || next.Status != commandTarget[CommandName(cmd)] {
				t.Fatalf("step %d: %s moved %v -> %v", i, CommandName(cmd), s.Status, next.Status)
			}
			if next.Version != s.Version+uint64(len(events)) {
				t.Fatalf("step %d: version %d -> %d after %d events", i, s.Version, next.Version, len(events))
			}
			if want := sumLines(next.Items); !want.IsInt64() || want.Int64() != int64(next.Total) {
				t.Fatalf("step %d: total %d, want %s", i, int64(next.Total), want)
			}
			if next.Total <= 0 || next.Total > MaxItems*MaxQuantity*MaxPrice {
				t.Fatalf("step %d: total %d out of the limits", i, int64(next.Total))
			}
			if next.ID != s.ID {
				t.Fatalf("step %d: ID %q -> %q", i, s.ID, next.ID)
			}
			nowUTC := now.UTC()
			var at time.Time
			switch e := events[0].(type) {
			case Created:
				at = next.CreatedAt
				if next.CustomerID != cmd.(Create).CustomerID || !reflect.DeepEqual(next.Items, cmd.(Create).Items) {
					t.Fatalf("step %d: created %+v from %+v", i, next, cmd)
				}
			case Paid:
				at = next.PaidAt
				if want := cmd.(Pay).PaymentMethod; next.PaymentMethod != want && !(want == "" && next.PaymentMethod == DefaultPayment) {
					t.Fatalf("step %d: payment method %q from %q", i, next.PaymentMethod, want)
				}
			case Shipped:
				at = next.ShippedAt
				if next.TrackingNumber != cmd.(Ship).TrackingNumber {
					t.Fatalf("step %d: tracking number %q", i, next.TrackingNumber)
				}
			case Delivered:
				at = next.DeliveredAt
			case Cancelled:
				at = next.CancelledAt
				if next.CancelReason != cmd.(Cancel).Reason {
					t.Fatalf("step %d: cancel reason %q", i, next.CancelReason)
				}
			default:
				t.Fatalf("step %d: unknown event %T", i, e)
			}
			if at != nowUTC || at.Location() != time.UTC {
				t.Fatalf("step %d: %s at %v, want %v", i, events[0].EventType(), at, nowUTC)
			}
			if s.Exists() && !next.CreatedAt.Equal(s.CreatedAt) {
				t.Fatalf("step %d: CreatedAt moved", i)
			}
			s = next
		}
	})
}

// FuzzPlainCentsAgreesWithRat: the fast path reads exactly what the big.Rat
// path reads, for every input it accepts.
func FuzzPlainCentsAgreesWithRat(f *testing.F) {
	for _, s := range []string{"999.99", "10", "0.5", "5.", "-0", "+1.2", "1.999", "999999999999999.99", "1000000000000000", "-92233720368547.75", ".5", "1e2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parsePlainCents(s)
		if !ok {
			return
		}
		slow, err := parseCentsRat(s)
		if err != nil || slow != fast {
			t.Fatalf("%q: fast path %d, big.Rat %d (%v)", s, int64(fast), int64(slow), err)
		}
	})
}

// ratCents is parseCentsRat without the exponent bound: what big.Rat alone
// answers (ok false: refused).
func ratCents(s string) (Cents, bool) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return Cents(r.Num().Int64()), true
}

// FuzzExponentBoundAgreesWithRat: refusing exponents past maxExponent
// before big.Rat changes no answer (exponents up to 2000, where big.Rat is
// still quick).
func FuzzExponentBoundAgreesWithRat(f *testing.F) {
	for _, m := range []string{"1", "0", "-0.0", "9.99", ".0000000000000000000001", "123456789012345678901", "100"} {
		for _, e := range []int16{0, 2, -2, 17, 18, 19, 48, 64, 65, -30, -64, -65, 999, -999} {
			f.Add(m, e)
		}
	}
	f.Fuzz(func(t *testing.T, mantissa string, exp int16) {
		if exp > 2000 || exp < -2000 {
			return
		}
		s := mantissa + "e" + strconv.Itoa(int(exp))
		if len(s) > 32 || !decimalSyntax.MatchString(s) {
			return
		}
		got, err := ParseCents(s)
		want, ok := ratCents(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseCents(%q) = %d, %v; big.Rat alone: %d, ok %v", s, int64(got), err, int64(want), ok)
		}
	})
}
