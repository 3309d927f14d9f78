// Package front is what the tcp and http proxy frontends build alike from
// their config: the config with defaults applied, the allow/deny and
// trusted_proxies lists, the maxconn tokens, the counters every proxy
// frontend keeps, and backend lookup by name. Everything here is set up
// once by New and read-only afterwards (the token channel aside).
package front

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"wharf/acl"
	"wharf/conf"
	"wharf/internal/netfamily"
	"wharf/metrics"
	"wharf/proxy/upstream"
)

// Common is one proxy frontend's shared setup.
type Common struct {
	// Cfg is a copy of the frontend's config with unset values defaulted
	// (configs built in code skip conf.Load).
	Cfg     *conf.Frontend
	Access  acl.Access
	Trusted acl.Set
	// Sem holds one token per open client connection (maxconn).
	Sem chan struct{}
	// Sources caps the connections of one client address (maxconn_per_ip).
	Sources *SourceLimit
	// Labels are the frontend's metric labels.
	Labels []string
	// Accepted counts client connections accepted; the Rej counters count
	// those refused by the address lists, PROXY headers from untrusted
	// peers, and malformed PROXY headers.
	Accepted, RejACL, RejUntrusted, RejProxyHeader *metrics.Counter

	component string // error prefix, e.g. "proxy/tcp"
	reg       *metrics.Registry

	mu       sync.Mutex
	rejected map[string]*metrics.Counter // by reason, as Rejected made them
}

// Stats is a snapshot of a proxy frontend's counters (what its
// wharf_proxy_frontend_* and wharf_proxy_http_* series hold), for the
// status page. Fields a mode does not keep stay zero or nil.
type Stats struct {
	Frontend, Mode string
	// Connections counts client connections accepted; Active is open now
	// (tcp).
	Connections uint64
	Active      int64
	// BytesIn and BytesOut count bytes from and to clients; IdleClosed the
	// connections closed by a timeout (tcp).
	BytesIn, BytesOut, IdleClosed uint64
	// Rejected counts connections closed before forwarding, by reason.
	Rejected map[string]uint64
	// HTTPErrors counts requests the proxy answered itself, by kind;
	// HTTPRequests requests by backend ("" for unrouted) and status
	// class ("2xx") (http).
	HTTPErrors   map[string]uint64
	HTTPRequests map[[2]string]uint64
	// HTTP2Errors counts HTTP/2 streams and connections ended by a
	// limit or a protocol error, by reason (http with TLS).
	HTTP2Errors map[string]uint64
	// EventLoop counts, on an http frontend with engine = "event-loop",
	// requests its loops served and connections handed to goroutines
	// (by outcome: served, handoff, resume).
	EventLoop map[string]uint64
}

// Stats returns the counters every proxy frontend keeps: the name, mode,
// accepted connections and rejections by reason. The tcp and http
// frontends add theirs.
func (f *Common) Stats() Stats {
	st := Stats{Frontend: f.Cfg.Name, Mode: f.Cfg.Mode, Connections: f.Accepted.Load(), Rejected: map[string]uint64{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	for reason, c := range f.rejected {
		st.Rejected[reason] = c.Load()
	}
	return st
}

// New checks that cfg is a frontend of mode and builds its common parts;
// component prefixes error messages.
func New(component, mode string, cfg *conf.Frontend, reg *metrics.Registry) (*Common, error) {
	if cfg.Mode != mode {
		return nil, fmt.Errorf("%s: frontend %s has mode %q, want %s", component, cfg.Name, cfg.Mode, mode)
	}
	c := *cfg
	(&conf.Config{Frontends: map[string]*conf.Frontend{c.Name: &c}}).ApplyDefaults()
	f := &Common{Cfg: &c, Labels: []string{"frontend", c.Name}, component: component, reg: reg}
	var err error
	if f.Access.Allow, err = acl.Parse("frontend "+c.Name+" allow", c.Allow); err != nil {
		return nil, err
	}
	if f.Access.Deny, err = acl.Parse("frontend "+c.Name+" deny", c.Deny); err != nil {
		return nil, err
	}
	if f.Trusted, err = acl.Parse("frontend "+c.Name+" trusted_proxies", c.TrustedProxies); err != nil {
		return nil, err
	}
	if c.MaxConn <= 0 { // ApplyDefaults fills only 0; validation refuses < 0
		c.MaxConn = conf.DefaultProxyMaxConn
	}
	f.Sem = make(chan struct{}, c.MaxConn)
	if c.MaxConnPerIP <= 0 {
		c.MaxConnPerIP = conf.DefaultProxyMaxConnPerIP
	}
	f.Sources = &SourceLimit{max: c.MaxConnPerIP, trusted: f.Trusted, rejected: f.Rejected("maxconn_per_ip")}
	f.Accepted = reg.Counter("wharf_proxy_frontend_connections_total", "Client connections accepted.", f.Labels...)
	f.RejACL = f.Rejected("acl")
	f.RejUntrusted = f.Rejected("proxy_untrusted")
	f.RejProxyHeader = f.Rejected("proxy_header")
	return f, nil
}

// Rejected is the counter of client connections closed before forwarding
// for reason.
func (f *Common) Rejected(reason string) *metrics.Counter {
	c := f.reg.Counter("wharf_proxy_frontend_rejected_total", "Client connections closed before forwarding, by reason.", append(f.Labels, "reason", reason)...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rejected == nil {
		f.rejected = map[string]*metrics.Counter{}
	}
	f.rejected[reason] = c
	return c
}

// Backend returns the backend called name, or an error that says how to
// define it.
func (f *Common) Backend(backends map[string]*upstream.Backend, name string) (*upstream.Backend, error) {
	if b := backends[name]; b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("%s: frontend %s: backend %q is not defined; add [backend.%s]", f.component, f.Cfg.Name, name, name)
}

// SourceLimit applies maxconn_per_ip to a proxy frontend's client
// connections. Peers in trusted_proxies (a load balancer in front, whose
// connections carry many clients) are not counted.
type SourceLimit struct {
	perIP    acl.PerIP
	max      int
	trusted  acl.Set
	rejected *metrics.Counter
}

// Admit counts a new connection from the peer address a and reports
// whether it may stay; a refusal is counted (reason "maxconn_per_ip").
// Every true must be paired with one Leave for the same address.
func (s *SourceLimit) Admit(a netip.Addr) bool {
	if s.trusted.Contains(a) || s.perIP.Acquire(a, s.max) {
		return true
	}
	s.rejected.Inc()
	return false
}

// Leave counts a connection admitted from a gone.
func (s *SourceLimit) Leave(a netip.Addr) {
	if !s.trusted.Contains(a) {
		s.perIP.Release(a)
	}
}

// Open returns how many counted connections a's source holds.
func (s *SourceLimit) Open(a netip.Addr) int { return s.perIP.Open(a) }

// Listen opens a listening socket for each of cfg's binds, in order. On
// error the ones opened are closed; component prefixes the message.
func Listen(component string, cfg *conf.Frontend) ([]*net.TCPListener, error) {
	var lns []*net.TCPListener
	for _, b := range cfg.Binds {
		ln, err := ListenBind(component, cfg.Name, b.Addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// ListenBind opens the listening socket of one bind of frontend.
func ListenBind(component, frontend, addr string) (*net.TCPListener, error) {
	ln, err := net.Listen(netfamily.Network("tcp", addr), addr)
	if err != nil {
		return nil, fmt.Errorf("%s: frontend %s: cannot listen on tcp://%s: %w", component, frontend, addr, err)
	}
	return ln.(*net.TCPListener), nil
}

// ALongTimeAgo is a deadline that has passed: setting it fails pending
// I/O (a blocked Accept) at once without closing the socket.
var ALongTimeAgo = time.Unix(1, 0)
