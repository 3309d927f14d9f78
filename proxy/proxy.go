// Package proxy runs wharf's proxy frontends (mode tcp and http) and the
// backends they forward to, from one config. The work is in the
// subpackages: tcp (connection forwarding), httpproxy (reverse proxy),
// upstream (server pools, balancing, health checks), proxyproto (PROXY
// protocol), sni (ClientHello peeking), acl (address lists).
//
// Lifecycle: Start builds every backend used by a proxy frontend, starts
// its health checks, then binds every frontend; Shutdown stops accepting
// on all frontends at once, lets open connections finish until its
// context ends (then closes them), and stops the health checks.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"wharf/conf"
	"wharf/metrics"
	"wharf/proxy/accesslog"
	"wharf/proxy/httpproxy"
	"wharf/proxy/internal/front"
	"wharf/proxy/tcp"
	"wharf/proxy/upstream"
	"wharf/route"
)

// frontend is what Set needs of a tcp or http frontend.
type frontend interface {
	Name() string
	Addrs() []net.Addr
	Shutdown(ctx context.Context) error
	Stats() front.Stats
	// Serve accepts on a socket the Set opened or took over; Release
	// stops accepting on it (closing it or not); Reroute resolves a new
	// config's backend and use rules, applied by commit.
	Serve(ln *net.TCPListener)
	Release(ln *net.TCPListener, closeIt bool)
	Reroute(cfg *conf.Frontend, backends map[string]*upstream.Backend) (commit func(), err error)
	// BeginRetire marks a frontend a reload replaced or removed, before
	// the reload answers: from then on every answer ends its connection,
	// so no request that comes after the reload is routed by the old
	// config. Retire is then Shutdown for it, more gently.
	BeginRetire()
	Retire(ctx context.Context) error
}

// FrontendStats is a snapshot of one proxy frontend's counters.
type FrontendStats = front.Stats

// ServerStats is a snapshot of one backend server's counters.
type ServerStats = upstream.ServerStats

// Stats returns every proxy frontend's counters (in name order) and every
// backend server's (by backend name, then config order). Safe for
// concurrent use; a nil Set has none.
func (s *Set) Stats() ([]FrontendStats, []ServerStats) {
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	frontends, backends := s.frontends, s.backends
	s.mu.Unlock()
	var fes []FrontendStats
	for _, f := range frontends {
		fes = append(fes, f.Stats())
	}
	var srvs []ServerStats
	for _, n := range sortedNames(backends) {
		for _, sv := range backends[n].Servers() {
			srvs = append(srvs, sv.Stats())
		}
	}
	return fes, srvs
}

var (
	_ frontend = (*tcp.Frontend)(nil)
	_ frontend = (*httpproxy.Frontend)(nil)
)

// Set is the running proxy part of a config. It lives as long as the
// process: Reload changes it in place.
type Set struct {
	log   *slog.Logger
	reg   *metrics.Registry
	hooks Hooks

	// mu guards what follows against the readers (Stats, Server...);
	// reloads are serialized by their caller.
	mu        sync.Mutex
	cfg       *conf.Config // the applied config; nil before the first
	backends  map[string]*upstream.Backend
	frontends []frontend            // in name order
	binds     map[string]*liveBind  // by bindKeys
	tlsFiles  map[string][32]byte   // by frontend: its tls_cert and tls_key contents' digest
	retiring  map[frontend]struct{} // replaced frontends still finishing their connections
	retired   map[*upstream.Backend]struct{}
	quit      chan struct{} // closed by Shutdown: retired backends close at once
	bg        sync.WaitGroup
}

// Hooks connect the proxies to the rest of wharf; zero fields are off.
type Hooks struct {
	// Routes is where access_log lines are routed (proxy/accesslog).
	Routes *route.Holder
	// Tap returns a frontend's message tap, which sees its access log.
	Tap func(frontend string) accesslog.Tap
}

// accessLog is the access logger of the named frontend.
func (h Hooks) accessLog(frontend string) *accesslog.Logger {
	var tap accesslog.Tap
	if h.Tap != nil {
		tap = h.Tap(frontend)
	}
	return accesslog.New(frontend, h.Routes, tap)
}

// liveBind is one listening socket and the frontend accepting on it.
type liveBind struct {
	ln *net.TCPListener
	fe frontend
}

// Start builds and starts every proxy frontend of cfg (a validated,
// defaulted config) and the backends they use. With no proxy frontend it
// returns an empty Set (a reload may add some). On error nothing is left
// running.
func Start(cfg *conf.Config, reg *metrics.Registry, log *slog.Logger, hooks Hooks) (*Set, error) {
	s := &Set{log: log, reg: reg, hooks: hooks, backends: map[string]*upstream.Backend{}, binds: map[string]*liveBind{},
		retiring: map[frontend]struct{}{}, retired: map[*upstream.Backend]struct{}{}, quit: make(chan struct{})}
	r, err := s.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	r.Commit()
	return s, nil
}

// Addrs returns the bound addresses of a frontend (nil if unknown).
func (s *Set) Addrs(frontend string) []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.frontends {
		if f.Name() == frontend {
			return f.Addrs()
		}
	}
	return nil
}

// Shutdown stops every frontend at once (stop accepting, wait for open
// connections until ctx ends, then close them), those a reload replaced
// and that are still finishing too, and then the health checks. It
// returns an error naming the frontends that had to be forced.
func (s *Set) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	all := append([]frontend(nil), s.frontends...)
	for f := range s.retiring {
		all = append(all, f)
	}
	backends := s.backends
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for i, f := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("proxy: frontend %s: connections still open at shutdown timeout were closed: %w", f.Name(), err)
			}
		}()
	}
	wg.Wait()
	for _, b := range backends {
		b.Close()
	}
	s.bg.Wait() // retired backends, closed at quit
	return errors.Join(errs...)
}

// Servers returns every backend's servers, by backend name then config
// order; nil for a nil Set.
func (s *Set) Servers() []*upstream.Server {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	backends := s.backends
	s.mu.Unlock()
	var out []*upstream.Server
	for _, n := range sortedNames(backends) {
		out = append(out, backends[n].Servers()...)
	}
	return out
}

// Server returns the server called server of backend, for runtime
// control (SetState, SetWeight). The error names what is unknown and
// lists the names there are.
func (s *Set) Server(backend, server string) (*upstream.Server, error) {
	var backends map[string]*upstream.Backend
	if s != nil {
		s.mu.Lock()
		backends = s.backends
		s.mu.Unlock()
	}
	b := backends[backend]
	if b == nil {
		names := sortedNames(backends)
		if len(names) == 0 {
			return nil, fmt.Errorf("unknown backend %q: no proxy backend is running (backends run only when a mode tcp or http frontend uses the config)", backend)
		}
		return nil, fmt.Errorf("unknown backend %q; running backends: %s", backend, strings.Join(names, ", "))
	}
	if sv := b.Server(server); sv != nil {
		return sv, nil
	}
	var names []string
	for _, sv := range b.Servers() {
		names = append(names, sv.Name)
	}
	return nil, fmt.Errorf("backend %s has no server %q; its servers: %s", backend, server, strings.Join(names, ", "))
}

// CarryAdminState copies what the operator set at runtime (the
// administrative state and weight of each server, see
// upstream.Server.SetState) from old's backends to s's of the same name,
// for servers whose address and configured weight did not change. A
// reload that rebuilds backends calls it before the new set takes
// traffic, so a drained server stays drained. Reload does this for the
// backends it rebuilds.
func (s *Set) CarryAdminState(old *Set) {
	if s == nil || old == nil {
		return
	}
	for name, b := range s.backends {
		if ob := old.backends[name]; ob != nil {
			b.CarryAdminState(ob)
		}
	}
}
