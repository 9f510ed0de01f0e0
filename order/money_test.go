package order

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestParseCentsAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want Cents
	}{
		{"999.99", 99999},
		{"29.99", 2999},
		{"10", 1000},
		{"0.5", 50},
		{"1e2", 10000},
		{"1E2", 10000},
		{"1e+2", 10000},
		{"1.50", 150},
		{"-1", -100},
		{"0", 0},
		{"-0", 0},
		{"0.00", 0},
		{"0.01", 1},
		{"+7.25", 725},
		{"1e-2", 1},
		{"12.5e-1", 125},
		{"0.10e1", 100},
		{"1059.97", 105997},
		{"1000000", MaxPrice},
		{"1000000.01", MaxPrice + 1},
		{"007.10", 710},
		{"1.5000000000000000000000", 150},
		{"0e999999", 0},
		{"-0.0e-999999", 0},
		{"1e-2", 1},
		{"0.0000000000000000000001e20", 1},
		{"1e00000000000000000000000000002", 10000},
		{"92233720368547758.07", math.MaxInt64},
		{"-92233720368547758.08", math.MinInt64},
		{"-92233720368547758.07", math.MinInt64 + 1},
	}
	for _, tt := range tests {
		got, err := ParseCents(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseCents(%q) = %d, %v; want %d", tt.in, int64(got), err, int64(tt.want))
		}
	}
}

func TestParseCentsRefuses(t *testing.T) {
	const (
		notDecimal = "is not a decimal number"
		decimals   = "has more than two decimals"
		outOfRange = "is out of range"
	)
	tests := []struct {
		in   string
		want string // the complete error message
	}{
		{"1.999", "1.999 " + decimals},
		{"0.001", "0.001 " + decimals},
		{"1e-3", "1e-3 " + decimals},
		{"29.995", "29.995 " + decimals},
		{"abc", `"abc" ` + notDecimal},
		{"1/2", `"1/2" ` + notDecimal},
		{"4/2", `"4/2" ` + notDecimal},
		{"NaN", `"NaN" ` + notDecimal},
		{"nan", `"nan" ` + notDecimal},
		{"Infinity", `"Infinity" ` + notDecimal},
		{"-Infinity", `"-Infinity" ` + notDecimal},
		{"Inf", `"Inf" ` + notDecimal},
		{"", `"" ` + notDecimal},
		{"-", `"-" ` + notDecimal},
		{".", `"." ` + notDecimal},
		{" 1", `" 1" ` + notDecimal},
		{"1 ", `"1 " ` + notDecimal},
		{"1,50", `"1,50" ` + notDecimal},
		{"1.2.3", `"1.2.3" ` + notDecimal},
		{"--1", `"--1" ` + notDecimal},
		{"1e", `"1e" ` + notDecimal},
		{"e2", `"e2" ` + notDecimal},
		{"$5", `"$5" ` + notDecimal},
		{"５", `"５" ` + notDecimal},
		// Not decimal: math/big would read these as hexadecimal, binary and
		// octal numbers, or with digit separators.
		{"0x10", `"0x10" ` + notDecimal},
		{"0X1A", `"0X1A" ` + notDecimal},
		{"0b11", `"0b11" ` + notDecimal},
		{"0o7", `"0o7" ` + notDecimal},
		{"0x1p-2", `"0x1p-2" ` + notDecimal},
		{"0x1.8p1", `"0x1.8p1" ` + notDecimal},
		{"1p2", `"1p2" ` + notDecimal},
		{"1_000", `"1_000" ` + notDecimal},
		{"0x1_0", `"0x1_0" ` + notDecimal},
		// Out of the int64 range once in cents.
		{"92233720368547758.08", "92233720368547758.08 " + outOfRange},
		{"-92233720368547758.09", "-92233720368547758.09 " + outOfRange},
		{"1e20", "1e20 " + outOfRange},
		{"9223372036854775807", "9223372036854775807 " + outOfRange},
		{"1e999999", "1e999999 " + outOfRange},
		{"1e1000000", "1e1000000 " + outOfRange},
		{"1e65", "1e65 " + outOfRange},
		{"1e-999999", "1e-999999 " + decimals},
		{"1e-65", "1e-65 " + decimals},
		{"1e0000000000000000000000000017", "1e0000000000000000000000000017 " + outOfRange},
		{strings.Repeat("9", 25), strings.Repeat("9", 25) + " " + outOfRange},
		{strings.Repeat("9", 40), strings.Repeat("9", 32) + "... is too long for an amount"},
	}
	for _, tt := range tests {
		got, err := ParseCents(tt.in)
		if err == nil {
			t.Errorf("ParseCents(%q) = %d, want an error", tt.in, int64(got))
			continue
		}
		if got != 0 {
			t.Errorf("ParseCents(%q) = %d with an error, want 0", tt.in, int64(got))
		}
		if err.Error() != tt.want {
			t.Errorf("ParseCents(%q) error = %q, want %q", tt.in, err, tt.want)
		}
	}

	// An exponent math/big itself refuses is still an error, not a hang.
	for _, in := range []string{"1e1000000000", "1e-1000000000", "1e99999999999999999999"} {
		if got, err := ParseCents(in); err == nil {
			t.Errorf("ParseCents(%q) = %d, want an error", in, int64(got))
		}
	}
}

func TestCentsString(t *testing.T) {
	tests := []struct {
		in   Cents
		want string
	}{
		{0, "0.00"},
		{5, "0.05"},
		{10, "0.10"},
		{99, "0.99"},
		{100, "1.00"},
		{101, "1.01"},
		{2999, "29.99"},
		{105997, "1059.97"},
		{MaxPrice, "1000000.00"},
		{-1, "-0.01"},
		{-5, "-0.05"},
		{-100, "-1.00"},
		{-105997, "-1059.97"},
		{math.MaxInt64, "92233720368547758.07"},
		{math.MinInt64, "-92233720368547758.08"},
		{math.MinInt64 + 1, "-92233720368547758.07"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Cents(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		b, err := tt.in.MarshalJSON()
		if err != nil || string(b) != tt.want {
			t.Errorf("Cents(%d).MarshalJSON() = %s, %v; want %s", int64(tt.in), b, err, tt.want)
		}
		if !json.Valid(b) {
			t.Errorf("Cents(%d).MarshalJSON() = %s is not valid JSON", int64(tt.in), b)
		}
		if got := string(tt.in.AppendText([]byte("total="))); got != "total="+tt.want {
			t.Errorf("AppendText = %q, want %q", got, "total="+tt.want)
		}
		back, err := ParseCents(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("ParseCents(%q) = %d, %v; want %d", tt.want, int64(back), err, int64(tt.in))
		}
	}
}

func TestCentsInJSON(t *testing.T) {
	body := struct {
		Total Cents   `json:"total"`
		Lines []Cents `json:"lines"`
		Ptr   *Cents  `json:"ptr"`
	}{Total: 105997, Lines: []Cents{99999, 2999, -50}}
	p := Cents(1)
	body.Ptr = &p
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"total":1059.97,"lines":[999.99,29.99,-0.50],"ptr":0.01}`
	if string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
}
