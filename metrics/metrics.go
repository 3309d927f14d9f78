// Package metrics holds wharf's counters and gauges and writes them in the
// Prometheus text exposition format.
//
// Hot paths resolve a *Counter once (at compile or connection time) and
// then only call Add/Inc, which is one atomic add: no map look-up, no
// allocation, no lock per message. The registry's lock is only taken to
// create series and to scrape.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

type kind uint8

const (
	kindCounter kind = iota
	kindGauge
)

type series struct {
	labels  string // rendered {k="v",...} or ""
	pairs   []string
	counter *Counter
	gauge   *Gauge
	fn      func() float64
}

type family struct {
	name, help string
	kind       kind
	series     map[string]*series
}

// Registry holds metric families by name. The zero value is not usable;
// use NewRegistry.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]*family{}} }

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
		f = &family{name: name, help: help, kind: k, series: map[string]*series{}}
		r.families[name] = f
	} else if f.kind != k {
		panic("metrics: " + name + " registered as counter and gauge")
	}
	s := f.series[key]
	if s == nil {
		s = &series{labels: key, pairs: append([]string(nil), pairs...)}
		f.series[key] = s
	}
	init(s)
	return s
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

// Each calls fn for every series, families sorted by name and series by
// labels. fn must not call back into the registry.
func (r *Registry) Each(fn func(Sample)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.sortedFamilies() {
		for _, s := range sortedSeries(f) {
			fn(Sample{Name: f.name, Labels: s.pairs, Value: s.value()})
		}
	}
}

func (s *series) value() float64 {
	switch {
	case s.fn != nil:
		return s.fn()
	case s.counter != nil:
		return float64(s.counter.Load())
	case s.gauge != nil:
		return float64(s.gauge.Load())
	}
	return 0
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

// WritePrometheus writes every family in the text exposition format 0.0.4.
func (r *Registry) WritePrometheus(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.sortedFamilies() {
		typ := "counter"
		if f.kind == kindGauge {
			typ = "gauge"
		}
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, typ); err != nil {
			return err
		}
		for _, s := range sortedSeries(f) {
			if _, err := fmt.Fprintf(w, "%s%s %s\n", f.name, s.labels, formatValue(s.value())); err != nil {
				return err
			}
		}
	}
	return nil
}

func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
