package poll

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if err := Until(time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Until = %v after %d calls, want nil after 3", err, n)
	}
	sentinel := errors.New("never")
	err := Until(30*time.Millisecond, func() error { return sentinel })
	if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "30ms") {
		t.Fatalf("Until of a condition that never holds = %v", err)
	}
	if err := Until(0, True("x", func() bool { return false })); err == nil || !strings.Contains(err.Error(), "waiting for x") {
		t.Fatalf("True's error = %v", err)
	}
}
