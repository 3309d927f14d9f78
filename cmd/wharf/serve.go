package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wharf/admin"
	"wharf/conf"
	"wharf/deadletter"
	"wharf/ingest"
	"wharf/metrics"
	"wharf/proxy"
	"wharf/proxy/accesslog"
	"wharf/route"
	"wharf/sinks"
	"wharf/sinks/diskbuf"
	"wharf/sinks/syslog"
)

// gateway is one running configuration: sinks behind their runners, the
// route table, the listeners and the admin server. Lifecycle order is
// fixed: start sinks -> routes -> listeners -> admin; stop listeners ->
// drain and close runners -> admin.
//
// mu guards cfg, sinks, runners and listeners against a reload running
// beside the admin handlers; the message path never takes it (it reads
// the route table through the atomic Holder).
type gateway struct {
	mu        sync.Mutex
	cfg       *conf.Config
	log       *slog.Logger
	reg       *metrics.Registry
	sinks     map[string]sinks.Sink
	runners   map[string]*sinks.Runner
	buffers   map[string]*diskbuf.Buffer  // disk buffers, closed after their runner
	closing   map[string]*closingBuffer   // by dir: buffered sinks a reload removed, still closing
	dead      map[string]*deadletter.File // dead-letter files by path; set at bind time (a change applies at restart)
	routes    route.Holder
	listeners map[string]*ingest.Listener // by scheme://addr as configured
	proxies   func(ctx context.Context)   // stops the proxy frontends (proxy.go)
	proxySet  *proxy.Set                  // the running proxy frontends, for their stats
	admin     *admin.Server
	adminTLS  *adminTLS     // nil unless [admin] tls_cert: reloaded with the config
	status    *admin.Status // the status page; its sampler stops with the admin listener
	ops       operator      // status page and tap (tap.go)
	// stopping is set when the stop begins: /readyz answers 503 at once
	// (stop holds mu throughout, which ready would otherwise wait for).
	stopping atomic.Bool
	// retiring counts the sinks a reload removed or changed that are
	// still draining into their old destination (reload step 6). stop
	// waits for them, so what they drop is counted in the totals and the
	// exit status; retireStop cuts them short at stop's deadline.
	retiring   sync.WaitGroup
	retireCtx  context.Context
	retireStop context.CancelFunc
	// handovers holds, by sink name, a channel closed when the hand-over
	// of that sink's queue from its previous runner ends (reload step 6):
	// stop closes the new runner only after that, or what the old one
	// hands over meets a closed runner and is dropped. Guarded by mu.
	handovers map[string]chan struct{}
}

func newLogger(cfg *conf.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Global.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Global.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// build creates sinks and runners and compiles the route table. Nothing
// listens yet; on error everything built so far is closed.
//
// With openBuffers false (wharf check), disk buffers are left alone: a
// running wharf holds their locks.
func build(cfg *conf.Config, reg *metrics.Registry, log *slog.Logger, openBuffers bool) (*gateway, error) {
	g := &gateway{cfg: cfg, log: log, reg: reg, sinks: map[string]sinks.Sink{}, runners: map[string]*sinks.Runner{}, buffers: map[string]*diskbuf.Buffer{}, closing: map[string]*closingBuffer{}, dead: map[string]*deadletter.File{}, listeners: map[string]*ingest.Listener{}}
	g.retireCtx, g.retireStop = context.WithCancel(context.Background())
	var errs []string
	for _, name := range sortedKeys(cfg.Sinks) {
		sc := cfg.Sinks[name]
		s, err := sinks.New(name, sc)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		rc := sinks.RunnerConfigFrom(sc)
		if openBuffers {
			b, spool, err := openBuffer(name, sc, reg, log)
			if err != nil {
				s.Close()
				errs = append(errs, err.Error())
				continue
			}
			if b != nil {
				g.buffers[name] = b
				rc.Spool = spool
			}
		}
		g.sinks[name] = s
		g.runners[name] = sinks.NewRunner(name, s, rc, reg, log.With("sink", name))
		registerSinkStats(reg, name, s)
	}
	if len(errs) > 0 {
		g.closeUnstarted()
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	targets := make(map[string]route.Target, len(g.runners))
	for n, r := range g.runners {
		targets[n] = r
	}
	tab, err := route.Compile(cfg, targets)
	if err != nil {
		g.closeUnstarted()
		return nil, err
	}
	g.routes.Store(tab)
	return g, nil
}

// closeUnstarted closes the sinks and buffers of a gateway that never started.
func (g *gateway) closeUnstarted() {
	for _, s := range g.sinks {
		s.Close()
	}
	for _, b := range g.buffers {
		b.Close()
	}
}

func (g *gateway) start() error {
	for _, r := range g.runners {
		r.Start()
	}
	set, stopProxies, err := startProxies(g.cfg, g.reg, g.log, proxy.Hooks{
		Routes: &g.routes,
		Tap:    func(frontend string) accesslog.Tap { return g.ops.point(frontend) },
	})
	if err != nil {
		return err
	}
	g.proxies, g.proxySet = stopProxies, set
	for _, sb := range syslogBinds(g.cfg) {
		if err := g.listen(sb); err != nil {
			return err
		}
	}
	g.publishLive() // before the admin listener: never fall back to "no token"
	if g.cfg.Admin.Listen != "" && g.cfg.Admin.Listen != "off" {
		g.admin = admin.New(g.reg, g.ready, g.log)
		g.admin.AllowHosts(g.cfg.Admin.AllowedHosts...)
		g.admin.Handle("POST /reload", http.HandlerFunc(g.reloadHandler))
		g.registerOperatorEndpoints()
		g.registerServerEndpoints()
		if g.cfg.Admin.TLS() {
			t, base, err := newAdminTLS(&g.cfg.Admin)
			if err != nil {
				return err
			}
			g.adminTLS = t
			g.admin.UseTLS(base)
		}
		if err := g.admin.Start(g.cfg.Admin.Listen); err != nil {
			return err
		}
		g.log.Info("admin listening", "addr", g.admin.Addr(), "tls", g.adminTLS != nil)
	}
	return nil
}

// ready reports every sink runner's readiness.
func (g *gateway) ready() (bool, []string) {
	if g.stopping.Load() {
		return false, []string{"stopping: reading what senders wrote, then delivering it (global.shutdown_timeout)"}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var problems []string
	for _, name := range sortedKeys(g.runners) {
		if !g.runners[name].Ready() {
			problems = append(problems, fmt.Sprintf("sink %q is not ready (see wharf_sink_write_errors_total and the log)", name))
		}
		if b := g.buffers[name]; b != nil {
			if err := b.Fault(); err != nil {
				problems = append(problems, fmt.Sprintf("sink %q: %v", name, err))
			}
		}
	}
	return len(problems) == 0, problems
}

// stop runs the shutdown sequence within timeout: listeners first (no new
// messages), then runners drain their queues into the sinks and close them.
func (g *gateway) stop(timeout time.Duration) {
	g.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	g.ops.close() // end tap streams, or the admin shutdown waits for them
	g.mu.Lock()
	defer g.mu.Unlock()
	proxiesDone := make(chan struct{}) // proxies drain beside the listeners
	go func() {
		if g.proxies != nil {
			g.proxies(ctx)
		}
		close(proxiesDone)
	}()
	g.drainListeners(ctx, timeout/2)
	for _, l := range g.listeners {
		if err := l.Stop(ctx); err != nil {
			g.log.Warn("listener stop", "frontend", l.Frontend(), "err", err)
		}
	}
	<-proxiesDone
	for _, d := range g.dead { // no listener writes to them any more
		d.Close()
	}
	// Old buffer dirs still moving into a sink's new one (a reload
	// changed its dir) finish first, while that buffer is open, as far
	// as shutdown_timeout allows; what did not move stays where it was.
	for _, cb := range g.closing {
		if cb.into == nil {
			continue
		}
		select {
		case <-cb.done:
		case <-ctx.Done():
			cb.cancel()
			<-cb.done
		}
	}
	done := make(chan struct{})
	for name, r := range g.runners {
		handed := g.handovers[name]
		go func() {
			if handed != nil {
				// The previous runner finishes its write, then moves its
				// queue here; this one's Close then delivers it.
				select {
				case <-handed:
				case <-ctx.Done():
				}
			}
			if err := r.Close(ctx); err != nil {
				g.log.Warn("sink did not drain before shutdown_timeout; the rest is counted as dropped (reason shutdown), or stays in its disk buffer", "sink", name, "err", err)
			}
			if b := g.buffers[name]; b != nil {
				if err := b.Close(); err != nil {
					g.log.Error("closing the disk buffer", "sink", name, "err", err)
				}
			}
			done <- struct{}{}
		}()
	}
	for range g.runners {
		<-done
	}
	// Sinks a reload retired shortly before may still be draining into
	// their old destinations: they get the same deadline, so what they
	// drop is counted before the totals and the exit status are made.
	retired := make(chan struct{})
	go func() { g.retiring.Wait(); close(retired) }()
	select {
	case <-retired:
	case <-ctx.Done():
		g.retireStop()
		<-retired
	}
	// A listener whose Stop ran out of time (an event loop blocked on a
	// sink that could not take more) finishes now that the sinks refuse:
	// wait for it, so the totals written next are final.
	wctx, wcancel := context.WithTimeout(context.Background(), listenerGrace)
	for _, l := range g.listeners {
		if err := l.Wait(wctx); err != nil {
			g.log.Warn("listener still running after the sinks closed; the totals line may undercount", "frontend", l.Frontend(), "err", err)
		}
	}
	wcancel()
	for _, cb := range g.closing { // buffered sinks removed by a reload
		select {
		case <-cb.done:
		case <-ctx.Done():
			cb.cancel()
			<-cb.done
		}
	}
	if g.admin != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		g.admin.Stop(actx)
		acancel()
	}
	if g.status != nil {
		g.status.Close()
	}
}

// reopen asks every sink that writes files to reopen them (logrotate).
func (g *gateway) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, s := range g.sinks {
		if r, ok := s.(interface{ Reopen() error }); ok {
			if err := r.Reopen(); err != nil {
				g.log.Error("reopen failed", "sink", name, "err", err)
			} else {
				g.log.Info("reopened", "sink", name)
			}
		}
	}
}

func serve(cfg *conf.Config, stderr io.Writer) int {
	errs := admin.NewErrorLog() // last warning per sink/bind for the status page
	log := slog.New(errs.Handler(newLogger(cfg, stderr).Handler()))
	reg := metrics.NewRegistry()
	reg.AddRuntime(version)
	for _, result := range []string{"ok", "invalid", "failed", "partial"} {
		reloads(reg, result) // exported at 0 from the start
	}
	g, err := build(cfg, reg, log, true)
	if err != nil {
		fmt.Fprintf(stderr, "wharf: %v\n", err)
		return 2
	}
	g.ops.errs = errs
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := g.start(); err != nil {
		log.Error("start failed", "err", err)
		g.stop(cfg.Global.ShutdownTimeout.Duration)
		return 1
	}
	log.Info("wharf started", "version", version, "config", cfg.Path)
	for s := range sig {
		if s == syscall.SIGHUP {
			// logrotate and config reload share SIGHUP, as in most daemons.
			g.reopen()
			if err := g.reloadFromFile(); err != nil {
				log.Error(reloadFailed(err), "err", err, "by", "SIGHUP")
			}
			continue
		}
		log.Info("shutting down", "signal", s.String(), "timeout", cfg.Global.ShutdownTimeout.Duration)
		break
	}
	go func() {
		for s := range sig {
			log.Warn("already shutting down; waiting for queues to drain (shutdown_timeout bounds it)", "signal", s.String())
		}
	}()
	// What was lost before the stop (a reload retired a sink whose
	// destination did not take its queue in time, records only in
	// removed buffer files) counts toward the exit status as what the
	// stop loses does: status 3 says this run lost messages it accepted.
	before := g.shutdownDrops()
	g.stop(cfg.Global.ShutdownTimeout.Duration)
	total := g.shutdownDrops()
	g.logTotals(before, total-before)
	if total > 0 {
		log.Error("accepted messages were dropped: a sink did not take them within global.shutdown_timeout when wharf stopped or a reload removed or changed it (see wharf_sink_dropped_total{reason=\"shutdown\"} and \"closed\"), or a disk buffer lost records only in files removed from disk (wharf_buffer_lost_records_total); exiting with status 3", "dropped_before_stop", before, "dropped_at_shutdown", total-before)
		return exitShutdownLoss
	}
	return 0
}

// drainListeners refuses new syslog connections and reads what senders
// already wrote before the connections close (Listener.Drain; also on
// connections accepted before the stop that a held-back event loop
// opens only now), all binds
// at once, for at most budget (half of shutdown_timeout: the sinks get
// the rest to deliver it). Senders that stop writing are drained in
// milliseconds; one that keeps writing holds the stop for the budget.
func (g *gateway) drainListeners(ctx context.Context, budget time.Duration) {
	dctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	start := time.Now()
	ls := make([]*ingest.Listener, 0, len(g.listeners))
	for _, l := range g.listeners {
		ls = append(ls, l)
	}
	busy := make([]int, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			busy[i] = l.Drain(dctx)
		}()
	}
	wg.Wait()
	for i, l := range ls {
		if busy[i] > 0 {
			// The address it listens on, as the "listening" line names
			// it (a configured port 0 is the port it got).
			g.log.Warn("connections still sending when the drain ended; what they send from now on is lost (plain TCP has no acknowledgements)", "frontend", l.Frontend(), "bind", l.Bind().Scheme+"://"+l.Addr(), "connections", busy[i], "drained_for", time.Since(start).Round(time.Millisecond))
		}
	}
}

// listenerGrace bounds the wait, after the sinks closed, for listeners
// whose Stop timed out: with the sinks refusing, they finish in
// milliseconds.
const listenerGrace = 5 * time.Second

// exitShutdownLoss is the exit status of a run that dropped messages
// wharf had accepted when it closed a sink (at the stop, or earlier when
// a reload removed or changed it: the sink down or slow past
// shutdown_timeout), so a supervisor can tell it from a clean stop (0).
// What stays in a disk buffer is not dropped.
const exitShutdownLoss = 3

// shutdownDrops sums, since start, the drops that only closing a sink
// causes (at a stop, or a reload that removed or changed it): messages
// queued but not delivered by shutdown_timeout ("shutdown"), messages
// that reached a runner after it began closing ("closed"), and disk
// buffer records only in files removed from disk
// (wharf_buffer_lost_records_total; see diskbuf's removed.go). The
// series of a retired runner stay registered, so its drops stay in the
// sum.
func (g *gateway) shutdownDrops() uint64 {
	var n float64
	g.reg.Each(func(s metrics.Sample) {
		switch s.Name {
		case "wharf_sink_dropped_total":
			if r := s.Label("reason"); r == sinks.DropShutdown || r == sinks.DropClosed {
				n += s.Value
			}
		case "wharf_buffer_lost_records_total":
			n += s.Value
		}
	})
	return uint64(n)
}

// logTotals writes one line with what went in and out, so an operator (and
// the shutdown test) can compare it with what arrived downstream.
func (g *gateway) logTotals(droppedBeforeStop, droppedAtShutdown uint64) {
	var received, sent, sinkDropped, frontendDropped float64
	byReason := map[string]float64{}
	g.reg.Each(func(s metrics.Sample) {
		switch s.Name {
		case "wharf_frontend_received_total":
			received += s.Value
		case "wharf_sink_sent_total":
			sent += s.Value
		case "wharf_sink_dropped_total":
			sinkDropped += s.Value
			if s.Value > 0 {
				byReason[s.Label("reason")] += s.Value
			}
		case "wharf_frontend_dropped_total":
			frontendDropped += s.Value
		}
	})
	g.log.Info("stopped", "received", uint64(received), "sent", uint64(sent),
		"sink_dropped", uint64(sinkDropped), "frontend_dropped", uint64(frontendDropped),
		"dropped_before_stop", droppedBeforeStop, "dropped_at_shutdown", droppedAtShutdown, "sink_dropped_by_reason", reasonList(byReason))
}

// reasonList formats counts by reason as "closed=3,spool_error=200"
// (sorted; "none" when empty), for the stopped line.
func reasonList(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", k, uint64(m[k]))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func check(cfg *conf.Config, stdout, stderr io.Writer) int {
	// Build every sink (without connecting) so type-specific option errors
	// surface here too, then compile the routes.
	reg := metrics.NewRegistry()
	g, err := build(cfg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		fmt.Fprintf(stderr, "wharf: config %s is invalid:\n%v\n", cfg.Path, err)
		return 2
	}
	for _, s := range g.sinks {
		s.Close()
	}
	cfg.Describe(stdout)
	if !verifyBuffers(cfg, stdout) {
		fmt.Fprintf(stderr, "wharf: config %s is valid, but a disk buffer could not be verified\n", cfg.Path)
		return 1
	}
	fmt.Fprintf(stdout, "config %s is valid\n", cfg.Path)
	return 0
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sinkStatFamilies are the series registerSinkStats adds for a sink.
var sinkStatFamilies = []string{
	"wharf_sink_failovers_total", "wharf_sink_replays_total", "wharf_sink_file_opens_total", "wharf_sink_file_closes_total", "wharf_sink_open_files",
	"wharf_sink_server_active", "wharf_sink_server_up", "wharf_sink_server_failures_total",
	"wharf_relp_acks_received_total", "wharf_relp_resent_total", "wharf_relp_in_flight",
}

// registerSinkStats exports what sink s (named name) counts itself: a
// syslog forwarder's failovers, servers and RELP window, a templated
// file sink's files. The series read s at scrape time, so a reload that
// replaces s calls it again for the new one (after unregisterSinkStats:
// a server list may have changed).
func registerSinkStats(reg *metrics.Registry, name string, s sinks.Sink) {
	if f, ok := s.(interface{ Failovers() uint64 }); ok { // syslog forwarder
		reg.CounterFunc("wharf_sink_failovers_total", "Switches from one downstream server to another (failover and failback), since the sink started.",
			func() float64 { return float64(f.Failovers()) }, "sink", name)
	}
	if f, ok := s.(interface {
		Templated() bool
		FileStats() (opens, lruCloses, idleCloses uint64, open int64)
	}); ok && f.Templated() { // file sink, path with {placeholders}
		reg.CounterFunc("wharf_sink_file_opens_total", "Files a file sink with a templated path opened.",
			func() float64 { o, _, _, _ := f.FileStats(); return float64(o) }, "sink", name)
		reg.CounterFunc("wharf_sink_file_closes_total", "Files a file sink with a templated path closed, by reason: lru (to stay within max_open_files), idle (not written for a while).",
			func() float64 { _, l, _, _ := f.FileStats(); return float64(l) }, "sink", name, "reason", "lru")
		reg.CounterFunc("wharf_sink_file_closes_total", "Files a file sink with a templated path closed, by reason: lru (to stay within max_open_files), idle (not written for a while).",
			func() float64 { _, _, i, _ := f.FileStats(); return float64(i) }, "sink", name, "reason", "idle")
		reg.GaugeFunc("wharf_sink_open_files", "Files a file sink with a templated path has open.",
			func() float64 { _, _, _, n := f.FileStats(); return float64(n) }, "sink", name)
	}
	if f, ok := s.(*syslog.Syslog); ok {
		reg.CounterFunc("wharf_sink_replays_total", "Times a syslog sink wrote its last batches again on a new TCP connection because the previous one was found reset (the collector may have lost them unread); each may duplicate messages there.",
			func() float64 { return float64(f.Replays()) }, "sink", name)
		for i, st := range f.Servers() {
			reg.GaugeFunc("wharf_sink_server_active", "1 for the downstream server a syslog sink sends to now, 0 for its other servers.",
				func() float64 { return b2f(f.ServerState(i).Active) }, "sink", name, "server", st.URL)
			reg.GaugeFunc("wharf_sink_server_up", "0 while a syslog sink skips the server after a failed dial or write (its backoff), else 1.",
				func() float64 { return b2f(!f.ServerState(i).Down) }, "sink", name, "server", st.URL)
			reg.CounterFunc("wharf_sink_server_failures_total", "Failed dials and writes to a syslog sink's downstream server.",
				func() float64 { return float64(f.ServerState(i).Failures) }, "sink", name, "server", st.URL)
		}
	}
	if f, ok := s.(*syslog.Syslog); ok && f.HasRELP() {
		reg.CounterFunc("wharf_relp_acks_received_total", "Messages a RELP server (relp:// or relp+tls:// in servers) acknowledged.",
			func() float64 { return float64(f.RELPStats().AcksReceived) }, "sink", name)
		reg.CounterFunc("wharf_relp_resent_total", "Messages sent again to a RELP server after a session broke before they were acknowledged; each may be a duplicate there.",
			func() float64 { return float64(f.RELPStats().Resent) }, "sink", name)
		reg.GaugeFunc("wharf_relp_in_flight", "Messages sent to the RELP server and not yet acknowledged.",
			func() float64 { return float64(f.RELPStats().InFlight) }, "sink", name)
	}
}

// unregisterSinkStats removes the series registerSinkStats added for the
// sink name (one a reload replaced or removed).
func unregisterSinkStats(reg *metrics.Registry, name string) {
	for _, f := range sinkStatFamilies {
		reg.RemoveNamed(f, "sink", name)
	}
}
