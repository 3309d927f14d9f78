package latency

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestIndexUpperConsistent(t *testing.T) {
	f := func(v uint64) {
		t.Helper()
		i := index(v)
		if up := upper(i); uint64(up) < v {
			t.Fatalf("value %d in bucket %d with upper bound %d", v, i, up)
		}
		if i > 0 && uint64(upper(i-1)) >= v {
			t.Fatalf("value %d in bucket %d but previous bucket reaches %d", v, i, upper(i-1))
		}
	}
	for v := uint64(0); v < 5000; v++ {
		f(v)
	}
	for _, v := range []uint64{1 << 20, 1<<20 - 1, 1<<20 + 1, 123456789, 1<<62 + 12345, 1<<63 - 1} {
		f(v)
	}
}

func TestQuantilesAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, a, b Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(r.ExpFloat64() * 2e6) // ~2 ms mean
		h.Record(vals[i])
		if i%2 == 0 {
			a.Record(vals[i])
		} else {
			b.Record(vals[i])
		}
	}
	a.Merge(&b)
	slices.Sort(vals)
	f := func(q float64) {
		t.Helper()
		exact := vals[int(q*float64(len(vals))+0.5)-1]
		got := h.Quantile(q)
		if d := float64(got) - float64(exact); d < 0 || d > float64(exact)/100+1 {
			t.Fatalf("q%v: got %v, exact %v", q, got, time.Duration(exact))
		}
		if a.Quantile(q) != got {
			t.Fatalf("q%v: merged histogram gives %v, single %v", q, a.Quantile(q), got)
		}
	}
	f(0.5)
	f(0.99)
	f(0.999)
	f(1)
	if h.Max() != time.Duration(vals[len(vals)-1]) || h.Count() != uint64(len(vals)) {
		t.Fatalf("max %v count %d", h.Max(), h.Count())
	}
}
