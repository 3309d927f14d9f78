// Package proxytest has the real peers the proxy tests talk to over
// loopback (TCP servers: echo, greeting, PROXY reporter), the frontend
// test rig (Run, OneServer) and helpers that wait for goroutines and
// metrics. TLS certificates come from internal/testpki.
package proxytest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wharf/conf"
	"wharf/metrics"
	"wharf/proxy/internal/front"
	"wharf/proxy/proxyproto"
	"wharf/proxy/upstream"
)

// Server is a TCP server on 127.0.0.1 that runs handle for every
// connection, until the test ends or Kill.
type Server struct {
	// Addr is host:port.
	Addr string
	// Accepted counts connections.
	Accepted atomic.Int64
	ln       net.Listener
	handle   func(net.Conn)
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// Listen starts a server on a free loopback port.
func Listen(t testing.TB, handle func(net.Conn)) *Server {
	t.Helper()
	return ListenAt(t, "127.0.0.1:0", handle)
}

// ListenAt starts a server on addr (e.g. to restart a killed one).
func ListenAt(t testing.TB, addr string, handle func(net.Conn)) *Server {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a killed server may linger briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, handle: handle, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.Accepted.Add(1)
		s.mu.Lock()
		if s.conns == nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(c)
		}()
	}
}

// Kill closes the listener and every open connection, like a crashed
// server. It is idempotent.
func (s *Server) Kill() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// Echo writes back what it reads, then half-closes on EOF.
func Echo(c net.Conn) {
	io.Copy(c, c)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// Greeter returns a handler that writes name and a newline, then echoes.
func Greeter(name string) func(net.Conn) {
	return func(c net.Conn) {
		io.WriteString(c, name+"\n")
		Echo(c)
	}
}

// ProxyReporter reads a PROXY header, writes back "SRC DST\n" ("LOCAL\n"
// for a LOCAL header, "ERR msg\n" for a bad one), then echoes the rest.
func ProxyReporter(c net.Conn) {
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			io.WriteString(c, "ERR "+err.Error()+"\n")
			return
		}
		buf = append(buf, b)
		h, n, err := proxyproto.Parse(buf)
		if errors.Is(err, proxyproto.ErrNeedMore) {
			continue
		}
		if err != nil {
			io.WriteString(c, "ERR "+err.Error()+"\n")
			return
		}
		_ = n
		if h.Local {
			io.WriteString(c, "LOCAL\n")
		} else {
			io.WriteString(c, h.Source.String()+" "+h.Dest.String()+" v"+string(rune('0'+h.Version))+"\n")
		}
		break
	}
	c.SetReadDeadline(time.Time{})
	io.Copy(c, br)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// SettleGoroutines waits up to 5s for the goroutine count to fall to at
// most base+slack and fails the test with a dump if it does not.
func SettleGoroutines(t testing.TB, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines did not settle: %d now, %d before\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Lines joins lines with "\n" and a final newline.
func Lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// Metric returns the value of the series name with the given label pairs
// (a subset match), summed over matching series.
func Metric(reg *metrics.Registry, name string, labels ...string) float64 {
	var sum float64
	reg.Each(func(s metrics.Sample) {
		if s.Name != name {
			return
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.Label(labels[i]) != labels[i+1] {
				return
			}
		}
		sum += s.Value
	})
	return sum
}

// Frontend is what Run needs of a proxy frontend (tcp or http mode).
type Frontend interface {
	Start() error
	Shutdown(context.Context) error
}

// Run parses a test config, starts every backend in it, builds frontend
// "f" with newF (the package's New) and starts it; frontend and backends
// are shut down when the test ends. It returns the frontend, the registry
// both report to and the backends by name. Logs go to stderr at debug
// level under -v, nowhere otherwise.
func Run[F Frontend](t testing.TB, toml string, newF func(*conf.Frontend, map[string]*upstream.Backend, *metrics.Registry, *slog.Logger) (F, error)) (F, *metrics.Registry, map[string]*upstream.Backend) {
	t.Helper()
	cfg, err := conf.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", toml, err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := metrics.NewRegistry()
	bs := map[string]*upstream.Backend{}
	for name, bc := range cfg.Backends {
		b, err := upstream.New(bc, reg, log)
		if err != nil {
			t.Fatal(err)
		}
		b.Start()
		t.Cleanup(b.Close)
		bs[name] = b
	}
	f, err := newF(cfg.Frontends["f"], bs, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		f.Shutdown(ctx)
	})
	return f, reg, bs
}

// OneServer is the config of frontend "f" in mode ("tcp" or "http")
// whose default backend "b" is the one server at addr, without health
// checks: what most proxy tests need.
func OneServer(mode, addr string) string {
	return fmt.Sprintf(`
[frontend.f]
mode = %q
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, mode, addr)
}

// CheckStats checks that a frontend's typed stats and its backends'
// servers' hold what the registry's series hold (the status page reads
// the former, /metrics the latter): every series of the frontend and of
// the servers has its field, and every field its series.
func CheckStats(t testing.TB, reg *metrics.Registry, st front.Stats, backends map[string]*upstream.Backend) {
	t.Helper()
	want := map[string]float64{} // "name{k=v,...}" -> value, from the registry
	reg.Each(func(s metrics.Sample) {
		if s.Label("frontend") != st.Frontend && s.Label("server") == "" {
			return
		}
		if s.Name == "wharf_proxy_server_check_seconds" {
			return // a gauge of the last check's duration, compared below
		}
		want[s.Name+"{"+strings.Join(s.Labels, ",")+"}"] = s.Value
	})
	got := map[string]float64{}
	fl := "frontend," + st.Frontend
	got["wharf_proxy_frontend_connections_total{"+fl+"}"] = float64(st.Connections)
	for r, v := range st.Rejected {
		got["wharf_proxy_frontend_rejected_total{"+fl+",reason,"+r+"}"] = float64(v)
	}
	if st.Mode == "tcp" {
		got["wharf_proxy_frontend_active{"+fl+"}"] = float64(st.Active)
		got["wharf_proxy_frontend_bytes_in_total{"+fl+"}"] = float64(st.BytesIn)
		got["wharf_proxy_frontend_bytes_out_total{"+fl+"}"] = float64(st.BytesOut)
		got["wharf_proxy_frontend_idle_closed_total{"+fl+"}"] = float64(st.IdleClosed)
	}
	for k, v := range st.HTTP2Errors {
		got["wharf_proxy_http2_errors_total{"+fl+",reason,"+k+"}"] = float64(v)
	}
	for k, v := range st.EventLoop {
		got["wharf_proxy_http_event_loop_total{"+fl+",outcome,"+k+"}"] = float64(v)
	}
	for k, v := range st.HTTPErrors {
		got["wharf_proxy_http_errors_total{"+fl+",kind,"+k+"}"] = float64(v)
	}
	for k, v := range st.HTTPRequests {
		got["wharf_proxy_http_requests_total{"+fl+",backend,"+k[0]+",code,"+k[1]+"}"] = float64(v)
	}
	for _, b := range backends {
		for _, s := range b.Servers() {
			ss := s.Stats()
			l := "backend," + ss.Backend + ",server," + ss.Server
			up := 0.0
			if ss.Up {
				up = 1
			}
			got["wharf_proxy_server_up{"+l+"}"] = up
			got["wharf_proxy_server_active{"+l+"}"] = float64(ss.Active)
			got["wharf_proxy_server_connections_total{"+l+"}"] = float64(ss.Connections)
			got["wharf_proxy_server_connect_errors_total{"+l+"}"] = float64(ss.ConnectErrors)
			got["wharf_proxy_server_bytes_sent_total{"+l+"}"] = float64(ss.BytesSent)
			got["wharf_proxy_server_bytes_received_total{"+l+"}"] = float64(ss.BytesReceived)
			got["wharf_proxy_server_checks_total{"+l+",result,ok}"] = float64(ss.ChecksOK)
			got["wharf_proxy_server_checks_total{"+l+",result,fail}"] = float64(ss.ChecksFailed)
			got["wharf_proxy_server_transitions_total{"+l+",to,up}"] = float64(ss.WentUp)
			got["wharf_proxy_server_transitions_total{"+l+",to,down}"] = float64(ss.WentDown)
			got["wharf_proxy_server_weight{"+l+"}"] = float64(ss.Weight)
			for _, st := range []string{"ready", "drain", "maint"} {
				v := 0.0
				if ss.AdminState == st {
					v = 1
				}
				got["wharf_proxy_server_admin_state{"+l+",state,"+st+"}"] = v
			}
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("series %s = %v; typed stats: %v (present %v)", k, v, g, ok)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("typed stats have %s = %v, the registry has no such series", k, v)
		}
	}
}
