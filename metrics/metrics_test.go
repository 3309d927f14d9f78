package metrics

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"wharf/internal/promcheck"
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

// TestExpositionRules checks what /metrics serves against the text
// format's rules and promlint, runtime metrics and a histogram included.
func TestExpositionRules(t *testing.T) {
	r := NewRegistry()
	r.AddRuntime("1.2.3")
	r.Counter("wharf_x_total", "X things.", "sink", "a").Add(2)
	r.CounterFunc("wharf_y_total", "Y from a func.", func() float64 { return 4 }, "sink", "a")
	r.Gauge("wharf_level", "A level.", "sink", "a").Set(7)
	h := r.Histogram("wharf_write_seconds", "Write time.", []float64{0.001, 0.01, 0.1}, "sink", "a")
	h.Observe(0.005)
	h.Observe(5)
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	mfs, problems := promcheck.Check([]byte(b.String()))
	for _, p := range problems {
		t.Error(p)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total", "wharf_build_info", "wharf_write_seconds"} {
		if mfs[name] == nil {
			t.Errorf("no %s in:\n%s", name, b.String())
		}
	}
	if !strings.Contains(b.String(), `wharf_build_info{goversion="go`) || !strings.Contains(b.String(), `version="1.2.3"} 1`) {
		t.Errorf("build info: %s", b.String())
	}
	for _, line := range []string{
		`wharf_write_seconds_bucket{sink="a",le="0.01"} 1`,
		`wharf_write_seconds_bucket{sink="a",le="+Inf"} 2`,
		`wharf_write_seconds_count{sink="a"} 2`,
	} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("no %s", line)
		}
	}
	if r.Histogram("wharf_write_seconds", "Write time.", nil, "sink", "a") != h {
		t.Error("same name and labels must give the same histogram")
	}
}

func TestHistogramAllocs(t *testing.T) {
	h := NewRegistry().Histogram("x_seconds", "x", []float64{0.001, 0.01, 0.1, 1})
	if n := testing.AllocsPerRun(100, func() { h.Observe(0.05) }); n != 0 {
		t.Fatalf("Observe allocates %v", n)
	}
}

// TestScrapeDoesNotBlockCreate guards against the registry lock being held
// while a slow scraper reads: a series can be created while a gauge
// function (standing in for the scraper's pace) blocks the scrape.
func TestScrapeDoesNotBlockCreate(t *testing.T) {
	r := NewRegistry()
	inScrape, release := make(chan struct{}), make(chan struct{})
	r.GaugeFunc("slow", "Blocks the scrape.", func() float64 {
		close(inScrape)
		<-release
		return 1
	})
	done := make(chan struct{})
	go func() {
		var b strings.Builder
		_ = r.WritePrometheus(&b)
		close(done)
	}()
	<-inScrape
	r.Counter("new_total", "Created during a scrape.").Inc() // deadlocks if the lock is held
	close(release)
	<-done
}

// BenchmarkScrape is one /metrics scrape of 1000 series (100 binds' and
// sinks' worth) into io.Discard.
func BenchmarkScrape(b *testing.B) {
	r := NewRegistry()
	for i := range 100 {
		for j, name := range []string{"wharf_a_total", "wharf_b_total", "wharf_c_total", "wharf_d_total", "wharf_e_total", "wharf_f_total", "wharf_g_total", "wharf_h_total", "wharf_i_total"} {
			r.Counter(name, "Help text.", "sink", fmt.Sprint("s", i), "reason", fmt.Sprint("r", j)).Add(uint64(i * j))
		}
		r.Gauge("wharf_level", "A level.", "sink", fmt.Sprint("s", i)).Set(int64(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.WritePrometheus(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// Remove takes exactly the series with all the given labels out of the
// exposition, and the series can be made again from zero.
func TestRemove(t *testing.T) {
	r := NewRegistry()
	r.Counter("c_total", "c", "backend", "web", "server", "a").Add(5)
	r.Counter("c_total", "c", "backend", "web", "server", "b").Add(6)
	r.GaugeFunc("g", "g", func() float64 { return 7 }, "backend", "web", "server", "a")
	r.Counter("c_total", "c", "backend", "api", "server", "a").Add(8)
	r.Remove("backend", "web", "server", "a")
	var got []string
	r.Each(func(s Sample) {
		got = append(got, fmt.Sprintf("%s %s/%s %v", s.Name, s.Label("backend"), s.Label("server"), s.Value))
	})
	want := []string{"c_total api/a 8", "c_total web/b 6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after Remove: %v, want %v", got, want)
	}
	if v := r.Counter("c_total", "c", "backend", "web", "server", "a").Load(); v != 0 {
		t.Errorf("the series made again starts at %d, want 0", v)
	}
}

// RemoveNamed removes the matching series of one family only: a sink's
// own statistics, not the runner's counters with the same sink label.
func TestRemoveNamed(t *testing.T) {
	r := NewRegistry()
	r.GaugeFunc("up", "u", func() float64 { return 1 }, "sink", "coll", "server", "a")
	r.GaugeFunc("up", "u", func() float64 { return 1 }, "sink", "other", "server", "a")
	r.Counter("sent_total", "s", "sink", "coll").Add(3)
	r.RemoveNamed("up", "sink", "coll")
	var got []string
	r.Each(func(s Sample) { got = append(got, fmt.Sprintf("%s %s %v", s.Name, s.Label("sink"), s.Value)) })
	if want := []string{"sent_total coll 3", "up other 1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after RemoveNamed: %v, want %v", got, want)
	}
}
