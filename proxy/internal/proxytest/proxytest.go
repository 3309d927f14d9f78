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
