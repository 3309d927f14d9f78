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
)

// This file serves the status page (GET /, in the spirit of HAProxy's
// stats page) and its data (GET /api/status). Every row comes from a
// typed stats snapshot (StatusOptions.Live: the listeners', sink
// runners', proxy frontends' and servers' own counters, the ones /metrics
// exports), so the page and /metrics never disagree and no metric name
// is parsed here. Rates are computed from earlier samples; a background
// sampler keeps a bounded ring of recent points per bind and sink for the
// page's sparklines.

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
	// Sparklines: one point per sparkStep, the last sparkPoints kept per
	// bind and sink (10 minutes; 300 points x 3 series x 4 bytes, about
	// 4 KiB a row).
	defaultSparkStep   = 2 * time.Second
	defaultSparkPoints = 300
)

// StatusOptions configures the status page. Every field is optional.
type StatusOptions struct {
	// Version is shown in the page header and the JSON.
	Version string
	// Ready reports readiness (as for /readyz).
	Ready Readiness
	// Live lists the binds and sinks running now, each with a function
	// returning its stats. Without it the page has no bind or sink rows.
	Live func() Live
	// Errors supplies each component's last warning or error.
	Errors *ErrorLog
	// SparkStep and SparkPoints set the sparklines' resolution and
	// length (defaults 2s and 300: the last 10 minutes).
	SparkStep   time.Duration
	SparkPoints int
}

// Live is the set of binds, sinks and proxies running now.
type Live struct {
	Binds []LiveBind
	Sinks []LiveSink
	// Proxies returns every proxy frontend's and backend server's stats
	// now; nil when there are none.
	Proxies func() ([]ProxyStats, []ServerStats)
}

// ProxyStats is a snapshot of one proxy frontend's counters. Fields a
// mode does not keep stay zero or nil.
type ProxyStats struct {
	Frontend, Mode string
	// Connections accepted; Active open now (tcp).
	Connections uint64
	Active      int64
	// BytesIn and BytesOut to and from clients, IdleClosed by a timeout (tcp).
	BytesIn, BytesOut, IdleClosed uint64
	// Rejected by reason.
	Rejected map[string]uint64
	// HTTPErrors by kind; HTTPRequests by backend and status class (http).
	HTTPErrors   map[string]uint64
	HTTPRequests map[[2]string]uint64
	// HTTP2Errors by reason: HTTP/2 streams and connections ended by a
	// limit or a protocol error (http with TLS).
	HTTP2Errors map[string]uint64
	// EventLoop by outcome: engine = "event-loop" frontends.
	EventLoop map[string]uint64
}

// ServerStats is a snapshot of one proxy backend server's counters.
type ServerStats struct {
	Backend, Server                                      string
	Up                                                   bool
	Active                                               int64
	AdminState                                           string
	Weight                                               int
	Backup                                               bool
	Connections, ConnectErrors, BytesSent, BytesReceived uint64
	ChecksOK, ChecksFailed, WentUp, WentDown             uint64
	CheckSeconds                                         float64
}

// LiveBind is one running bind.
type LiveBind struct {
	// Frontend and Bind (scheme://addr as configured) name the bind.
	Frontend, Bind string
	// Addr is the bound address (the real port when the config said 0).
	Addr string
	// Stats returns the bind's counters now; nil means all zero.
	Stats func() BindStats
}

// BindStats is a snapshot of one bind's counters.
type BindStats struct {
	Received, ReceivedBytes, Truncated uint64
	Connections                        int64
	ConnectionsTotal                   uint64
	// By reason; every reason the bind can count, zero or not.
	Malformed, Dropped map[string]uint64
	// RELP is set for relp:// and relp+tls:// binds.
	RELP *RELPStatus
}

// RELPStatus is a RELP bind's sessions: open ones, transactions received
// and not yet acknowledged, messages acknowledged since start.
type RELPStatus struct {
	Sessions int64  `json:"sessions"`
	InFlight int64  `json:"in_flight"`
	AcksSent uint64 `json:"acks_sent"`
}

// LiveSink is one running sink.
type LiveSink struct {
	Name string
	// Stats returns the sink runner's counters now; nil means all zero.
	Stats func() SinkStats
}

// SinkStats is a snapshot of one sink runner's counters.
type SinkStats struct {
	Sent, SentBytes, Batches, WriteErrors uint64
	Queued, QueuedBytes                   int64
	// QueueSize is the queue's capacity (0: unbounded here, e.g. a disk
	// buffer), PauseSize the depth at which TCP input is held back;
	// QueueBytesSize and PauseBytes the same in bytes.
	QueueSize, PauseSize       int
	QueueBytesSize, PauseBytes int64
	// Dropped by reason, every reason present.
	Dropped map[string]uint64
	Ready   bool
	// RELP is set for syslog sinks with relp:// or relp+tls:// servers.
	RELP *RELPSinkStatus
	// Buffer is set for sinks with a disk buffer.
	Buffer *BufferStatus
	// Servers are a syslog sink's downstream servers, in order.
	Servers []SinkServerStatus
}

// SinkServerStatus is one downstream server of a syslog sink: the one it
// sends to now (active), whether it is skipped after a failure (down)
// and how many dials and writes to it failed.
type SinkServerStatus struct {
	URL      string `json:"url"`
	Active   bool   `json:"active"`
	Down     bool   `json:"down"`
	Failures uint64 `json:"failures"`
}

// BufferStatus is a sink's disk buffer: its directory, whether it can be
// written (and if not, why), the records stored and not yet delivered
// (those from before the last start included), its size on disk.
type BufferStatus struct {
	Dir            string `json:"dir"`
	Writable       bool   `json:"writable"`
	Problem        string `json:"problem,omitempty"`
	PendingRecords uint64 `json:"pending_records"`
	Bytes          int64  `json:"bytes"`
	Segments       int    `json:"segments"`
	// Faults counts how often it became unwritable since start.
	Faults uint64 `json:"faults"`
}

// RELPSinkStatus is a sink's RELP output: messages the servers
// acknowledged, messages sent again after a broken session (an upper
// bound of duplicates), messages waiting for an answer now.
type RELPSinkStatus struct {
	AcksReceived uint64 `json:"acks_received"`
	Resent       uint64 `json:"resent"`
	InFlight     int64  `json:"in_flight"`
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
	// Proxies has one row per proxy frontend (mode tcp or http), sorted;
	// empty without them.
	Proxies []ProxyStatus `json:"proxies"`
	// Servers has one row per proxy backend server, sorted by backend and
	// server; empty until proxy frontends run.
	Servers []ServerStatus `json:"servers"`
}

// Rate is a per-second rate of messages and bytes.
type Rate struct {
	Msgs  float64 `json:"msgs"`
	Bytes float64 `json:"bytes"`
}

// Totals sum the bind and sink rows. Sent and SentRate sum over sinks: a
// message routed to two sinks counts twice.
type Totals struct {
	Received      uint64 `json:"received"`
	ReceivedRate  Rate   `json:"received_rate"`
	Sent          uint64 `json:"sent"`
	SentRate      Rate   `json:"sent_rate"`
	FrontendDrops uint64 `json:"frontend_dropped"`
	SinkDrops     uint64 `json:"sink_dropped"`
	Queued        int64  `json:"queued"`
}

// Spark is a row's recent history, oldest point first, one point per
// StepSeconds: the page draws it as sparklines.
type Spark struct {
	StepSeconds float64 `json:"step_seconds"`
	// Capacity is how many points are kept (the page spans that window
	// and draws fewer points at its right end).
	Capacity int `json:"capacity"`
	// Msgs is messages per second (received for a bind, sent for a sink).
	Msgs []float32 `json:"msgs"`
	// Dropped is drops per second, all reasons.
	Dropped []float32 `json:"dropped"`
	// Queue is the queue depth at each point (sinks only).
	Queue []float32 `json:"queue,omitempty"`
}

// BindStatus is one frontend bind.
type BindStatus struct {
	Frontend string `json:"frontend"`
	// Bind is scheme://addr as configured; Addr the bound address.
	Bind string `json:"bind"`
	Addr string `json:"addr,omitempty"`
	// State is "listening".
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
	Spark            Spark             `json:"spark"`
	LastError        *LastError        `json:"last_error,omitempty"`
	// RELP is present for relp:// and relp+tls:// binds.
	RELP *RELPStatus `json:"relp,omitempty"`
}

// SinkStatus is one sink and its runner.
type SinkStatus struct {
	Sink string `json:"sink"`
	// State is "up" when the last write or check succeeded, else "down".
	State         string `json:"state"`
	Ready         bool   `json:"ready"`
	Sent          uint64 `json:"sent"`
	SentBytes     uint64 `json:"sent_bytes"`
	Rate          Rate   `json:"rate"`
	Batches       uint64 `json:"batches"`
	WriteErrors   uint64 `json:"write_errors"`
	QueueMessages int64  `json:"queue_messages"`
	QueueBytes    int64  `json:"queue_bytes"`
	// QueueCapacity is queue_size (0 with a disk buffer); QueuePauseAt
	// the depth at which TCP senders are held back (backpressure_size).
	QueueCapacity int `json:"queue_capacity"`
	QueuePauseAt  int `json:"queue_pause_at"`
	// QueueBytesCapacity and QueuePauseAtBytes are the same bounds in
	// bytes (queue_bytes, backpressure_bytes): senders are held back, and
	// the queue full, at whichever bound is reached first.
	QueueBytesCapacity int64             `json:"queue_bytes_capacity"`
	QueuePauseAtBytes  int64             `json:"queue_pause_at_bytes"`
	Dropped            map[string]uint64 `json:"dropped"`
	DroppedTotal       uint64            `json:"dropped_total"`
	Spark              Spark             `json:"spark"`
	LastError          *LastError        `json:"last_error,omitempty"`
	// RELP is present for sinks with RELP servers.
	RELP *RELPSinkStatus `json:"relp,omitempty"`
	// Buffer is present for sinks with a disk buffer.
	Buffer *BufferStatus `json:"buffer,omitempty"`
	// Servers is present for syslog sinks.
	Servers []SinkServerStatus `json:"servers,omitempty"`
}

// ProxyStatus is one proxy frontend. Like ServerStatus it reports its
// counters under the names of their series without the
// "wharf_proxy_frontend_" (or "wharf_proxy_") prefix, other labels
// appended as {k=v}: "connections_total", "rejected_total{reason=acl}",
// and for tcp "active", "bytes_in_total", "bytes_out_total",
// "idle_closed_total", for http "http_errors_total{kind=no_server}",
// "http_requests_total{backend=web,code=2xx}". Rates holds the
// per-second rate of each counter (names ending in _total).
type ProxyStatus struct {
	Frontend  string             `json:"frontend"`
	Metrics   map[string]float64 `json:"metrics"`
	Rates     map[string]float64 `json:"rates"`
	LastError *LastError         `json:"last_error,omitempty"`
}

// ServerStatus is one proxy backend server. Its counters are reported
// under their series names without the "wharf_proxy_server_" prefix:
// "up", "active", "connections_total", "connect_errors_total",
// "bytes_sent_total", "bytes_received_total", "checks_total{result=ok}",
// "checks_total{result=fail}", "transitions_total{to=up}",
// "transitions_total{to=down}", "check_seconds", "weight"; Rates holds
// the per-second rate of each counter. State is "up" or "down" (health
// checks); Admin is the administrative state set on the admin API
// ("ready", "drain" or "maint"; POST /api/servers/BACKEND/SERVER) and
// Weight the effective weight.
type ServerStatus struct {
	Backend   string             `json:"backend"`
	Server    string             `json:"server"`
	State     string             `json:"state"`
	Admin     string             `json:"admin"`
	Weight    int                `json:"weight"`
	Backup    bool               `json:"backup,omitempty"`
	Metrics   map[string]float64 `json:"metrics"`
	Rates     map[string]float64 `json:"rates"`
	LastError *LastError         `json:"last_error,omitempty"`
}

// Status serves the status page and /api/status. Safe for concurrent use.
type Status struct {
	opts    StatusOptions
	started time.Time
	stop    chan struct{}
	stopped sync.WaitGroup
	// inflight holds a token per /api/status request being answered.
	inflight chan struct{}

	mu      sync.Mutex
	history []sample            // oldest first, for rates
	sparks  map[string]*rowRing // by row key (see bindKey, sinkKey)
	last    *sample             // the sampler's previous point
}

// sample is one reading of every row's counters.
type sample struct {
	t       time.Time
	binds   map[string]BindStats
	sinks   map[string]SinkStats
	proxies []ProxyStats
	servers []ServerStats
}

func bindKey(frontend, bind string) string { return "bind\x00" + frontend + "\x00" + bind }
func sinkKey(name string) string           { return "sink\x00" + name }

// rowRing is one row's sparkline points, a fixed-size ring per series.
type rowRing struct {
	msgs, dropped, queue []float32
	next, n              int
}

func newRowRing(size int) *rowRing {
	return &rowRing{msgs: make([]float32, size), dropped: make([]float32, size), queue: make([]float32, size)}
}

func (r *rowRing) add(msgs, dropped, queue float64) {
	r.msgs[r.next], r.dropped[r.next], r.queue[r.next] = float32(msgs), float32(dropped), float32(queue)
	r.next = (r.next + 1) % len(r.msgs)
	r.n = min(r.n+1, len(r.msgs))
}

// points returns a series' points, oldest first.
func (r *rowRing) points(s []float32) []float32 {
	out := make([]float32, 0, r.n)
	for i := range r.n {
		out = append(out, s[(r.next-r.n+i+len(s))%len(s)])
	}
	return out
}

// NewStatus returns the status handlers and starts the sparkline
// sampler; Close stops it.
func NewStatus(opts StatusOptions) *Status {
	if opts.SparkStep <= 0 {
		opts.SparkStep = defaultSparkStep
	}
	if opts.SparkPoints <= 0 {
		opts.SparkPoints = defaultSparkPoints
	}
	st := &Status{opts: opts, started: time.Now(), stop: make(chan struct{}), sparks: map[string]*rowRing{}, inflight: make(chan struct{}, statusMaxInFlight)}
	st.stopped.Add(1)
	go st.sparkLoop()
	return st
}

// Close stops the sparkline sampler. The handlers keep working.
func (st *Status) Close() {
	select {
	case <-st.stop:
	default:
		close(st.stop)
	}
	st.stopped.Wait()
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

// statusMaxInFlight bounds concurrent /api/status requests, each of
// which samples every bind, sink and server and encodes the report; one
// more gets 503 at once (the page asks once a second). Unbounded, 200
// concurrent requests took wharf to 146 MiB (audit).
const statusMaxInFlight = 16

// ServeHTTP writes the StatusReport as JSON, or 503 while
// statusMaxInFlight requests are being answered.
func (st *Status) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	select {
	case st.inflight <- struct{}{}:
		defer func() { <-st.inflight }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "status: too many requests in flight; try again", http.StatusServiceUnavailable)
		return
	}
	rep := st.Report()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func (st *Status) live() Live {
	if st.opts.Live == nil {
		return Live{}
	}
	return st.opts.Live()
}

// read takes a sample: every live bind's, sink's and, with proxies,
// proxy frontend's and server's stats.
func (st *Status) read(live Live, proxies bool) sample {
	smp := sample{t: time.Now(), binds: map[string]BindStats{}, sinks: map[string]SinkStats{}}
	for _, b := range live.Binds {
		var bs BindStats
		if b.Stats != nil {
			bs = b.Stats()
		}
		smp.binds[bindKey(b.Frontend, b.Bind)] = bs
	}
	for _, s := range live.Sinks {
		var ss SinkStats
		if s.Stats != nil {
			ss = s.Stats()
		}
		smp.sinks[sinkKey(s.Name)] = ss
	}
	if proxies && live.Proxies != nil {
		smp.proxies, smp.servers = live.Proxies()
	}
	return smp
}

// sampleNow reads the stats and returns them with the reference sample
// for rates (nil when there is none yet), recording the new sample.
func (st *Status) sampleNow(live Live) (sample, *sample) {
	st.mu.Lock()
	empty := len(st.history) == 0 || time.Since(st.history[len(st.history)-1].t) > rateHistory
	st.mu.Unlock()
	if empty {
		first := st.read(live, true)
		st.mu.Lock()
		st.history = []sample{first}
		st.mu.Unlock()
		time.Sleep(firstSampleWait)
	}
	now := st.read(live, true)
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
	return now, refCopy
}

// perSecond is (v - old) / dt, 0 without a reference or after a reset.
func perSecond(v, old uint64, dt float64) float64 {
	if dt <= 0 || v < old {
		return 0
	}
	return float64(v-old) / dt
}

func sumValues(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// sparkLoop adds a point to every row's ring each SparkStep: the rates
// since the previous point and the queue depth now. Rows gone from Live
// lose their ring, so memory is bounded by the rows running.
func (st *Status) sparkLoop() {
	defer st.stopped.Done()
	t := time.NewTicker(st.opts.SparkStep)
	defer t.Stop()
	st.sparkPoint()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			st.sparkPoint()
		}
	}
}

func (st *Status) sparkPoint() {
	now := st.read(st.live(), false)
	st.mu.Lock()
	defer st.mu.Unlock()
	prev := st.last
	st.last = &now
	if prev == nil {
		return
	}
	dt := now.t.Sub(prev.t).Seconds()
	seen := map[string]bool{}
	ring := func(k string) *rowRing {
		seen[k] = true
		r := st.sparks[k]
		if r == nil {
			r = newRowRing(st.opts.SparkPoints)
			st.sparks[k] = r
		}
		return r
	}
	for k, b := range now.binds {
		p := prev.binds[k]
		ring(k).add(perSecond(b.Received, p.Received, dt), perSecond(sumValues(b.Dropped), sumValues(p.Dropped), dt), float64(b.Connections))
	}
	for k, s := range now.sinks {
		p := prev.sinks[k]
		ring(k).add(perSecond(s.Sent, p.Sent, dt), perSecond(sumValues(s.Dropped), sumValues(p.Dropped), dt), float64(s.Queued))
	}
	for k := range st.sparks {
		if !seen[k] {
			delete(st.sparks, k)
		}
	}
}

// spark returns the sparkline of row k (empty before its first point).
func (st *Status) spark(k string, queue bool) Spark {
	sp := Spark{StepSeconds: st.opts.SparkStep.Seconds(), Capacity: st.opts.SparkPoints, Msgs: []float32{}, Dropped: []float32{}}
	st.mu.Lock()
	defer st.mu.Unlock()
	if r := st.sparks[k]; r != nil {
		sp.Msgs, sp.Dropped = r.points(r.msgs), r.points(r.dropped)
		if queue {
			sp.Queue = r.points(r.queue)
		}
	}
	if queue && sp.Queue == nil {
		sp.Queue = []float32{}
	}
	return sp
}

// Report builds the current StatusReport.
func (st *Status) Report() StatusReport {
	live := st.live()
	now, ref := st.sampleNow(live)
	rep := StatusReport{
		Version:       st.opts.Version,
		Time:          now.t.UTC(),
		UptimeSeconds: now.t.Sub(st.started).Seconds(),
		Ready:         true,
		Problems:      []string{},
		Binds:         []BindStatus{},
		Sinks:         []SinkStatus{},
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
	} else {
		ref = &sample{}
	}
	rep.RateWindowSeconds = dt

	for _, lb := range live.Binds {
		k := bindKey(lb.Frontend, lb.Bind)
		b, old := now.binds[k], ref.binds[k]
		row := BindStatus{
			Frontend: lb.Frontend, Bind: lb.Bind, Addr: lb.Addr, State: "listening",
			Received: b.Received, ReceivedBytes: b.ReceivedBytes,
			Rate:        Rate{Msgs: perSecond(b.Received, old.Received, dt), Bytes: perSecond(b.ReceivedBytes, old.ReceivedBytes, dt)},
			Connections: b.Connections, ConnectionsTotal: b.ConnectionsTotal, Truncated: b.Truncated,
			Malformed: orEmpty(b.Malformed), Dropped: orEmpty(b.Dropped), DroppedTotal: sumValues(b.Dropped),
			Spark: st.spark(k, false), RELP: b.RELP,
		}
		if st.opts.Errors != nil {
			row.LastError = st.opts.Errors.last("bind", row.Frontend+" "+row.Bind)
			if row.LastError == nil {
				row.LastError = st.opts.Errors.last("frontend", row.Frontend)
			}
		}
		rep.Binds = append(rep.Binds, row)
		rep.Totals.Received += row.Received
		rep.Totals.ReceivedRate.Msgs += row.Rate.Msgs
		rep.Totals.ReceivedRate.Bytes += row.Rate.Bytes
		rep.Totals.FrontendDrops += row.DroppedTotal
	}
	sort.SliceStable(rep.Binds, func(i, j int) bool {
		a, b := rep.Binds[i], rep.Binds[j]
		return a.Frontend < b.Frontend || a.Frontend == b.Frontend && a.Bind < b.Bind
	})
	for _, ls := range live.Sinks {
		k := sinkKey(ls.Name)
		s, old := now.sinks[k], ref.sinks[k]
		row := SinkStatus{
			Sink: ls.Name, State: "down", Ready: s.Ready,
			Sent: s.Sent, SentBytes: s.SentBytes,
			Rate:    Rate{Msgs: perSecond(s.Sent, old.Sent, dt), Bytes: perSecond(s.SentBytes, old.SentBytes, dt)},
			Batches: s.Batches, WriteErrors: s.WriteErrors,
			QueueMessages: s.Queued, QueueBytes: s.QueuedBytes, QueueCapacity: s.QueueSize, QueuePauseAt: s.PauseSize,
			QueueBytesCapacity: s.QueueBytesSize, QueuePauseAtBytes: s.PauseBytes,
			Dropped: orEmpty(s.Dropped), DroppedTotal: sumValues(s.Dropped),
			Spark: st.spark(k, true), RELP: s.RELP, Buffer: s.Buffer, Servers: s.Servers,
		}
		if s.Ready {
			row.State = "up"
		}
		if st.opts.Errors != nil {
			row.LastError = st.opts.Errors.last("sink", ls.Name)
		}
		rep.Sinks = append(rep.Sinks, row)
		rep.Totals.Sent += row.Sent
		rep.Totals.SentRate.Msgs += row.Rate.Msgs
		rep.Totals.SentRate.Bytes += row.Rate.Bytes
		rep.Totals.SinkDrops += row.DroppedTotal
		rep.Totals.Queued += row.QueueMessages
	}
	sort.SliceStable(rep.Sinks, func(i, j int) bool { return rep.Sinks[i].Sink < rep.Sinks[j].Sink })
	rep.Proxies, rep.Servers = st.proxyRows(now, ref, dt)
	return rep
}

func orEmpty(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}

// proxyMetrics names a proxy frontend's counters as its series are
// named (see ProxyStatus).
func proxyMetrics(p ProxyStats) map[string]float64 {
	m := map[string]float64{"connections_total": float64(p.Connections)}
	for r, v := range p.Rejected {
		m["rejected_total{reason="+r+"}"] = float64(v)
	}
	if p.Mode == "tcp" {
		m["active"] = float64(p.Active)
		m["bytes_in_total"] = float64(p.BytesIn)
		m["bytes_out_total"] = float64(p.BytesOut)
		m["idle_closed_total"] = float64(p.IdleClosed)
	}
	for k, v := range p.HTTPErrors {
		m["http_errors_total{kind="+k+"}"] = float64(v)
	}
	for k, v := range p.HTTP2Errors {
		m["http2_errors_total{reason="+k+"}"] = float64(v)
	}
	for k, v := range p.EventLoop {
		m["http_event_loop_total{outcome="+k+"}"] = float64(v)
	}
	for k, v := range p.HTTPRequests {
		m["http_requests_total{backend="+k[0]+",code="+k[1]+"}"] = float64(v)
	}
	return m
}

// serverMetrics names a server's counters as its series are named (see
// ServerStatus).
func serverMetrics(s ServerStats) map[string]float64 {
	up := 0.0
	if s.Up {
		up = 1
	}
	return map[string]float64{
		"up": up, "active": float64(s.Active), "check_seconds": s.CheckSeconds, "weight": float64(s.Weight),
		"connections_total":          float64(s.Connections),
		"connect_errors_total":       float64(s.ConnectErrors),
		"bytes_sent_total":           float64(s.BytesSent),
		"bytes_received_total":       float64(s.BytesReceived),
		"checks_total{result=ok}":    float64(s.ChecksOK),
		"checks_total{result=fail}":  float64(s.ChecksFailed),
		"transitions_total{to=up}":   float64(s.WentUp),
		"transitions_total{to=down}": float64(s.WentDown),
	}
}

// rates returns the per-second rate of every counter (a name with
// "_total") in m against old over dt.
func rates(m, old map[string]float64, dt float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !strings.Contains(k, "_total") {
			continue
		}
		o := old[k]
		if dt <= 0 || v < o {
			out[k] = 0
			continue
		}
		out[k] = (v - o) / dt
	}
	return out
}

// proxyRows builds the proxy frontend and backend server rows.
func (st *Status) proxyRows(now sample, ref *sample, dt float64) ([]ProxyStatus, []ServerStatus) {
	oldP := map[string]ProxyStats{}
	for _, p := range ref.proxies {
		oldP[p.Frontend] = p
	}
	outP := []ProxyStatus{}
	for _, p := range now.proxies {
		m := proxyMetrics(p)
		r := ProxyStatus{Frontend: p.Frontend, Metrics: m, Rates: map[string]float64{}}
		if o, ok := oldP[p.Frontend]; ok {
			r.Rates = rates(m, proxyMetrics(o), dt)
		} else {
			r.Rates = rates(m, nil, 0)
		}
		if st.opts.Errors != nil {
			r.LastError = st.opts.Errors.last("frontend", p.Frontend)
		}
		outP = append(outP, r)
	}
	sort.SliceStable(outP, func(i, j int) bool { return outP[i].Frontend < outP[j].Frontend })
	oldS := map[[2]string]ServerStats{}
	for _, s := range ref.servers {
		oldS[[2]string{s.Backend, s.Server}] = s
	}
	outS := []ServerStatus{}
	for _, s := range now.servers {
		m := serverMetrics(s)
		r := ServerStatus{Backend: s.Backend, Server: s.Server, State: "down", Admin: s.AdminState, Weight: s.Weight, Backup: s.Backup, Metrics: m}
		if s.Up {
			r.State = "up"
		}
		if o, ok := oldS[[2]string{s.Backend, s.Server}]; ok {
			r.Rates = rates(m, serverMetrics(o), dt)
		} else {
			r.Rates = rates(m, nil, 0)
		}
		if st.opts.Errors != nil {
			r.LastError = st.opts.Errors.last("server", s.Backend+"/"+s.Server)
		}
		outS = append(outS, r)
	}
	sort.SliceStable(outS, func(i, j int) bool {
		a, b := outS[i], outS[j]
		return a.Backend < b.Backend || a.Backend == b.Backend && a.Server < b.Server
	})
	return outP, outS
}
