package wallclock

import (
	"os"
	"strings"
	"sync"
	"time"
)

// OffsetFileEnv names the test hook: cmd/ordersystem reads it, and when it
// is set dates everything that crosses members by OffsetFile(its value),
// with a WARN at start-up. It is not a configuration setting (no flag, not
// in --help); production nodes must not have it.
const OffsetFileEnv = "ORDERSYSTEM_TEST_CLOCK_OFFSET_FILE"

// reread is how long OffsetFile keeps an offset before it reads the file
// again.
const reread = 50 * time.Millisecond

// OffsetFile returns a clock that answers time.Now plus the offset written
// in the file at path, a Go duration ("30s", "-30s", "0s"); a missing or
// empty file means no offset, an unreadable or malformed one keeps the last
// offset read. The file is read again at most every 50 ms, so a new offset
// takes effect within that. The times it returns carry no monotonic
// reading (as times decoded from another member would not): comparing two
// of them sees the step, as it would on a machine whose clock stepped. It
// is safe for concurrent use.
func OffsetFile(path string) func() time.Time {
	var (
		mu     sync.Mutex
		offset time.Duration
		readAt time.Time
	)
	return func() time.Time {
		now := time.Now()
		mu.Lock()
		if readAt.IsZero() || now.Sub(readAt) >= reread {
			readAt = now
			if off, ok := readOffset(path); ok {
				offset = off
			}
		}
		off := offset
		mu.Unlock()
		return now.Add(off).Round(0)
	}
}

// readOffset reads the offset in path; ok is false when the file holds no
// valid offset (it stays as it was).
func readOffset(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return d, true
}
