package metrics

import (
	"strings"
	"sync"
	"testing"
)

func TestWritePrometheus(t *testing.T) {
	r := NewRegistry()
	r.Counter("wharf_b_total", "B things.", "sink", "kafka").Add(3)
	r.Counter("wharf_b_total", "B things.", "sink", `we"ird\`).Inc()
	r.Gauge("wharf_a", "A level.").Set(-2)
	r.GaugeFunc("wharf_c", "C from a func.", func() float64 { return 0.5 }, "x", "1")
	if r.Counter("wharf_b_total", "B things.", "sink", "kafka").Load() != 3 {
		t.Fatal("same name and labels must give the same counter")
	}
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP wharf_a A level.
# TYPE wharf_a gauge
wharf_a -2
# HELP wharf_b_total B things.
# TYPE wharf_b_total counter
wharf_b_total{sink="kafka"} 3
wharf_b_total{sink="we\"ird\\"} 1
# HELP wharf_c C from a func.
# TYPE wharf_c gauge
wharf_c{x="1"} 0.5
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestConcurrentCreateAndScrape guards against a scrape reading a series
// another goroutine is still creating (found by -race in ingest).
func TestConcurrentCreateAndScrape(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				r.Counter("c_total", "c", "k", string(rune('a'+i)), "j", string(rune('a'+j%26))).Inc()
			}
		}()
	}
	for range 50 {
		r.Each(func(Sample) {})
	}
	wg.Wait()
	var sum float64
	r.Each(func(s Sample) { sum += s.Value })
	if sum != 800 {
		t.Fatalf("sum %v, want 800", sum)
	}
}

func TestCounterAllocs(t *testing.T) {
	c := NewRegistry().Counter("x_total", "x")
	if n := testing.AllocsPerRun(100, func() { c.Inc() }); n != 0 {
		t.Fatalf("Inc allocates %v", n)
	}
}
