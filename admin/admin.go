// Package admin serves wharf's admin HTTP listener: Prometheus metrics,
// liveness and readiness. It knows nothing about ingest or sinks; the
// binary hands it a metrics registry and a readiness function.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
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
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
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
