package wallclock_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/wallclock"
)

func TestOffsetFileMovesTheClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	now := wallclock.OffsetFile(path)
	near := func(want time.Duration) error {
		got := now().Sub(time.Now())
		if d := got - want; d < -time.Second || d > time.Second {
			return errOff{got, want}
		}
		return nil
	}
	if err := near(0); err != nil {
		t.Fatalf("no file: %v", err)
	}
	for _, c := range []struct {
		text string
		want time.Duration
	}{{"30s\n", 30 * time.Second}, {"-30s", -30 * time.Second}, {"not a duration", -30 * time.Second}, {"", 0}} {
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := poll.Until(2*time.Second, func() error { return near(c.want) }); err != nil {
			t.Fatalf("file %q: %v", c.text, err)
		}
	}
	// The hooked times carry no monotonic reading (time.String shows one
	// as "m=..."), so comparing two of them sees a step.
	if s := now().String(); strings.Contains(s, "m=") {
		t.Fatalf("hooked time %s carries a monotonic reading", s)
	}
}

type errOff struct{ got, want time.Duration }

func (e errOff) Error() string { return "offset " + e.got.String() + ", want " + e.want.String() }
