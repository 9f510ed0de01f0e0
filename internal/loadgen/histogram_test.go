package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Indices are contiguous, monotonic, and each value lies in its bucket.
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		i := histIndex(v)
		if i != prev && i != prev+1 {
			t.Fatalf("index jumps from %d to %d at %d", prev, i, v)
		}
		if v > histUpper(i) || (i > 0 && v <= histUpper(i-1)) {
			t.Fatalf("value %d outside bucket %d", v, i)
		}
		prev = i
	}
	if got := histIndex(math.MaxUint64); got != histBuckets-1 {
		t.Fatalf("the largest value maps to %d, want the last bucket %d", got, histBuckets-1)
	}
	if histIndex(histMaxValue) != histBuckets-1 {
		t.Fatal("histMaxValue does not map to the last bucket")
	}
}

func TestHistogramQuantilesMatchSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	samples := make([]time.Duration, 100_000)
	for i := range samples {
		// log-uniform from 1µs to 10s
		d := time.Duration(math.Exp(rng.Float64()*math.Log(1e7)) * 1e3)
		samples[i] = d
		h.record(d)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := samples[int(math.Ceil(q*float64(len(samples))))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/histHalf) {
			t.Errorf("q%.3f = %s, exact %s: outside [exact, exact*(1+1/%d)]", q, got, exact, histHalf)
		}
	}
	if h.quantile(1) != samples[len(samples)-1] || h.max != samples[len(samples)-1] {
		t.Errorf("max %s, q1 %s, want %s", h.max, h.quantile(1), samples[len(samples)-1])
	}
}

func TestHistogramSmallAndMerged(t *testing.T) {
	var a, b histogram
	if a.quantile(0.5) != 0 {
		t.Fatal("empty histogram should report 0")
	}
	for i := 1; i <= 10; i++ {
		a.record(time.Duration(i))
		b.record(time.Duration(i * 100))
	}
	a.merge(&b)
	if a.total != 20 || a.quantile(0.5) != 10 || a.quantile(0.55) != 100 || a.max != 1000 {
		t.Fatalf("merged: total %d p50 %d p55 %d max %d", a.total, a.quantile(0.5), a.quantile(0.55), a.max)
	}
	a.record(-5) // clock weirdness counts as zero
	if a.counts[0] != 1 {
		t.Fatal("negative latency not clamped to 0")
	}
}
