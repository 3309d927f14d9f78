// Package latency is a small fixed-memory log-linear histogram of
// durations in nanoseconds, in the manner of an HDR histogram with two
// significant decimal digits: every value is recorded with a relative
// error below 1/128 (0.8%), from 1 ns up to 2^63 ns, in about 60 KiB.
//
// A Histogram is not safe for concurrent use; give each goroutine its own
// and Merge them, or guard one with a lock.
package latency

import (
	"math/bits"
	"time"
)

const (
	subBits = 7 // 128 sub-buckets per power of two
	sub     = 1 << subBits
	nBucket = (64-subBits)*sub + sub
)

// Histogram counts durations.
type Histogram struct {
	counts [nBucket]uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

func index(v uint64) int {
	if v < 2*sub {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return shift*sub + int(v>>shift)
}

// upper is the highest value that falls into bucket i.
func upper(i int) int64 {
	if i < 2*sub {
		return int64(i)
	}
	shift := i/sub - 1
	base := uint64(i - shift*sub)
	return int64((base+1)<<shift - 1)
}

// Record adds one value; negative values (clock steps) count as 0.
func (h *Histogram) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[index(uint64(ns))]++
	if h.n == 0 || ns < h.min {
		h.min = ns
	}
	if ns > h.max {
		h.max = ns
	}
	h.n++
	h.sum += float64(ns)
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded value (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average recorded value.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0..1): the upper bound of the
// bucket holding the q-th value, capped at the exact maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := upper(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Summary is the usual set of percentiles.
type Summary struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns count, mean, p50, p99, p99.9 and max.
func (h *Histogram) Summary() Summary {
	return Summary{Count: h.n, Mean: h.Mean(), P50: h.Quantile(0.50), P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max()}
}
