// Package poll is the one way tests (and test harnesses) wait for a
// condition: poll it, never sleep a fixed time.
package poll

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Interval is how often a condition is checked.
const Interval = 10 * time.Millisecond

// Until calls cond every Interval until it returns nil, and returns nil; or,
// once total has passed, the last error cond returned, wrapped with how long
// it waited.
func Until(total time.Duration, cond func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %v: %w", total, err)
		}
		time.Sleep(Interval)
	}
}

// Eventually fails the test at once (t.Fatal) unless cond returns nil within
// total; the message carries cond's last error.
func Eventually(t testing.TB, total time.Duration, cond func() error) {
	t.Helper()
	if err := Until(total, cond); err != nil {
		t.Fatal(err)
	}
}

// True turns a boolean condition into one for Until and Eventually: false is
// the error "waiting for <what>".
func True(what string, cond func() bool) func() error {
	err := errors.New("waiting for " + what)
	return func() error {
		if cond() {
			return nil
		}
		return err
	}
}
