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
	"sort"
	"strings"
	"sync"

	"wharf/conf"
	"wharf/metrics"
	"wharf/proxy/httpproxy"
	"wharf/proxy/internal/front"
	"wharf/proxy/tcp"
	"wharf/proxy/upstream"
)

// frontend is what Set needs of a tcp or http frontend.
type frontend interface {
	Name() string
	Start() error
	Addrs() []net.Addr
	Shutdown(ctx context.Context) error
	Stats() front.Stats
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
	var fes []FrontendStats
	for _, f := range s.frontends {
		fes = append(fes, f.Stats())
	}
	names := make([]string, 0, len(s.backends))
	for n := range s.backends {
		names = append(names, n)
	}
	sort.Strings(names)
	var srvs []ServerStats
	for _, n := range names {
		for _, sv := range s.backends[n].Servers() {
			srvs = append(srvs, sv.Stats())
		}
	}
	return fes, srvs
}

var (
	_ frontend = (*tcp.Frontend)(nil)
	_ frontend = (*httpproxy.Frontend)(nil)
)

// Set is the running proxy part of a config.
type Set struct {
	log       *slog.Logger
	backends  map[string]*upstream.Backend
	frontends []frontend
}

// Start builds and starts every proxy frontend of cfg (a validated,
// defaulted config) and the backends they use. With no proxy frontend it
// returns an empty Set. On error, whatever was started is stopped again.
func Start(cfg *conf.Config, reg *metrics.Registry, log *slog.Logger) (*Set, error) {
	s := &Set{log: log, backends: map[string]*upstream.Backend{}}
	names := make([]string, 0, len(cfg.Frontends))
	for name, f := range cfg.Frontends {
		if f != nil && f.IsProxy() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return s, nil
	}
	for name, bc := range cfg.Backends {
		b, err := upstream.New(bc, reg, log)
		if err != nil {
			s.Shutdown(context.Background())
			return nil, err
		}
		s.backends[name] = b
	}
	for _, b := range s.backends {
		b.Start()
	}
	for _, name := range names {
		fc := cfg.Frontends[name]
		var fe frontend
		var err error
		if fc.Mode == "tcp" {
			fe, err = tcp.New(fc, s.backends, reg, log)
		} else {
			fe, err = httpproxy.New(fc, s.backends, reg, log)
		}
		if err == nil {
			err = fe.Start()
		}
		if err != nil {
			s.Shutdown(context.Background())
			return nil, err
		}
		s.frontends = append(s.frontends, fe)
		for _, a := range fe.Addrs() {
			log.Info("proxy listening", "frontend", name, "mode", fc.Mode, "bind", "tcp://"+a.String())
		}
	}
	return s, nil
}

// Addrs returns the bound addresses of a frontend (nil if unknown).
func (s *Set) Addrs(frontend string) []net.Addr {
	for _, f := range s.frontends {
		if f.Name() == frontend {
			return f.Addrs()
		}
	}
	return nil
}

// Shutdown stops every frontend at once (stop accepting, wait for open
// connections until ctx ends, then close them) and then the health
// checks. It returns an error naming the frontends that had to be forced.
func (s *Set) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.frontends))
	for i, f := range s.frontends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("proxy: frontend %s: connections still open at shutdown timeout were closed: %w", f.Name(), err)
			}
		}()
	}
	wg.Wait()
	for _, b := range s.backends {
		b.Close()
	}
	return errors.Join(errs...)
}

// Servers returns every backend's servers, by backend name then config
// order; nil for a nil Set.
func (s *Set) Servers() []*upstream.Server {
	if s == nil {
		return nil
	}
	names := make([]string, 0, len(s.backends))
	for n := range s.backends {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*upstream.Server
	for _, n := range names {
		out = append(out, s.backends[n].Servers()...)
	}
	return out
}

// Server returns the server called server of backend, for runtime
// control (SetState, SetWeight). The error names what is unknown and
// lists the names there are.
func (s *Set) Server(backend, server string) (*upstream.Server, error) {
	var b *upstream.Backend
	if s != nil {
		b = s.backends[backend]
	}
	if b == nil {
		var names []string
		if s != nil {
			for n := range s.backends {
				names = append(names, n)
			}
		}
		sort.Strings(names)
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
// traffic, so a drained server stays drained. (Reload does not rebuild
// proxy backends today; this is the hook for when it does.)
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
