//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package loadgen

import "time"

// cpuTime is not implemented on this platform.
func cpuTime() (time.Duration, bool) { return 0, false }
