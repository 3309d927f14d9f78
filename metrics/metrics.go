// Package metrics holds wharf's counters, gauges and histograms, and
// exposes them through the Prometheus client library
// (github.com/prometheus/client_golang), which writes the text exposition
// format, adds the go_* and process_* collectors and checks every scrape
// for duplicate series and inconsistent label names.
//
// Hot paths resolve a *Counter once (at compile or connection time) and
// then only call Add/Inc, which is one atomic add: no map look-up, no
// allocation, no lock per message. The registry's lock is only taken to
// create series and, at scrape time, to copy the list of series: values
// are read and written to the scraper after it is released, so a slow
// scraper never holds up a new connection creating its series.
package metrics

import (
	"io"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Counter is a monotonically increasing count. Safe for concurrent use.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Load returns the current value.
func (c *Counter) Load() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down. Safe for concurrent use.
type Gauge struct{ v atomic.Int64 }

// Add adds n (negative to decrease).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Set replaces the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Load returns the current value.
func (g *Gauge) Load() int64 { return g.v.Load() }

// Histogram counts observations in buckets (a client_golang histogram:
// Observe is a few atomic adds and allocates nothing). Safe for
// concurrent use.
type Histogram struct{ h prometheus.Histogram }

// Observe records one value (in the unit the name says, e.g. seconds).
func (h *Histogram) Observe(v float64) { h.h.Observe(v) }

type kind uint8

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

type series struct {
	labels  string // rendered {k="v",...} or ""
	pairs   []string
	counter *Counter
	gauge   *Gauge
	hist    *Histogram
	fn      func() float64
}

type family struct {
	name, help string
	kind       kind
	series     map[string]*series
	descs      map[string]*prometheus.Desc // by label names, made once
}

// Registry holds metric families by name. The zero value is not usable;
// use NewRegistry.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
	prom     *prometheus.Registry // this registry as a collector, plus AddRuntime's
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{families: map[string]*family{}, prom: prometheus.NewRegistry()}
	r.prom.MustRegister(collector{r})
	return r
}

// AddRuntime adds the Go runtime (go_*), process (process_*: CPU, RSS,
// open files, start time) and build (wharf_build_info) metrics, which a
// running wharf exports and tests usually leave out.
func (r *Registry) AddRuntime(version string) {
	revision, goVersion := "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	r.prom.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "wharf_build_info",
			Help:        "Always 1; the labels say which wharf build runs (version from the Makefile's ldflags, revision when built from a git checkout).",
			ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
		}, func() float64 { return 1 }),
	)
}

// Gatherer returns what /metrics serves (promhttp.HandlerFor).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.prom }

// Histogram returns the histogram for name and label pairs, creating it
// with buckets (upper bounds, ascending) on first use; later calls return
// the same histogram and ignore buckets.
func (r *Registry) Histogram(name, help string, buckets []float64, labelPairs ...string) *Histogram {
	return r.get(name, help, kindHistogram, labelPairs, func(s *series) {
		if s.hist == nil {
			labels := prometheus.Labels{}
			for i := 0; i < len(labelPairs); i += 2 {
				labels[labelPairs[i]] = labelPairs[i+1]
			}
			s.hist = &Histogram{prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: name, Help: help, Buckets: buckets, ConstLabels: labels,
			})}
		}
	}).hist
}

// Counter returns the counter for name and label pairs (k1, v1, k2, v2...),
// creating it on first use. Calling it again with the same name and labels
// returns the same counter, so a reload keeps counting where it was.
func (r *Registry) Counter(name, help string, labelPairs ...string) *Counter {
	return r.get(name, help, kindCounter, labelPairs, func(s *series) {
		if s.counter == nil {
			s.counter = new(Counter)
		}
	}).counter
}

// Gauge returns the gauge for name and label pairs, creating it on first use.
func (r *Registry) Gauge(name, help string, labelPairs ...string) *Gauge {
	return r.get(name, help, kindGauge, labelPairs, func(s *series) {
		if s.gauge == nil {
			s.gauge = new(Gauge)
		}
	}).gauge
}

// GaugeFunc registers fn as the value of a gauge series, read at scrape
// time. A later call for the same series replaces fn.
func (r *Registry) GaugeFunc(name, help string, fn func() float64, labelPairs ...string) {
	r.get(name, help, kindGauge, labelPairs, func(s *series) { s.fn = fn })
}

// CounterFunc registers fn as the value of a counter series, read at
// scrape time: for a monotonic count kept elsewhere (a sink's failovers,
// the kernel's drops on a socket). name should end in _total. A later
// call for the same series replaces fn.
func (r *Registry) CounterFunc(name, help string, fn func() float64, labelPairs ...string) {
	r.get(name, help, kindCounter, labelPairs, func(s *series) { s.fn = fn })
}

// Remove deletes every series, of any family, whose labels include all
// of labelPairs (k1, v1, k2, v2...): the series of something a reload
// took away (a proxy server), so a scrape no longer shows its last
// values. Counters and gauges already handed out keep working but are
// no longer exported; a later call for the same series starts a new one
// at zero, which Prometheus reads as a counter reset.
func (r *Registry) Remove(labelPairs ...string) { r.remove("", labelPairs) }

// RemoveNamed is Remove for the series of family name only.
func (r *Registry) RemoveNamed(name string, labelPairs ...string) { r.remove(name, labelPairs) }

// remove deletes the series matching labelPairs, of family name or, with
// name "", of every family.
func (r *Registry) remove(name string, labelPairs []string) {
	if len(labelPairs)%2 != 0 {
		panic("metrics: odd number of label arguments to Remove")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.families {
		if name != "" && f.name != name {
			continue
		}
		for key, s := range f.series {
			if hasPairs(s.pairs, labelPairs) {
				delete(f.series, key)
			}
		}
	}
}

// hasPairs reports whether pairs holds every label of want.
func hasPairs(pairs, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for j := 0; j+1 < len(pairs); j += 2 {
			if pairs[j] == want[i] && pairs[j+1] == want[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// get finds or creates a series and runs init on it under the registry
// lock, so a scrape never sees a half-made series.
func (r *Registry) get(name, help string, k kind, pairs []string, init func(*series)) *series {
	if len(pairs)%2 != 0 {
		panic("metrics: odd number of label arguments for " + name)
	}
	key := renderLabels(pairs)
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.families[name]
	if f == nil {
		f = &family{name: name, help: help, kind: k, series: map[string]*series{}, descs: map[string]*prometheus.Desc{}}
		r.families[name] = f
	} else if f.kind != k {
		panic("metrics: " + name + " registered with two types")
	}
	s := f.series[key]
	if s == nil {
		s = &series{labels: key, pairs: append([]string(nil), pairs...)}
		f.series[key] = s
	}
	init(s)
	return s
}

// desc returns the family's descriptor for the label names of pairs.
// Called with r.mu held.
func (f *family) desc(pairs []string) *prometheus.Desc {
	names := make([]string, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		names = append(names, pairs[i])
	}
	k := strings.Join(names, ",")
	d := f.descs[k]
	if d == nil {
		d = prometheus.NewDesc(f.name, f.help, names, nil)
		f.descs[k] = d
	}
	return d
}

func renderLabels(pairs []string) string {
	if len(pairs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(pairs[i])
		b.WriteString(`="`)
		b.WriteString(escape(pairs[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func escape(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `"`, `\"`)
	return strings.ReplaceAll(v, "\n", `\n`)
}

// Sample is one series' value, as handed to Each.
type Sample struct {
	Name   string
	Labels []string // k1, v1, k2, v2...
	Value  float64
}

// Label returns the value of label k, or "".
func (s Sample) Label(k string) string {
	for i := 0; i+1 < len(s.Labels); i += 2 {
		if s.Labels[i] == k {
			return s.Labels[i+1]
		}
	}
	return ""
}

// snap is one series as copied under the registry lock; its value is
// read after the lock is released.
type snap struct {
	name    string
	kind    kind
	desc    *prometheus.Desc
	pairs   []string
	counter *Counter
	gauge   *Gauge
	fn      func() float64
	hist    *Histogram
}

// snapshot copies the series list, families sorted by name and series by
// labels, so values can be read and written out without the lock.
func (r *Registry) snapshot() []snap {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []snap
	for _, f := range r.sortedFamilies() {
		for _, s := range sortedSeries(f) {
			out = append(out, snap{name: f.name, kind: f.kind, desc: f.desc(s.pairs), pairs: s.pairs, counter: s.counter, gauge: s.gauge, fn: s.fn, hist: s.hist})
		}
	}
	return out
}

func (p snap) value() float64 {
	switch {
	case p.fn != nil:
		return p.fn()
	case p.counter != nil:
		return float64(p.counter.Load())
	case p.gauge != nil:
		return float64(p.gauge.Load())
	}
	return 0
}

// Each calls fn for every counter and gauge series (histograms are left
// out), families sorted by name and series by labels. Values are read
// without the registry lock held, so fn may call back into the registry.
func (r *Registry) Each(fn func(Sample)) {
	for _, p := range r.snapshot() {
		if p.kind == kindHistogram {
			continue
		}
		fn(Sample{Name: p.name, Labels: p.pairs, Value: p.value()})
	}
}

func (r *Registry) sortedFamilies() []*family {
	out := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func sortedSeries(f *family) []*series {
	out := make([]*series, 0, len(f.series))
	for _, s := range f.series {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].labels < out[j].labels })
	return out
}

// collector hands the registry's series to client_golang at scrape time.
// It describes nothing up front (an "unchecked" collector): series come
// and go with the config, and the library still checks each scrape for
// duplicates and consistent label names.
type collector struct{ r *Registry }

func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.r.snapshot() {
		if p.kind == kindHistogram {
			p.hist.h.Collect(ch)
			continue
		}
		t := prometheus.CounterValue
		if p.kind == kindGauge {
			t = prometheus.GaugeValue
		}
		values := make([]string, 0, len(p.pairs)/2)
		for i := 1; i < len(p.pairs); i += 2 {
			values = append(values, p.pairs[i])
		}
		m, err := prometheus.NewConstMetric(p.desc, t, p.value(), values...)
		if err != nil {
			m = prometheus.NewInvalidMetric(p.desc, err)
		}
		ch <- m
	}
}

// WritePrometheus writes every family in the text exposition format
// (what /metrics serves, without the runtime metrics unless AddRuntime
// was called).
func (r *Registry) WritePrometheus(w io.Writer) error {
	mfs, err := r.prom.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
