package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"time"

	"wharf/conf"

	"wharf/proxy/httpproxy"
	"wharf/proxy/internal/front"
	"wharf/proxy/tcp"
	"wharf/proxy/upstream"
)

// Reload is a new config's proxy part, built beside the running one by
// Prepare and applied by Commit (or dropped by Abort). Reload is how
// SIGHUP and POST /reload change proxies without a restart, by diffing
// the new config against the applied one:
//
//   - a backend whose table did not change is kept as it runs (servers,
//     health, runtime state, pooled connections); a new or changed one
//     is built anew, and its servers whose name and address stay take
//     over their health state and, when their configured weight stays
//     too, what the operator set at runtime (drain, maint, weight:
//     CarryAdminState);
//   - a frontend whose settings other than bind, backend and use did not
//     change is kept: its routing is swapped atomically, so new
//     connections (tcp) and new requests, on open keep-alive connections
//     too (http), go by the new config while those in flight finish on
//     the backend they chose. A frontend whose other settings changed
//     (timeouts, TLS files, allow lists...) is built anew and takes over
//     the sockets of its binds; the old one finishes its connections
//     (idle keep-alive connections are closed, as at shutdown) within the
//     old config's shutdown_timeout;
//   - a bind (keyed by its configured address) present before and after
//     keeps its listening socket, even when it moves to another
//     frontend: connections arriving during the reload wait in the
//     kernel's accept queue, none is refused. New binds are opened by
//     Prepare, so an address in use fails the reload before anything
//     changed; removed binds stop listening at Commit;
//   - a backend no longer used is closed (health checks stopped) once
//     nothing is in flight to it; HTTP connections pooled to it are
//     closed when idle.
type Reload struct {
	s         *Set
	cfg       *conf.Config
	backends  map[string]*upstream.Backend
	built     []*upstream.Backend // new backends, not started
	frontends []frontend          // in name order
	kept      map[frontend]bool   // running frontends that stay
	reroutes  []func()
	binds     map[string]*liveBind
	opened    []*net.TCPListener // by Prepare: closed by Abort
	tlsFiles  map[string][32]byte
	// Counts for the log line.
	rebuilt []string
}

// Prepare builds what cfg (validated, defaulted) needs beside what runs:
// the new and changed backends (health checks not started), the new and
// changed frontends (not accepting), and the listening sockets of new
// binds. Nothing running changes. On error (a backend or frontend that
// cannot be built, an address that cannot be bound) everything prepared
// is closed and the error names each problem. Prepare and Commit must
// not run concurrently with another reload.
func (s *Set) Prepare(cfg *conf.Config) (*Reload, error) {
	s.mu.Lock()
	oldCfg, oldBackends, oldFrontends, oldBinds, oldTLS := s.cfg, s.backends, s.frontends, s.binds, s.tlsFiles
	s.mu.Unlock()
	r := &Reload{s: s, cfg: cfg, backends: map[string]*upstream.Backend{}, kept: map[frontend]bool{},
		binds: map[string]*liveBind{}, tlsFiles: map[string][32]byte{}}
	names := proxyFrontends(cfg)
	var errs []error
	if len(names) > 0 { // backends run only for proxy frontends
		for _, name := range sortedNames(cfg.Backends) {
			bc := cfg.Backends[name]
			if ob := oldBackends[name]; ob != nil && oldCfg != nil && reflect.DeepEqual(oldCfg.Backends[name], bc) {
				r.backends[name] = ob
				continue
			}
			b, err := upstream.New(bc, s.reg, s.log)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ob := oldBackends[name]; ob != nil {
				b.CarryHealth(ob)
				b.CarryAdminState(ob)
			}
			r.backends[name] = b
			r.built = append(r.built, b)
			if oldBackends[name] != nil {
				r.rebuilt = append(r.rebuilt, name)
			}
		}
	}
	if len(errs) > 0 {
		r.Abort()
		return nil, errors.Join(errs...)
	}
	byName := map[string]frontend{}
	for _, f := range oldFrontends {
		byName[f.Name()] = f
	}
	for _, name := range names {
		fc := cfg.Frontends[name]
		digest, err := tlsDigest(fc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.tlsFiles[name] = digest
		if old := byName[name]; old != nil && sameSettings(oldCfg.Frontends[name], fc) && oldTLS[name] == digest {
			commit, err := old.Reroute(fc, r.backends)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.reroutes = append(r.reroutes, commit)
			r.kept[old] = true
			r.frontends = append(r.frontends, old)
			continue
		}
		var fe frontend
		alog := s.hooks.accessLog(name)
		if fc.Mode == "tcp" {
			var t *tcp.Frontend
			if t, err = tcp.New(fc, r.backends, s.reg, s.log); err == nil {
				t.SetAccessLog(alog)
				fe = t
			}
		} else {
			var h *httpproxy.Frontend
			if h, err = httpproxy.New(fc, r.backends, s.reg, s.log); err == nil {
				h.SetAccessLog(alog)
				fe = h
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.frontends = append(r.frontends, fe)
	}
	if len(errs) > 0 {
		r.Abort()
		return nil, errors.Join(errs...)
	}
	// Which running socket each bind takes: for a bind with a port, the
	// one of the same configured address, else one listening on that
	// address (a port 0 bind given its port); then port 0 binds take the
	// one of their configured address left over. The rest are opened.
	taken := map[*net.TCPListener]bool{}
	for pass := range 3 {
		for _, fe := range r.frontends {
			fc := cfg.Frontends[fe.Name()]
			for i, key := range bindKeys(cfg, fe.Name()) {
				if r.binds[key] != nil || (pass < 2) != (fc.Binds[i].Port != 0) {
					continue
				}
				lb := oldBinds[key]
				if pass == 1 {
					lb = boundTo(oldBinds, fc.Binds[i].Addr, taken)
				}
				if lb != nil && !taken[lb.ln] {
					r.binds[key] = &liveBind{ln: lb.ln, fe: fe}
					taken[lb.ln] = true
				}
			}
		}
	}
	for _, fe := range r.frontends {
		fc := cfg.Frontends[fe.Name()]
		for i, key := range bindKeys(cfg, fe.Name()) {
			if r.binds[key] != nil {
				continue
			}
			component := "proxy/http"
			if fc.Mode == "tcp" {
				component = "proxy/tcp"
			}
			ln, err := front.ListenBind(component, fe.Name(), fc.Binds[i].Addr)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.opened = append(r.opened, ln)
			r.binds[key] = &liveBind{ln: ln, fe: fe}
		}
	}
	if len(errs) > 0 {
		r.Abort()
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Abort closes what Prepare built and opened; the running proxies are
// untouched.
func (r *Reload) Abort() {
	for _, ln := range r.opened {
		ln.Close()
	}
	for _, b := range r.built {
		b.Close()
	}
}

// Commit applies a prepared reload: it cannot fail. Binds that stay keep
// their socket (handed to a rebuilt frontend without closing it), new
// ones start accepting, removed ones close; kept frontends switch to the
// new routing; replaced and removed frontends finish their connections
// in the background within the previous config's shutdown_timeout, and
// backends no longer used close once nothing is in flight to them.
func (r *Reload) Commit() {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	grace := conf.DefaultShutdownTimeout
	if s.cfg != nil && s.cfg.Global.ShutdownTimeout.Duration > 0 {
		grace = s.cfg.Global.ShutdownTimeout.Duration
	}
	for _, b := range r.built {
		b.Start()
	}
	for _, commit := range r.reroutes {
		commit()
	}
	var opened, closed []string
	byLn := map[*net.TCPListener]*liveBind{}
	for _, nb := range r.binds {
		byLn[nb.ln] = nb
	}
	serve := map[*net.TCPListener]bool{} // sockets to (re)start accepting on
	for key, lb := range s.binds {
		nb := byLn[lb.ln]
		switch {
		case nb == nil:
			lb.fe.Release(lb.ln, true)
			closed = append(closed, key)
			s.log.Info("proxy bind closed", "frontend", lb.fe.Name(), "bind", key)
		case nb.fe != lb.fe:
			lb.fe.Release(lb.ln, false)
			serve[lb.ln] = true
		}
	}
	wasOpen := map[*net.TCPListener]bool{}
	for _, lb := range s.binds {
		wasOpen[lb.ln] = true
	}
	for _, fe := range r.frontends { // in config order, so Addrs is too
		for _, key := range bindKeys(r.cfg, fe.Name()) {
			nb := r.binds[key]
			switch {
			case !wasOpen[nb.ln]:
				nb.fe.Serve(nb.ln)
				opened = append(opened, key)
				s.log.Info("proxy listening", "frontend", fe.Name(), "mode", r.cfg.Frontends[fe.Name()].Mode, "bind", "tcp://"+nb.ln.Addr().String())
			case serve[nb.ln]:
				nb.fe.Serve(nb.ln)
			}
		}
	}
	var replaced []string
	for _, f := range s.frontends {
		if r.kept[f] {
			continue
		}
		replaced = append(replaced, f.Name())
		f.BeginRetire()
		s.retiring[f] = struct{}{}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			if err := f.Retire(ctx); err != nil {
				s.log.Warn("proxy frontend replaced by a reload: connections still open after shutdown_timeout were closed", "frontend", f.Name(), "err", err)
			}
			s.mu.Lock()
			delete(s.retiring, f)
			s.mu.Unlock()
		}()
	}
	inUse := map[*upstream.Backend]bool{}
	for _, b := range r.backends {
		inUse[b] = true
	}
	var retired []string
	for name, b := range s.backends {
		if !inUse[b] {
			retired = append(retired, name)
			s.retire(b)
		}
	}
	s.forget(r)
	if s.cfg != nil { // not Start
		s.log.Info("proxy reloaded", "frontends", len(r.frontends), "frontends_replaced_or_removed", replaced,
			"backends_built", len(r.built), "backends_rebuilt", r.rebuilt, "backends_retired", retired,
			"binds_opened", opened, "binds_closed", closed)
	}
	s.cfg, s.backends, s.frontends, s.binds, s.tlsFiles = r.cfg, r.backends, r.frontends, r.binds, r.tlsFiles
}

// forget removes from the metrics the series of the servers, backends
// and frontends r takes away, so /metrics and dashboards do not show
// their last values for ever. What r keeps under the same name (a
// rebuilt backend's servers, a rebuilt frontend) shares its series with
// what it replaces and keeps counting. s.mu is held.
func (s *Set) forget(r *Reload) {
	for name, b := range s.backends {
		nb := r.backends[name]
		if nb == nil {
			s.reg.Remove("backend", name)
			continue
		}
		for _, sv := range b.Servers() {
			if nb.Server(sv.Name) == nil {
				s.reg.Remove("backend", name, "server", sv.Name)
			}
		}
	}
	for _, f := range s.frontends {
		if r.cfg.Frontends[f.Name()] == nil || !r.cfg.Frontends[f.Name()].IsProxy() {
			s.reg.Remove("frontend", f.Name())
		}
	}
}

// retirePoll is how often a retired backend is checked for requests or
// connections still in flight.
const retirePoll = 50 * time.Millisecond

// retire closes b (its health checks) once nothing is in flight to it, or
// at Shutdown. s.mu is held.
func (s *Set) retire(b *upstream.Backend) {
	s.retired[b] = struct{}{}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(retirePoll)
		defer t.Stop()
		for b.Active() > 0 {
			select {
			case <-t.C:
			case <-s.quit:
			}
			select {
			case <-s.quit:
				b.Close()
				return
			default:
			}
		}
		b.Close()
		s.mu.Lock()
		delete(s.retired, b)
		s.mu.Unlock()
		s.log.Info("proxy backend closed: removed or changed by a reload, nothing in flight to it", "backend", b.Name)
	}()
}

// boundTo returns the bind in binds, not taken, whose socket listens on
// addr, or nil.
func boundTo(binds map[string]*liveBind, addr string, taken map[*net.TCPListener]bool) *liveBind {
	for _, key := range sortedNames(binds) {
		if lb := binds[key]; !taken[lb.ln] && lb.ln.Addr().String() == addr {
			return lb
		}
	}
	return nil
}

// proxyFrontends returns cfg's tcp and http frontends' names, sorted.
func proxyFrontends(cfg *conf.Config) []string {
	var names []string
	for name, f := range cfg.Frontends {
		if f != nil && f.IsProxy() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// bindKeys returns the keys of frontend's binds in cfg, in order: the
// configured address (tcp://host:port), with "#n" added to the n-th
// repeat of an address in the config (port 0 binds), so a bind keeps its
// socket across a reload that keeps its address.
func bindKeys(cfg *conf.Config, frontend string) []string {
	seen := map[string]int{}
	var out []string
	for _, name := range proxyFrontends(cfg) {
		for _, b := range cfg.Frontends[name].Binds {
			key := "tcp://" + b.Addr
			if n := seen[key]; n > 0 {
				key += "#" + strconv.Itoa(n)
			}
			seen["tcp://"+b.Addr]++
			if name == frontend {
				out = append(out, key)
			}
		}
	}
	return out
}

// sameSettings reports whether two configs of a frontend differ at most
// in what a running frontend can take at once: its binds, backend and use
// rules, and access_log.
func sameSettings(a, b *conf.Frontend) bool {
	if a == nil || b == nil {
		return false
	}
	x, y := *a, *b
	x.Bind, y.Bind, x.Binds, y.Binds = nil, nil, nil, nil
	x.Backend, y.Backend, x.Use, y.Use = "", "", nil, nil
	// access_log is read from the route table at each line.
	x.AccessLog, y.AccessLog = nil, nil
	return reflect.DeepEqual(x, y)
}

// tlsDigest hashes the contents of a frontend's tls_cert and tls_key, so
// a reload after a certificate was renewed in place rebuilds the
// frontend.
func tlsDigest(fc *conf.Frontend) ([32]byte, error) {
	if fc.TLSCert == "" {
		return [32]byte{}, nil
	}
	h := sha256.New()
	for _, p := range []string{fc.TLSCert, fc.TLSKey} {
		b, err := os.ReadFile(p)
		if err != nil {
			return [32]byte{}, fmt.Errorf("proxy: frontend %s: %w", fc.Name, err)
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
