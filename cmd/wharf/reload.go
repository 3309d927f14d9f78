package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"

	"wharf/conf"
	"wharf/deadletter"
	"wharf/ingest"
	"wharf/message"
	"wharf/metrics"
	"wharf/proxy"
	"wharf/route"
	"wharf/sinks"
	"wharf/sinks/diskbuf"
)

// syslogBind is one bind of a syslog frontend, keyed as configured.
type syslogBind struct {
	key string // scheme://addr
	fe  *conf.Frontend
	b   conf.Bind
}

func syslogBinds(cfg *conf.Config) []syslogBind {
	var out []syslogBind
	for _, name := range sortedKeys(cfg.Frontends) {
		fe := cfg.Frontends[name]
		if fe.Mode != "" && fe.Mode != "syslog" {
			continue
		}
		for _, b := range fe.Binds {
			out = append(out, syslogBind{key: b.Scheme + "://" + b.Addr, fe: fe, b: b})
		}
	}
	return out
}

// listen opens one bind. Port 0 binds are keyed by the configured address,
// so two of them in one config are told apart by frontend and index.
func (g *gateway) listen(sb syslogBind) error {
	l, err := ingest.New(sb.fe, sb.b, &g.routes, g.reg, g.log)
	if err != nil {
		return err
	}
	l.SetTap(g.ops.point(sb.fe.Name))
	if path := sb.fe.DeadLetter; path != "" {
		d := g.dead[path]
		if d == nil {
			if d, err = deadletter.Open(path, g.reg); err != nil {
				return fmt.Errorf("frontend %q: dead_letter: %w", sb.fe.Name, err)
			}
			g.dead[path] = d
		}
		l.SetDeadLetter(d)
	}
	if err := l.Start(); err != nil {
		return err
	}
	key := sb.key
	if _, dup := g.listeners[key]; dup {
		key = sb.key + "#" + l.Addr()
	}
	g.listeners[key] = l
	g.log.Info("listening", "frontend", sb.fe.Name, "bind", sb.b.Scheme+"://"+l.Addr())
	return nil
}

// reloads returns the reload counter for result (ok, invalid, failed).
func reloads(reg *metrics.Registry, result string) *metrics.Counter {
	return reg.Counter("wharf_config_reloads_total", "Config reloads by result (ok; invalid: the new config has errors; failed: it could not be applied, and the running config stays; partial: the new config runs but a new bind did not open, taken between the reload's probe and its bind).", "result", result)
}

// reloadFromFile reads the config file again and applies it.
func (g *gateway) reloadFromFile() error {
	g.mu.Lock()
	path := g.cfg.Path
	g.mu.Unlock()
	cfg, err := conf.Load(path)
	if err != nil {
		reloads(g.reg, "invalid").Inc()
		return fmt.Errorf("config %s is invalid:\n%w", path, err)
	}
	if err := g.reload(cfg); err != nil {
		if errors.As(err, new(errApplied)) {
			reloads(g.reg, "partial").Inc()
		} else {
			reloads(g.reg, "failed").Inc()
		}
		return err
	}
	reloads(g.reg, "ok").Inc()
	return nil
}

// reloadHandler serves POST /reload: 200 with a summary, or 400 with the
// config errors (the old config keeps running).
func (g *gateway) reloadHandler(w http.ResponseWriter, _ *http.Request) {
	if err := g.reloadFromFile(); err != nil {
		msg := reloadFailed(err)
		g.log.Error(msg, "err", err, "by", "POST /reload")
		http.Error(w, msg+":\n"+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintln(w, "reloaded")
}

// reloadFailed is what to say of a failed reload: whether the previous
// config still runs (an invalid config, or one that could not be
// applied) or the new one does, but for what err names (errApplied).
func reloadFailed(err error) string {
	if errors.As(err, new(errApplied)) {
		return "reload applied, but not all of it: the new config is running"
	}
	return "reload failed; the previous config keeps running"
}

// reload applies cfg to the running gateway, diffing against the old one:
//   - sinks whose settings did not change keep their runner and queue;
//     new and changed sinks get a new runner, and a changed sink's queue
//     is handed over to it; removed runners drain into their sink, then
//     close;
//   - the route table is recompiled and swapped atomically;
//   - binds present in both configs keep their sockets (no UDP gap, no TCP
//     reset) and take the new frontend options; new binds open, removed
//     binds close;
//   - proxy frontends and backends are diffed by proxy.Set.Prepare (see
//     proxy.Reload): kept binds keep their sockets, requests and
//     connections in flight finish on the old backend, new ones go by
//     the new config, removed backends close once unused, and runtime
//     server state (drain, maint, weight) stays on unchanged servers.
//
// Everything that can fail on the config's account (building sinks,
// compiling routes, probing new syslog binds' addresses, building proxy
// backends and frontends, binding new proxy addresses) happens before
// anything running is touched: if it fails, the old config keeps running
// unchanged. A new syslog bind that still fails to open after its probe
// passed (the address taken in between, or its frontend's dead-letter
// file would not open) is reported as an errApplied: the rest of the
// config is running.
func (g *gateway) reload(cfg *conf.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cfg.Admin.Listen != g.cfg.Admin.Listen {
		g.log.Warn("admin.listen changed; it takes effect at the next restart", "running", g.cfg.Admin.Listen, "configured", cfg.Admin.Listen)
	}
	g.reloadAdminTLS(&cfg.Admin)

	// 1. Sinks: reuse unchanged, build new and changed.
	next, err := g.reloadSinks(cfg)
	if err != nil {
		return err
	}

	// 2. Routes.
	targets := make(map[string]route.Target, len(next.runners))
	for n, r := range next.runners {
		targets[n] = r
	}
	tab, err := route.Compile(cfg, targets)
	if err != nil {
		next.abort()
		return err
	}
	if err := g.probeNewBinds(cfg); err != nil {
		next.abort()
		return err
	}

	// 3. Proxies: build changed backends and frontends, open new binds.
	var proxies *proxy.Reload
	if g.proxySet != nil {
		if proxies, err = g.proxySet.Prepare(cfg); err != nil {
			next.abort()
			return err
		}
	}

	// 4. Point of no return: start the new runners, swap the table, apply
	// the proxy changes.
	for _, name := range next.built {
		next.runners[name].Start()
	}
	retired := g.retireRunners(next)
	g.routes.Store(tab)
	oldCfg := g.cfg
	for name, b := range next.buffers {
		g.buffers[name] = b
	}
	for name := range g.sinks {
		if next.sinks[name] != g.sinks[name] { // changed or removed: its series read the old sink
			unregisterSinkStats(g.reg, name)
		}
	}
	for _, name := range next.built {
		registerSinkStats(g.reg, name, next.sinks[name])
	}
	g.cfg, g.sinks, g.runners = cfg, next.sinks, next.runners
	for name, bc := range next.limits {
		b := g.buffers[name]
		err := b.SetLimits(int64(bc.MaxBytes), int64(bc.SegmentBytes), bc.OnFull)
		if err == nil {
			err = b.SetFsync(bc.Fsync, bc.FsyncInterval.Duration)
		}
		if err != nil {
			g.log.Error("new disk buffer settings not applied", "sink", name, "err", err) // validated: not expected
		} else {
			g.log.Info("disk buffer settings changed", "sink", name, "max_bytes", bc.MaxBytes.String(), "segment_bytes", bc.SegmentBytes.String(), "on_full", bc.OnFull, "fsync", bc.Fsync, "fsync_interval", bc.FsyncInterval.String())
		}
	}
	if proxies != nil {
		proxies.Commit()
	}

	// 5. Listeners: keep, update, open, close.
	bindErrs := g.reloadBinds(cfg, oldCfg)
	g.publishLive()

	// 6. Retired runners: a changed sink hands its queue over to its new
	// runner (a batch being written finishes on the old sink); a removed
	// sink drains into its old sink. Both in the background; a stop
	// meanwhile waits for them (g.retiring).
	for name := range g.handovers {
		if next.runners[name] == nil { // the sink is gone: nothing to wait for
			delete(g.handovers, name)
		}
	}
	for _, r := range retired {
		to := next.runners[r.Name()]
		var handed chan struct{}
		if to != nil {
			handed = make(chan struct{})
			if g.handovers == nil {
				g.handovers = map[string]chan struct{}{}
			}
			g.handovers[r.Name()] = handed
		}
		g.retiring.Add(1)
		go func() {
			defer g.retiring.Done()
			if handed != nil {
				defer close(handed)
			}
			ctx, cancel := context.WithTimeout(g.retireCtx, oldCfg.Global.ShutdownTimeout.Duration)
			defer cancel()
			before := retiredDrops(r)
			err := r.HandOver(ctx, to)
			// HandOver's error is the sink's Close; what the drain left
			// behind shows only in the runner's drop counters.
			if lost := retiredDrops(r) - before; lost > 0 || err != nil {
				g.log.Warn("retired sink did not drain in time; the rest is counted as dropped (reason shutdown): its destination did not take them within global.shutdown_timeout. To keep a queue across a reload, keep the sink's name (a changed sink hands its queue on, but for a syslog sink whose encoding, out_framing or kind of servers changed: its queue is framed bytes, which it delivers itself) or give it a disk buffer",
					"sink", r.Name(), "dropped", lost, "timeout", oldCfg.Global.ShutdownTimeout.Duration, "close_err", err)
			}
		}()
	}
	g.log.Info("config reloaded", "config", cfg.Path, "new_or_changed_sinks", next.built, "retired_sinks", len(retired))
	if len(bindErrs) > 0 {
		return errApplied{fmt.Errorf("some binds could not be opened:\n%s", strings.Join(bindErrs, "\n"))}
	}
	return nil
}

// errApplied is a reload error after the new config was applied (a bind
// that would not open): the rest of the new config is running.
type errApplied struct{ error }

func (e errApplied) Unwrap() error { return e.error }

// probeNewBinds checks that every syslog bind cfg adds can open its
// address (ingest.Probe), before the reload changes anything. Addresses
// of the running config's binds, syslog or proxy (kept, or closed or
// moved by this reload), are wharf's own and not probed, for the
// protocol they hold only: a running udp:// bind does not hold the TCP
// port of the same address, which another process may.
func (g *gateway) probeNewBinds(cfg *conf.Config) error {
	held := map[string]bool{}
	for _, fe := range g.cfg.Frontends {
		for _, b := range fe.Binds {
			held[b.Network()+" "+b.Addr] = true
		}
	}
	var errs []string
	for _, sb := range syslogBinds(cfg) {
		if held[sb.b.Network()+" "+sb.b.Addr] {
			continue
		}
		if err := ingest.Probe(sb.b); err != nil {
			errs = append(errs, fmt.Sprintf("frontend %q bind %s: %v", sb.fe.Name, sb.key, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("new binds cannot be opened:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

// sinkSet is the sinks and runners of a config being applied; built names
// those made for it (new or changed), not yet started.
type sinkSet struct {
	sinks   map[string]sinks.Sink
	runners map[string]*sinks.Runner
	buffers map[string]*diskbuf.Buffer // of the built sinks that have one
	// takeovers are the spools of changed sinks that keep their open
	// buffer (its table did not change, or only its limits): see
	// takeoverSpool.
	takeovers map[string]*takeoverSpool
	// limits are new max_bytes, segment_bytes, on_full, fsync and
	// fsync_interval for open buffers, applied at commit
	// (diskbuf.Buffer.SetLimits and SetFsync).
	limits map[string]*conf.Buffer
	built  []string
}

// sameButBuffer reports whether sink sections a and b are equal but for
// their buffer tables.
func sameButBuffer(a, b *conf.Sink) bool {
	x := *a
	x.Buffer = b.Buffer
	return reflect.DeepEqual(&x, b)
}

// sameDir reports whether buffer tables a and b name the same directory:
// everything else in them an open buffer takes at once (max_bytes,
// segment_bytes, on_full, fsync, fsync_interval).
func sameDir(a, b *conf.Buffer) bool {
	return a != nil && b != nil && filepath.Clean(a.Dir) == filepath.Clean(b.Dir)
}

// takeoverSpool is the spool of a changed buffered sink's new runner on
// the buffer its old runner still has open. Put goes to the buffer at
// once (appends are safe beside the old runner: no input waits); Get
// waits until the old runner has stopped (at once, its batch in flight
// cut short and left unconfirmed) and the buffer's reader is rewound to
// the first unconfirmed record, so the new runner delivers everything the
// old one had not confirmed (at-least-once).
type takeoverSpool struct {
	*diskbuf.Spool
	ready chan struct{} // closed once the new runner may read
}

// Get is diskbuf.Spool.Get once the old runner has let go of the reader.
func (s *takeoverSpool) Get(ctx context.Context, dst []*message.Message, max int, maxBytes int64) ([]*message.Message, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return dst, ctx.Err()
	}
	return s.Spool.Get(ctx, dst, max, maxBytes)
}

// abort closes the sinks and buffers built for a config that is not
// applied.
func (n *sinkSet) abort() {
	for _, name := range n.built {
		n.sinks[name].Close()
	}
	for _, b := range n.buffers {
		b.Close()
	}
}

// closingBuffer is a buffered sink removed by a reload: its runner drains
// what it can into the sink (until shutdown_timeout), then its buffer
// closes with the rest still on disk. cancel cuts the draining short.
//
// Or it is the old buffer of a sink a reload gave a new dir (startMove):
// into is the buffer its records move to. taken is set when a later
// reload moves that buffer on as well and takes this move over: the
// cancelled goroutine then leaves its source open for the next move.
type closingBuffer struct {
	cancel context.CancelFunc
	done   chan struct{}
	into   *diskbuf.Buffer
	from   *diskbuf.Buffer
	taken  atomic.Bool
}

// bufferHolder returns the running sink whose disk buffer is dir, or "".
func (g *gateway) bufferHolder(dir string) string {
	for name, sc := range g.cfg.Sinks {
		if sc.Buffer != nil && g.buffers[name] != nil && filepath.Clean(sc.Buffer.Dir) == filepath.Clean(dir) {
			return name
		}
	}
	return ""
}

// finishClosing makes sure no removed sink still holds the buffer in dir:
// a sink added back takes its buffer over at once (what the removed one
// had not delivered stays on disk and is delivered by the new one).
func (g *gateway) finishClosing(dir string) {
	dir = filepath.Clean(dir)
	cb := g.closing[dir]
	if cb == nil {
		return
	}
	cb.cancel()
	<-cb.done
	delete(g.closing, dir)
}

// reloadSinks keeps the running sinks whose settings did not change and
// builds the new and changed ones (runners not started). On any error it
// closes what it built and reports every problem.
func (g *gateway) reloadSinks(cfg *conf.Config) (*sinkSet, error) {
	next := &sinkSet{sinks: map[string]sinks.Sink{}, runners: map[string]*sinks.Runner{}, buffers: map[string]*diskbuf.Buffer{},
		takeovers: map[string]*takeoverSpool{}, limits: map[string]*conf.Buffer{}}
	var errs []string
	// reclaim are new buffered sinks whose dir a removed sink or a move
	// still holds (g.closing): that is cut short only once every other
	// sink built, so a reload refused for another reason stops nothing.
	type reclaim struct {
		name string
		sc   *conf.Sink
		s    sinks.Sink
		rc   sinks.RunnerConfig
	}
	var reclaims []reclaim
	add := func(name string, s sinks.Sink, rc sinks.RunnerConfig) {
		next.sinks[name] = s
		next.runners[name] = sinks.NewRunner(name, s, rc, g.reg, g.log.With("sink", name))
		next.built = append(next.built, name)
	}
	for _, name := range sortedKeys(cfg.Sinks) {
		sc := cfg.Sinks[name]
		old, ok := g.cfg.Sinks[name]
		if ok && reflect.DeepEqual(old, sc) {
			next.sinks[name], next.runners[name] = g.sinks[name], g.runners[name]
			continue
		}
		if ok && g.buffers[name] != nil && sameDir(old.Buffer, sc.Buffer) && sameButBuffer(old, sc) {
			// Only the buffer's settings changed: the runner stays.
			next.sinks[name], next.runners[name] = g.sinks[name], g.runners[name]
			next.limits[name] = sc.Buffer
			continue
		}
		var takeover *takeoverSpool
		if sc.Buffer != nil {
			if holder := g.bufferHolder(sc.Buffer.Dir); holder == name {
				if ob := g.cfg.Sinks[name].Buffer; !reflect.DeepEqual(ob, sc.Buffer) {
					next.limits[name] = sc.Buffer
				}
				takeover = &takeoverSpool{Spool: diskbuf.NewSpool(g.buffers[name]), ready: make(chan struct{})}
			} else if holder != "" {
				errs = append(errs, fmt.Sprintf("sink %q: buffer dir %s is held by the running sink %q; remove that sink by one reload, then give its dir to %q by the next", name, sc.Buffer.Dir, holder, name))
				continue
			}
		}
		s, err := sinks.New(name, sc)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		rc := sinks.RunnerConfigFrom(sc)
		switch {
		case takeover != nil:
			rc.Spool = takeover
			next.takeovers[name] = takeover
		case sc.Buffer != nil && g.closing[filepath.Clean(sc.Buffer.Dir)] != nil:
			reclaims = append(reclaims, reclaim{name, sc, s, rc})
			continue
		case sc.Buffer != nil:
			b, spool, err := openBuffer(name, sc, g.reg, g.log)
			if err != nil {
				s.Close()
				errs = append(errs, err.Error())
				continue
			}
			next.buffers[name] = b
			rc.Spool = spool
		}
		add(name, s, rc)
	}
	for _, rs := range reclaims {
		if len(errs) > 0 {
			rs.s.Close()
			continue
		}
		g.finishClosing(rs.sc.Buffer.Dir)
		b, spool, err := openBuffer(rs.name, rs.sc, g.reg, g.log)
		if err != nil {
			rs.s.Close()
			errs = append(errs, err.Error())
			continue
		}
		next.buffers[rs.name] = b
		rs.rc.Spool = spool
		add(rs.name, rs.s, rs.rc)
	}
	if len(errs) > 0 {
		next.abort()
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return next, nil
}

// retireRunners returns the running runners that next does not keep, to
// hand over or drain. Buffered sinks are not among them: a changed one
// that keeps its buffer stops at once and lets its new runner read (see
// takeoverSpool); a removed one (or one given a new dir) stops and closes
// its buffer in the background, with what is unsent still on disk.
func (g *gateway) retireRunners(next *sinkSet) []*sinks.Runner {
	var retired []*sinks.Runner
	for name, r := range g.runners {
		if next.runners[name] == r {
			continue
		}
		if to := next.takeovers[name]; to != nil {
			b, nr := g.buffers[name], next.runners[name]
			go func() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				r.HandOver(ctx, nr) // late messages go to nr: the same buffer
				b.Rewind()
				close(to.ready)
			}()
			continue
		}
		if b := g.buffers[name]; b != nil {
			delete(g.buffers, name)
			if to := next.buffers[name]; to != nil {
				// The sink stays, with a new dir: its records move there,
				// and so do those of earlier dirs still moving into b.
				var earlier []*closingBuffer
				for _, m := range g.closing {
					if m.into == b {
						earlier = append(earlier, m)
					}
				}
				for _, m := range earlier {
					m.taken.Store(true)
					m.cancel()
					<-m.done
					g.startMove(name, nil, nil, m.from, to)
				}
				g.startMove(name, r, next.runners[name], b, to)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Global.ShutdownTimeout.Duration)
			cb := &closingBuffer{cancel: cancel, done: make(chan struct{})}
			g.closing[filepath.Clean(b.Dir())] = cb
			go func() {
				defer close(cb.done)
				defer cancel()
				r.Close(ctx)
				if err := b.Close(); err != nil {
					g.log.Error("closing the disk buffer of a removed sink", "sink", name, "err", err)
				}
			}()
			continue
		}
		retired = append(retired, r)
	}
	return retired
}

// startMove is the retirement of a buffered sink that a reload gave a
// new buffer dir: its old runner r stops at once (what it had taken from
// the buffer and not delivered stays there; messages still routed to it
// go to next), then every record the old buffer holds moves into the new
// one (diskbuf.MoveTo), where the new runner delivers it after what
// arrived since the reload. It runs in the background, registered in
// g.closing under the old dir. Cancelling it (a reload giving the old dir
// to a sink again, shutdown once shutdown_timeout is over) stops the
// move; what did not move stays in the old directory and is said so. r is
// nil for a move taken over from an earlier reload (see closingBuffer).
func (g *gateway) startMove(name string, r, next *sinks.Runner, from, to *diskbuf.Buffer) {
	ctx, cancel := context.WithCancel(context.Background())
	cb := &closingBuffer{cancel: cancel, done: make(chan struct{}), from: from, into: to}
	g.closing[filepath.Clean(from.Dir())] = cb
	go func() {
		defer close(cb.done)
		defer cancel()
		g.move(ctx, cb, name, r, next)
	}()
}

func (g *gateway) move(ctx context.Context, cb *closingBuffer, name string, r, next *sinks.Runner) {
	from, to := cb.from, cb.into
	if r != nil {
		stopped, stop := context.WithCancel(context.Background())
		stop()
		r.HandOver(stopped, next)
	}
	held := from.Stats().Pending
	moved, err := from.MoveTo(ctx, to)
	if cb.taken.Load() {
		return // a later reload moves from on, into the sink's newer dir
	}
	if cerr := from.Close(); cerr != nil && err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		g.log.Warn(fmt.Sprintf("sink %q: moving the records of its old buffer dir %s to %s stopped: %v; what did not move stays in %s (give the sink that dir again to deliver it, or move its .seg files and ack by hand while wharf is stopped)", name, from.Dir(), to.Dir(), err, from.Dir()),
			"moved", moved, "held", held)
	case moved > 0:
		g.log.Info(fmt.Sprintf("sink %q: moved the records of its old buffer dir %s to %s; the old dir holds nothing more", name, from.Dir(), to.Dir()), "moved", moved)
	}
}

// reloadBinds keeps the binds present in both configs (they take the new
// frontend options), closes removed ones within the old config's
// shutdown_timeout and opens new ones. It returns the binds that could not
// be opened.
func (g *gateway) reloadBinds(cfg, oldCfg *conf.Config) (bindErrs []string) {
	want := map[string]syslogBind{}
	for _, sb := range syslogBinds(cfg) {
		want[sb.key] = sb
	}
	for key, l := range g.listeners {
		sb, keep := want[key]
		if keep && l.Update(sb.fe) == nil {
			delete(want, key)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), oldCfg.Global.ShutdownTimeout.Duration)
		dctx, dcancel := context.WithTimeout(ctx, oldCfg.Global.ShutdownTimeout.Duration/2)
		if busy := l.Drain(dctx); busy > 0 { // read what senders wrote before closing
			g.log.Warn("connections still sending to a removed bind when its drain ended", "bind", key, "connections", busy)
		}
		dcancel()
		if err := l.Stop(ctx); err != nil {
			g.log.Warn("closing removed bind", "bind", key, "err", err)
		}
		cancel()
		delete(g.listeners, key)
		g.log.Info("closed bind", "frontend", l.Frontend(), "bind", key)
	}
	for _, sb := range syslogBinds(cfg) {
		if _, open := want[sb.key]; !open {
			continue
		}
		if err := g.listen(sb); err != nil {
			bindErrs = append(bindErrs, err.Error())
		}
	}
	return bindErrs
}

var _ sinks.Spool = (*takeoverSpool)(nil)

// retiredDrops is what a retiring runner dropped because it closed:
// queued and not delivered in time ("shutdown") or arriving after it
// began closing ("closed").
func retiredDrops(r *sinks.Runner) uint64 {
	d := r.Stats().Dropped
	return d[sinks.DropShutdown] + d[sinks.DropClosed]
}
