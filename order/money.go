package order

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Cents is an amount of money in minor units. Totals are exact.
type Cents int64

// MaxPrice is the largest unit price accepted (one million, in cents).
const MaxPrice Cents = 100_000_000

// ParseCents reads a decimal amount such as "999.99", "10", "1e2" or "0.5"
// exactly (no float rounding) and returns it in cents. It refuses amounts with
// more than two decimals and values outside the int64 range.
func ParseCents(s string) (Cents, error) {
	if len(s) > 32 {
		return 0, fmt.Errorf("%.32s... is too long for an amount", s)
	}
	if c, ok := parsePlainCents(s); ok {
		return c, nil
	}
	return parseCentsRat(s)
}

// parsePlainCents reads the common forms ("999.99", "-10", "0.5") without
// big.Rat: a sign, 1 to 15 digits, and at most two decimals. ok is false for
// anything else, which parseCentsRat then reads (or refuses).
func parsePlainCents(s string) (c Cents, ok bool) {
	i, neg := 0, false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		c = c*10 + Cents(s[i]-'0')
	}
	if n := i - start; n == 0 || n > 15 {
		return 0, false
	}
	c *= 100
	if i < len(s) && s[i] == '.' {
		i++
		for scale := Cents(10); i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			if scale == 0 {
				return 0, false
			}
			c += Cents(s[i]-'0') * scale
			scale /= 10
		}
	}
	if i != len(s) {
		return 0, false
	}
	if neg {
		c = -c
	}
	return c, true
}

// maxExponent bounds the decimal exponent handed to big.Rat. An amount has
// at most 32 characters, so a non-zero mantissa lies between 1e-31 and 1e32:
// past 1e64 it is out of the int64 range in cents whatever its digits, and
// below 1e-64 it has more than two decimals. Refusing those exponents here
// gives the answer big.Rat would give without computing 10^999999 (tens of
// milliseconds and megabytes per price).
const maxExponent = 64

// parseCentsRat reads any decimal form exactly, exponents included.
func parseCentsRat(s string) (Cents, error) {
	exp, zero, ok := scanDecimal(s)
	switch {
	case !ok:
		return 0, fmt.Errorf("%q is not a decimal number", s)
	case zero:
		return 0, nil // 0e999999 is zero
	case exp > maxExponent:
		return 0, fmt.Errorf("%s is out of range", s)
	case exp < -maxExponent:
		return 0, fmt.Errorf("%s has more than two decimals", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("%s has more than two decimals", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("%s is out of range", s)
	}
	return Cents(n.Int64()), nil
}

// scanDecimal reports whether s is a plain decimal number: an optional sign,
// digits with an optional fraction, and an optional decimal exponent. It
// returns the exponent (saturated far beyond maxExponent) and whether every
// digit of the mantissa is zero. big.Rat alone would also read fractions
// ("1/2"), base prefixes ("0x10", "0b11", "0o7"), binary exponents ("1p2")
// and digit separators ("1_000").
func scanDecimal(s string) (exp int, zero, ok bool) {
	i, digits := 0, 0
	zero = true
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		digits++
		zero = zero && s[i] == '0'
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			digits++
			zero = zero && s[i] == '0'
		}
	}
	if digits == 0 {
		return 0, false, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		neg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			neg = s[i] == '-'
			i++
		}
		start := i
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			if exp < 1<<20 {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if i == start {
			return 0, false, false
		}
		if neg {
			exp = -exp
		}
	}
	return exp, zero, i == len(s)
}

// String renders the amount with exactly two decimals ("1059.97", "-0.50").
func (c Cents) String() string {
	return string(c.AppendText(nil))
}

// AppendText appends the two-decimal rendering to b; it is a valid JSON number.
func (c Cents) AppendText(b []byte) []byte {
	u := uint64(c)
	if c < 0 {
		b = append(b, '-')
		u = uint64(-c)
		if c == math.MinInt64 {
			u = uint64(math.MaxInt64) + 1
		}
	}
	b = strconv.AppendUint(b, u/100, 10)
	b = append(b, '.')
	r := u % 100
	b = append(b, byte('0'+r/10), byte('0'+r%10))
	return b
}

// MarshalJSON renders the amount as a JSON number with two decimals.
func (c Cents) MarshalJSON() ([]byte, error) { return c.AppendText(nil), nil }

// mulCents returns a*q or false when it overflows.
func mulCents(a Cents, q int32) (Cents, bool) {
	if q == 0 || a == 0 {
		return 0, true
	}
	p := int64(a) * int64(q)
	if p/int64(q) != int64(a) || (q == -1 && a == math.MinInt64) {
		return 0, false
	}
	return Cents(p), true
}
