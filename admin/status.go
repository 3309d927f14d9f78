package admin

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"wharf/metrics"
)

// This file serves the status page (GET /, in the spirit of HAProxy's
// stats page) and its data (GET /api/status). Everything comes from the
// metrics registry, so the page and /metrics never disagree; rates are
// computed here from the previous samples of the counters.

//go:embed ui
var uiFiles embed.FS

// Rate window: a rate compares the counters now with the newest earlier
// sample at least rateWindow old (falling back to the oldest one kept).
// Samples are taken when /api/status is requested; the page asks once a
// second.
const (
	rateWindow = time.Second
	// rateHistory is how long samples are kept.
	rateHistory = 10 * time.Second
	// firstSampleWait is how long a request waits for a second sample
	// when there is no earlier one (the first request after start), so
	// even a one-off script sees real rates.
	firstSampleWait = 500 * time.Millisecond
)

// StatusOptions configures the status page. Every field is optional.
type StatusOptions struct {
	// Version is shown in the page header and the JSON.
	Version string
	// Ready reports readiness (as for /readyz).
	Ready Readiness
	// Live lists what runs now. Without it every series in the registry
	// becomes a row; with it, rows of binds and sinks a reload removed
	// (their counters stay in the registry) are left out, and bind rows
	// show the real bound address.
	Live func() Live
	// Errors supplies each component's last warning or error.
	Errors *ErrorLog
}

// Live is the set of binds and sinks running now.
type Live struct {
	Binds []LiveBind
	Sinks []string
}

// LiveBind is one running bind.
type LiveBind struct {
	// Frontend and Bind (scheme://addr as configured) match the labels of
	// the wharf_frontend_* series.
	Frontend, Bind string
	// Addr is the bound address (the real port when the config said 0).
	Addr string
}

// StatusReport is the JSON of GET /api/status. Field names are stable:
// new fields may be added, none renamed or removed. Counters are totals
// since start; rates are per second over RateWindowSeconds.
type StatusReport struct {
	// Version of wharf.
	Version string `json:"version"`
	// Time the report was taken.
	Time time.Time `json:"time"`
	// UptimeSeconds since the status handler was created (wharf start).
	UptimeSeconds float64 `json:"uptime_seconds"`
	// RateWindowSeconds is the span the rates were computed over.
	RateWindowSeconds float64 `json:"rate_window_seconds"`
	// Ready and Problems are what /readyz reports.
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems"`
	// Totals sum the rows.
	Totals Totals `json:"totals"`
	// Binds has one row per syslog frontend bind, sorted by frontend and bind.
	Binds []BindStatus `json:"binds"`
	// Sinks has one row per sink, sorted by name.
	Sinks []SinkStatus `json:"sinks"`
	// Proxies has one row per proxy frontend (mode tcp or http: the
	// wharf_proxy_* series labelled frontend), sorted; empty without them.
	Proxies []ProxyStatus `json:"proxies"`
	// Servers has one row per proxy backend server (series labelled
	// backend and server), sorted; empty until proxy frontends run.
	Servers []ServerStatus `json:"servers"`
}

// Rate is a per-second rate of messages and bytes.
type Rate struct {
	Msgs  float64 `json:"msgs"`
	Bytes float64 `json:"bytes"`
}

// Totals sum the bind and sink rows.
type Totals struct {
	Received      uint64 `json:"received"`
	ReceivedRate  Rate   `json:"received_rate"`
	Sent          uint64 `json:"sent"`
	SentRate      Rate   `json:"sent_rate"`
	FrontendDrops uint64 `json:"frontend_dropped"`
	SinkDrops     uint64 `json:"sink_dropped"`
	Queued        int64  `json:"queued"`
}

// BindStatus is one frontend bind.
type BindStatus struct {
	Frontend string `json:"frontend"`
	// Bind is scheme://addr as configured; Addr the bound address.
	Bind string `json:"bind"`
	Addr string `json:"addr,omitempty"`
	// State is "listening" (or "unknown" without Live information).
	State            string            `json:"state"`
	Received         uint64            `json:"received"`
	ReceivedBytes    uint64            `json:"received_bytes"`
	Rate             Rate              `json:"rate"`
	Connections      int64             `json:"connections"`
	ConnectionsTotal uint64            `json:"connections_total"`
	Truncated        uint64            `json:"truncated"`
	Malformed        map[string]uint64 `json:"malformed"`
	Dropped          map[string]uint64 `json:"dropped"`
	DroppedTotal     uint64            `json:"dropped_total"`
	LastError        *LastError        `json:"last_error,omitempty"`
}

// SinkStatus is one sink and its runner.
type SinkStatus struct {
	Sink string `json:"sink"`
	// State is "up" when the last write or check succeeded, else "down".
	State         string            `json:"state"`
	Ready         bool              `json:"ready"`
	Sent          uint64            `json:"sent"`
	SentBytes     uint64            `json:"sent_bytes"`
	Rate          Rate              `json:"rate"`
	Batches       uint64            `json:"batches"`
	WriteErrors   uint64            `json:"write_errors"`
	QueueMessages int64             `json:"queue_messages"`
	QueueBytes    int64             `json:"queue_bytes"`
	Dropped       map[string]uint64 `json:"dropped"`
	DroppedTotal  uint64            `json:"dropped_total"`
	LastError     *LastError        `json:"last_error,omitempty"`
}

// ProxyStatus is one proxy frontend. Like ServerStatus it reports its
// metrics by series name without the "wharf_proxy_frontend_" (or
// "wharf_proxy_") prefix, other labels appended as {k=v}: for example
// "connections_total", "active", "bytes_in_total",
// "rejected_total{reason=acl}", "http_errors_total{kind=no_server}".
type ProxyStatus struct {
	Frontend  string             `json:"frontend"`
	Metrics   map[string]float64 `json:"metrics"`
	Rates     map[string]float64 `json:"rates"`
	LastError *LastError         `json:"last_error,omitempty"`
}

// ServerStatus is one proxy backend server. Its metrics are reported
// under their series names without the prefix up to "server_" (e.g.
// "connections_total", "active", "bytes_sent_total",
// "checks_total{result=ok}"); Rates holds the per-second rate of each
// counter (names ending in _total). State is "up" or "down" from the
// server's _up gauge, "unknown" without one.
type ServerStatus struct {
	Backend   string             `json:"backend"`
	Server    string             `json:"server"`
	State     string             `json:"state"`
	Metrics   map[string]float64 `json:"metrics"`
	Rates     map[string]float64 `json:"rates"`
	LastError *LastError         `json:"last_error,omitempty"`
}

// Status serves the status page and /api/status. Safe for concurrent use.
type Status struct {
	reg     *metrics.Registry
	opts    StatusOptions
	started time.Time

	mu      sync.Mutex
	history []sample // oldest first
}

type sample struct {
	t    time.Time
	vals map[string]float64 // counter series key -> value
}

// NewStatus returns the status handlers for reg.
func NewStatus(reg *metrics.Registry, opts StatusOptions) *Status {
	return &Status{reg: reg, opts: opts, started: time.Now()}
}

// Register adds GET / (the page), GET /ui/ (its assets) and GET
// /api/status to srv.
func (st *Status) Register(srv *Server) {
	ui, _ := fs.Sub(uiFiles, "ui")
	srv.Handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, ui, "index.html")
	}))
	srv.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(ui)))
	srv.Handle("GET /api/status", st)
}

// ServeHTTP writes the StatusReport as JSON.
func (st *Status) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	rep := st.Report()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

// series is one registry sample kept for building rows.
type series struct {
	name   string
	labels []string
	value  float64
}

func (s series) label(k string) string {
	for i := 0; i+1 < len(s.labels); i += 2 {
		if s.labels[i] == k {
			return s.labels[i+1]
		}
	}
	return ""
}

func seriesKey(name string, labels []string) string {
	return name + "{" + strings.Join(labels, "\x00") + "}"
}

func (st *Status) read() ([]series, sample) {
	var out []series
	smp := sample{t: time.Now(), vals: map[string]float64{}}
	st.reg.Each(func(s metrics.Sample) {
		out = append(out, series{name: s.Name, labels: s.Labels, value: s.Value})
		if strings.HasSuffix(s.Name, "_total") {
			smp.vals[seriesKey(s.Name, s.Labels)] = s.Value
		}
	})
	return out, smp
}

// sampleNow reads the registry and returns it with the reference sample
// for rates (nil when there is none yet), recording the new sample.
func (st *Status) sampleNow() ([]series, sample, *sample) {
	st.mu.Lock()
	empty := len(st.history) == 0 || time.Since(st.history[len(st.history)-1].t) > rateHistory
	st.mu.Unlock()
	if empty {
		_, first := st.read()
		st.mu.Lock()
		st.history = []sample{first}
		st.mu.Unlock()
		time.Sleep(firstSampleWait)
	}
	all, now := st.read()
	st.mu.Lock()
	defer st.mu.Unlock()
	var ref *sample
	for i := len(st.history) - 1; i >= 0; i-- {
		if now.t.Sub(st.history[i].t) >= rateWindow {
			ref = &st.history[i]
			break
		}
	}
	if ref == nil && len(st.history) > 0 {
		ref = &st.history[0]
	}
	var refCopy *sample
	if ref != nil {
		c := *ref
		refCopy = &c
	}
	keep := st.history[:0]
	for _, h := range st.history {
		if now.t.Sub(h.t) <= rateHistory {
			keep = append(keep, h)
		}
	}
	st.history = append(keep, now)
	return all, now, refCopy
}

// Report builds the current StatusReport.
func (st *Status) Report() StatusReport {
	all, now, ref := st.sampleNow()
	rep := StatusReport{
		Version:       st.opts.Version,
		Time:          now.t.UTC(),
		UptimeSeconds: now.t.Sub(st.started).Seconds(),
		Ready:         true,
		Problems:      []string{},
		Binds:         []BindStatus{},
		Sinks:         []SinkStatus{},
		Proxies:       []ProxyStatus{},
		Servers:       []ServerStatus{},
	}
	if st.opts.Ready != nil {
		rep.Ready, rep.Problems = st.opts.Ready()
		if rep.Problems == nil {
			rep.Problems = []string{}
		}
	}
	var dt float64
	if ref != nil {
		dt = now.t.Sub(ref.t).Seconds()
	}
	rep.RateWindowSeconds = dt
	rate := func(name string, labels []string, v float64) float64 {
		if ref == nil || dt <= 0 {
			return 0
		}
		old, ok := ref.vals[seriesKey(name, labels)]
		if !ok || v < old {
			old = 0
		}
		return (v - old) / dt
	}

	var live *Live
	if st.opts.Live != nil {
		l := st.opts.Live()
		live = &l
	}
	liveBind := map[[2]string]string{}
	liveSink := map[string]bool{}
	if live != nil {
		for _, b := range live.Binds {
			liveBind[[2]string{b.Frontend, b.Bind}] = b.Addr
		}
		for _, s := range live.Sinks {
			liveSink[s] = true
		}
	}

	binds := map[[2]string]*BindStatus{}
	sinkRows := map[string]*SinkStatus{}
	servers := map[[2]string]*ServerStatus{}
	proxies := map[string]*ProxyStatus{}
	bindRow := func(s series) *BindStatus {
		k := [2]string{s.label("frontend"), s.label("bind")}
		if k[0] == "" {
			return nil
		}
		addr, ok := liveBind[k]
		if live != nil && !ok {
			return nil
		}
		b := binds[k]
		if b == nil {
			b = &BindStatus{Frontend: k[0], Bind: k[1], Addr: addr, State: "listening", Malformed: map[string]uint64{}, Dropped: map[string]uint64{}}
			if live == nil {
				b.State = "unknown"
			}
			binds[k] = b
		}
		return b
	}
	sinkRow := func(s series) *SinkStatus {
		n := s.label("sink")
		if n == "" || (live != nil && !liveSink[n]) {
			return nil
		}
		r := sinkRows[n]
		if r == nil {
			r = &SinkStatus{Sink: n, State: "down", Dropped: map[string]uint64{}}
			sinkRows[n] = r
		}
		return r
	}
	for _, s := range all {
		v := uint64(max(s.value, 0))
		switch {
		case strings.HasPrefix(s.name, "wharf_frontend_"):
			b := bindRow(s)
			if b == nil {
				continue
			}
			switch s.name {
			case "wharf_frontend_received_total":
				b.Received = v
				b.Rate.Msgs = rate(s.name, s.labels, s.value)
			case "wharf_frontend_received_bytes_total":
				b.ReceivedBytes = v
				b.Rate.Bytes = rate(s.name, s.labels, s.value)
			case "wharf_frontend_connections":
				b.Connections = int64(s.value)
			case "wharf_frontend_connections_total":
				b.ConnectionsTotal = v
			case "wharf_frontend_truncated_total":
				b.Truncated = v
			case "wharf_frontend_malformed_total":
				b.Malformed[s.label("reason")] = v
			case "wharf_frontend_dropped_total":
				b.Dropped[s.label("reason")] = v
				b.DroppedTotal += v
			}
		case strings.HasPrefix(s.name, "wharf_sink_"):
			r := sinkRow(s)
			if r == nil {
				continue
			}
			switch s.name {
			case "wharf_sink_sent_total":
				r.Sent = v
				r.Rate.Msgs = rate(s.name, s.labels, s.value)
			case "wharf_sink_sent_bytes_total":
				r.SentBytes = v
				r.Rate.Bytes = rate(s.name, s.labels, s.value)
			case "wharf_sink_batches_total":
				r.Batches = v
			case "wharf_sink_write_errors_total":
				r.WriteErrors = v
			case "wharf_sink_queue_messages":
				r.QueueMessages = int64(s.value)
			case "wharf_sink_queue_bytes":
				r.QueueBytes = int64(s.value)
			case "wharf_sink_dropped_total":
				r.Dropped[s.label("reason")] = v
				r.DroppedTotal += v
			case "wharf_sink_ready":
				r.Ready = s.value == 1
				if r.Ready {
					r.State = "up"
				}
			}
		case s.label("backend") != "" && s.label("server") != "":
			k := [2]string{s.label("backend"), s.label("server")}
			r := servers[k]
			if r == nil {
				r = &ServerStatus{Backend: k[0], Server: k[1], State: "unknown", Metrics: map[string]float64{}, Rates: map[string]float64{}}
				servers[k] = r
			}
			short := serverMetricName(s.name)
			if other := extraLabels(s.labels); other != "" {
				short += "{" + other + "}"
			}
			r.Metrics[short] = s.value
			if strings.HasSuffix(s.name, "_total") {
				r.Rates[short] = rate(s.name, s.labels, s.value)
			}
			if strings.HasSuffix(s.name, "_up") || strings.HasSuffix(s.name, "_healthy") {
				r.State = "down"
				if s.value == 1 {
					r.State = "up"
				}
			}
		case strings.HasPrefix(s.name, "wharf_proxy_") && s.label("frontend") != "":
			n := s.label("frontend")
			r := proxies[n]
			if r == nil {
				r = &ProxyStatus{Frontend: n, Metrics: map[string]float64{}, Rates: map[string]float64{}}
				proxies[n] = r
			}
			short := strings.TrimPrefix(strings.TrimPrefix(s.name, "wharf_proxy_frontend_"), "wharf_proxy_")
			if other := extraLabels(s.labels); other != "" {
				short += "{" + other + "}"
			}
			r.Metrics[short] = s.value
			if strings.HasSuffix(s.name, "_total") {
				r.Rates[short] = rate(s.name, s.labels, s.value)
			}
		}
	}

	for _, k := range sortedKeys(binds) {
		b := binds[k]
		if st.opts.Errors != nil {
			b.LastError = st.opts.Errors.last("bind", b.Frontend+" "+b.Bind)
			if b.LastError == nil {
				b.LastError = st.opts.Errors.last("frontend", b.Frontend)
			}
		}
		rep.Binds = append(rep.Binds, *b)
		rep.Totals.Received += b.Received
		rep.Totals.ReceivedRate.Msgs += b.Rate.Msgs
		rep.Totals.ReceivedRate.Bytes += b.Rate.Bytes
		rep.Totals.FrontendDrops += b.DroppedTotal
	}
	// A live bind that has not created its series yet still gets a row.
	if live != nil {
		for _, lb := range live.Binds {
			if binds[[2]string{lb.Frontend, lb.Bind}] == nil {
				rep.Binds = append(rep.Binds, BindStatus{Frontend: lb.Frontend, Bind: lb.Bind, Addr: lb.Addr, State: "listening", Malformed: map[string]uint64{}, Dropped: map[string]uint64{}})
			}
		}
		sort.SliceStable(rep.Binds, func(i, j int) bool {
			a, b := rep.Binds[i], rep.Binds[j]
			return a.Frontend < b.Frontend || a.Frontend == b.Frontend && a.Bind < b.Bind
		})
	}
	names := make([]string, 0, len(sinkRows))
	for n := range sinkRows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := sinkRows[n]
		if st.opts.Errors != nil {
			r.LastError = st.opts.Errors.last("sink", n)
		}
		rep.Sinks = append(rep.Sinks, *r)
		rep.Totals.Sent += r.Sent
		rep.Totals.SentRate.Msgs += r.Rate.Msgs
		rep.Totals.SentRate.Bytes += r.Rate.Bytes
		rep.Totals.SinkDrops += r.DroppedTotal
		rep.Totals.Queued += r.QueueMessages
	}
	proxyNames := make([]string, 0, len(proxies))
	for n := range proxies {
		proxyNames = append(proxyNames, n)
	}
	sort.Strings(proxyNames)
	for _, n := range proxyNames {
		r := proxies[n]
		if st.opts.Errors != nil {
			r.LastError = st.opts.Errors.last("frontend", n)
		}
		rep.Proxies = append(rep.Proxies, *r)
	}
	for _, k := range sortedKeys(servers) {
		r := servers[k]
		if st.opts.Errors != nil {
			r.LastError = st.opts.Errors.last("server", k[0]+"/"+k[1])
		}
		rep.Servers = append(rep.Servers, *r)
	}
	return rep
}

func sortedKeys[V any](m map[[2]string]V) [][2]string {
	out := make([][2]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i][0] < out[j][0] || out[i][0] == out[j][0] && out[i][1] < out[j][1]
	})
	return out
}

// serverMetricName strips the family prefix up to and including "server_"
// (wharf_proxy_server_bytes_in_total -> bytes_in_total), or "wharf_".
func serverMetricName(name string) string {
	if i := strings.Index(name, "server_"); i >= 0 {
		return name[i+len("server_"):]
	}
	return strings.TrimPrefix(name, "wharf_")
}

// extraLabels renders the labels other than backend, server and frontend
// as k=v,k=v.
func extraLabels(labels []string) string {
	var parts []string
	for i := 0; i+1 < len(labels); i += 2 {
		switch labels[i] {
		case "backend", "server", "frontend":
			continue
		}
		parts = append(parts, labels[i]+"="+labels[i+1])
	}
	return strings.Join(parts, ",")
}
