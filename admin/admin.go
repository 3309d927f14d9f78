// Package admin serves wharf's admin HTTP listener: Prometheus metrics,
// liveness and readiness. It knows nothing about ingest or sinks; the
// binary hands it a metrics registry and a readiness function.
//
// With a bearer token set (RequireToken), every endpoint except the
// read-only ones (/, /ui/, /api/status, /metrics, /healthz, /readyz) needs
// "Authorization: Bearer TOKEN": POST /reload, /api/tap, /debug/pprof and
// anything registered later. Protection is by default, so an endpoint
// added without thinking about it is not left open.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"wharf/metrics"
)

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
	token func() (string, error) // nil: no token required
}

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
	s := &Server{reg: reg, ready: ready, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /metrics", s.metrics)
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w (set [admin] listen to a free address, or \"off\")", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.guard(s.mux), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	return nil
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

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.reg.WritePrometheus(w); err != nil {
		s.log.Debug("metrics write", "err", err)
	}
}

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
