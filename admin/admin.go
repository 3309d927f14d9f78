// Package admin serves wharf's admin HTTP listener: Prometheus metrics,
// liveness and readiness. It knows nothing about ingest or sinks; the
// binary hands it a metrics registry and a readiness function.
//
// With a bearer token set (RequireToken), every endpoint except the
// read-only ones (/, /ui/, /api/status, /metrics, /healthz, /readyz) needs
// "Authorization: Bearer TOKEN": POST /reload, /api/tap, /debug/pprof and
// anything registered later. Protection is by default, so an endpoint
// added without thinking about it is not left open.
//
// With or without a token, requests must name this listener in Host (a
// loopback address, localhost, the listen address, or a name given to
// AllowHosts; else 421), and a non-safe request a browser marks as
// cross-origin is refused (403). Together they keep web pages out: a page
// cannot POST /reload, and one that rebinds its own name to 127.0.0.1
// cannot read /api/tap. curl and scripts send no Origin and pass.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wharf/internal/netfamily"
	"wharf/metrics"
)

// adminIdleTimeout is how long a keep-alive connection may sit idle
// between requests: scrapers and curl reconnect at no cost, and a local
// process can no longer hold descriptors and goroutines for ever by
// opening connections and leaving them (net/http keeps them without
// limit when IdleTimeout and ReadTimeout are 0).
const adminIdleTimeout = time.Minute

// adminBodyTimeout bounds reading a request's body, unread bodies
// included (net/http discards up to 256 KiB of one after the handler,
// with no deadline of its own): a client that announced a body and sent
// less held its connection, one of adminMaxConns, for as long as it
// liked, and 256 of them locked everyone out of /healthz, /metrics and
// /reload.
const adminBodyTimeout = 10 * time.Second

// adminMaxHeaderBytes bounds one request's header, as the proxy's
// max_header_bytes default does (conf.DefaultMaxHeaderBytes): room for
// a browser's localhost cookies, where net/http's 1 MiB default let
// 1,000 connections pin a gigabyte until ReadHeaderTimeout.
const adminMaxHeaderBytes = 64 << 10

// adminMaxScrapesInFlight bounds concurrent /metrics requests, each of
// which gathers every series into memory; one more gets 503 at once.
// Prometheus servers scrape one at a time each.
const adminMaxScrapesInFlight = 16

// adminMaxConns bounds the admin listener's open connections: a few
// scrapers, curl, the status page and at most 8 taps need a handful, and
// 256 descriptors are a small part of what ingest has (LimitNOFILE 65536
// in deploy/wharf.service). One more is closed at once (connlimit.go).
const adminMaxConns = 256

// Readiness reports whether wharf is ready for traffic, and if not, why
// (one line per problem, e.g. `sink "kafka": not ready: broker unreachable`).
type Readiness func() (ready bool, problems []string)

// Server is the admin listener.
type Server struct {
	reg   *metrics.Registry
	ready Readiness
	log   *slog.Logger
	mux   *http.ServeMux
	srv   *http.Server
	ln    net.Listener
	token func() (string, error)   // nil: no token required
	hosts atomic.Pointer[[]string] // allowed_hosts, lower case: SetAllowedHosts
	// listenName is the listen address's host when it is a name (Start).
	listenName string
	tls        *tls.Config // UseTLS: HTTPS only
	// idleTimeout closes a keep-alive connection idle between requests
	// (adminIdleTimeout; tests shorten it).
	idleTimeout time.Duration
	// bodyTimeout bounds reading a request's body (adminBodyTimeout;
	// tests shorten it).
	bodyTimeout time.Duration
	// maxConns bounds open connections (adminMaxConns; tests lower it);
	// conns counts them, refused those closed at the bound (connlimit.go).
	maxConns int
	conns    *metrics.Gauge
	refused  *metrics.Counter

	// Set by Start from the listen address, for hostAllowed.
	listenIP  netip.Addr // invalid when listening on a name
	listenAny bool       // a wildcard address: any IP literal names it
}

// AllowHosts adds names (besides loopback addresses, localhost and the
// listen address) that requests may carry in Host: the name the listener
// is reached by through DNS or a reverse proxy. Call before Start.
func (s *Server) AllowHosts(names ...string) { s.SetAllowedHosts(names) }

// SetAllowedHosts replaces the names given by AllowHosts (a reload's
// [admin] allowed_hosts); requests after it are checked against them.
// Safe to call while serving.
func (s *Server) SetAllowedHosts(names []string) {
	hs := make([]string, 0, len(names))
	for _, n := range names {
		hs = append(hs, normHost(n))
	}
	s.hosts.Store(&hs)
}

func normHost(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") }

// hostAllowed reports whether a request's Host names this listener. An
// IP literal can never be DNS-rebound, so with a wildcard listen address
// every IP literal is accepted; a name must be localhost, the listen
// name or one given to AllowHosts. A request without Host (HTTP/1.0
// health checkers) does not come from a browser and is accepted.
func (s *Server) hostAllowed(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.WithZone("").Unmap()
		return a.IsLoopback() || s.listenAny || a == s.listenIP
	}
	if host == "localhost" || (s.listenName != "" && host == s.listenName) {
		return true
	}
	hs := s.hosts.Load()
	return hs != nil && slices.Contains(*hs, host)
}

// browserGuard refuses, before anything else, requests that name another
// host (421) and non-safe cross-origin browser requests (403; Go's
// CrossOriginProtection: Sec-Fetch-Site, else Origin against Host).
func (s *Server) browserGuard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("admin: refused a cross-origin browser request", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "peer", r.RemoteAddr)
		http.Error(w, "403 forbidden: cross-origin request refused; the admin API takes no requests from web pages of other origins", http.StatusForbidden)
	}))
	h := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			s.log.Warn("admin: refused a request for another host", "host", r.Host, "path", r.URL.Path, "peer", r.RemoteAddr)
			http.Error(w, "421 misdirected request: Host "+r.Host+" is not a name of this admin listener; use 127.0.0.1 or localhost, or add the name to [admin] allowed_hosts", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// UseTLS makes the listener serve HTTPS only, with cfg (which should get
// its certificate through GetCertificate, so a reload can swap it). Call
// before Start.
func (s *Server) UseTLS(cfg *tls.Config) { s.tls = cfg }

// RequireToken makes the write endpoints require a bearer token. token is
// asked on every request to a protected endpoint, so a reloaded config
// (or a rewritten token file) applies at once; "" means no token is
// required; an error refuses the request (fail closed). Call before Start.
func (s *Server) RequireToken(token func() (string, error)) { s.token = token }

// openPath reports whether a GET/HEAD of path is read-only and open
// without a token.
func openPath(path string) bool {
	switch path {
	case "/", "/api/status", "/metrics", "/healthz", "/readyz":
		return true
	}
	return strings.HasPrefix(path, "/ui/")
}

// guard checks the bearer token before next for every request that is
// not a read of an open path.
func (s *Server) guard(next http.Handler) http.Handler {
	if s.token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && openPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		want, err := s.token()
		if err != nil {
			s.log.Error("admin: token unavailable; refusing a protected request", "path", r.URL.Path, "err", err)
			http.Error(w, "admin token unavailable on the server: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if want != "" && !tokenMatches(r.Header.Get("Authorization"), want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wharf admin"`)
			http.Error(w, "401 unauthorized: this endpoint needs Authorization: Bearer TOKEN ([admin] token or token_file)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenMatches compares "Bearer TOKEN" with want in constant time (hashes
// of equal length, so not even the token's length leaks).
func tokenMatches(header, want string) bool {
	const prefix = "bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(header[len(prefix):])))
	exp := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}

// New returns an admin server; Handle adds more endpoints before Start.
func New(reg *metrics.Registry, ready Readiness, log *slog.Logger) *Server {
	s := &Server{reg: reg, ready: ready, log: log, mux: http.NewServeMux(), idleTimeout: adminIdleTimeout, bodyTimeout: adminBodyTimeout, maxConns: adminMaxConns}
	s.conns = reg.Gauge("wharf_admin_connections", "Open connections to the admin listener (at most 256; more are closed at once).")
	s.refused = reg.Counter("wharf_admin_rejected_total", "Connections to the admin listener closed at once, by reason (maxconn: it held 256 already).", "reason", "maxconn")
	// promhttp gathers everything into memory first and writes after,
	// so a slow scraper holds no lock; a series that fails the library's
	// checks is logged and left out, the rest still served.
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg.Gatherer(), promhttp.HandlerOpts{
		ErrorLog:            errorLog{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: adminMaxScrapesInFlight,
	}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	// Go's profiler, for "why is it slow" on a live relay. The admin
	// listener is loopback by default; profiles reveal no message data.
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return s
}

// Handle registers an extra endpoint (pattern as for http.ServeMux).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Start listens on addr and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen(netfamily.Network("tcp", addr), addr)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w (set [admin] listen to a free address, or \"off\")", addr, err)
	}
	// The bound applies to the TCP connection, before a TLS handshake.
	ln = s.limitConns(ln)
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			s.listenIP, s.listenAny = a.Unmap(), a.IsUnspecified()
		} else {
			s.listenName = normHost(host)
		}
	}
	s.srv = &http.Server{
		Handler:           s.bodyDeadline(s.browserGuard(s.guard(s.mux))),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		// A client that speaks plain HTTP to the HTTPS listener, or fails
		// its handshake, is logged at debug level only: port scanners.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	return nil
}

// bodyDeadline gives a request with a body bodyTimeout to send it (see
// adminBodyTimeout). Requests without one (GET, the tap's long stream)
// keep no read deadline: net/http's own read for a closed client must not
// end a stream.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stop shuts the listener down, letting requests in flight finish until ctx ends.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// errorLog hands promhttp's errors (a series that failed the library's
// checks, a scraper gone mid-write) to the log.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Println(v ...any) { e.log.Warn("admin: /metrics: " + fmt.Sprint(v...)) }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, problems := s.ready()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}
