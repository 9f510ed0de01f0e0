package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear in the manner of HdrHistogram: values below
// 2^histSubBits nanoseconds get one bucket each, and every power-of-two range
// above is split into 2^(histSubBits-1) equal buckets. A recorded value is
// therefore reported with a relative error below 1/2^(histSubBits-1) (1.6%),
// in constant memory whatever the number of samples.
const (
	histSubBits  = 7
	histHalf     = 1 << (histSubBits - 1)
	histMaxBits  = 38
	histMaxValue = 1<<histMaxBits - 1 // about 275 s; larger values land in the last bucket
	histBuckets  = (histMaxBits-histSubBits)*histHalf + 2*histHalf
)

// histogram counts latencies. The zero value is ready to use; it is not safe
// for concurrent use (each worker owns its own and they are merged at the end).
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
	max    time.Duration
}

func histIndex(v uint64) int {
	if v > histMaxValue {
		v = histMaxValue
	}
	if v < 2*histHalf {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	return shift*histHalf + int(v>>uint(shift))
}

// histUpper returns the largest value that maps to bucket i.
func histUpper(i int) uint64 {
	if i < 2*histHalf {
		return uint64(i)
	}
	shift := i/histHalf - 1
	m := uint64(i%histHalf + histHalf)
	return (m+1)<<uint(shift) - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.total++
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value at quantile q (0 < q <= 1): the upper bound of
// the bucket holding the ceil(q*total)-th smallest sample, never above the
// exact maximum. It returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q*float64(h.total) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(histUpper(i))
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}
