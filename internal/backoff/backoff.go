// Package backoff is the one retry delay policy of the project: capped
// exponential backoff with "equal jitter".
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is a capped exponential backoff with equal jitter: retry n waits
// between half and all of min(Base*2^(n-1), Max). The jitter keeps members
// that failed together from retrying together. The zero Rand is
// math/rand/v2.Float64.
type Policy struct {
	Base, Max time.Duration
	// Rand returns a float in [0,1); nil means math/rand/v2.Float64.
	Rand func() float64
}

// Delay returns the wait before retry attempt (1-based; below 1 counts as 1).
func (p Policy) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := p.Base
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	half := d / 2
	return half + time.Duration(r()*float64(d-half))
}
