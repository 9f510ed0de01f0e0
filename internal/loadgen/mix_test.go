package loadgen

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mix
	}{
		{DefaultMix, Mix{OpCreate: 1, OpPay: 1, OpShip: 1, OpRead: 7}},
		{" read = 3 , stats=0,live=1 ", Mix{OpRead: 3, OpLive: 1}},
		{"history=1000000", Mix{OpHistory: 1_000_000}},
	} {
		got, err := ParseMix(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if m, _ := ParseMix(DefaultMix); m.String() != "create=1,read=7,pay=1,ship=1" {
		t.Errorf("String() = %q", m.String())
	}
}

func TestParseMixErrorsNameTheToken(t *testing.T) {
	for _, tc := range []struct {
		in, token, reason string
	}{
		{"create=1,buy=2", "buy=2", "unknown operation"},
		{"create=1,pay", "pay", "want name=weight"},
		{"create=x", "create=x", "weight"},
		{"create=-1", "create=-1", "weight"},
		{"create=1.5", "create=1.5", "weight"},
		{"create=2000000", "create=2000000", "weight"},
		{"create=1,,read=2", "", "empty token"},
		{"read=1,read=2", "read=2", "given twice"},
		{"read=0,live=0", "", "all weights are zero"},
		{"", "", "empty"},
	} {
		_, err := ParseMix(tc.in)
		var me *MixError
		if !errors.As(err, &me) {
			t.Errorf("ParseMix(%q) = %v, want a *MixError", tc.in, err)
			continue
		}
		if me.Token != tc.token || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("ParseMix(%q) = %q (token %q); want token %q and %q", tc.in, err, me.Token, tc.token, tc.reason)
		}
		if tc.token != "" && !strings.Contains(err.Error(), `"`+tc.token+`"`) {
			t.Errorf("ParseMix(%q) = %q does not quote the token", tc.in, err)
		}
	}
}

func TestPickerFollowsWeights(t *testing.T) {
	m, err := ParseMix("create=1,read=3,stats=0,pay=2")
	if err != nil {
		t.Fatal(err)
	}
	p := newPicker(m)
	counts := map[Op]int{}
	for r := range p.total {
		counts[p.pick(r)]++
	}
	if counts[OpCreate] != 1 || counts[OpRead] != 3 || counts[OpPay] != 2 || counts[OpStats] != 0 {
		t.Fatalf("picks over the whole range: %v", counts)
	}
}
