package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/internal/testpki"
	"wharf/metrics"
	"wharf/proxy/internal/proxytest"
	"wharf/proxy/proxyproto"
	"wharf/proxy/upstream"
)

// rig is a running tcp frontend with its backends.
type rig struct {
	f   *Frontend
	reg *metrics.Registry
	bs  map[string]*upstream.Backend
}

func (r *rig) addr() string { return r.f.Addrs()[0].String() }

func (r *rig) metric(name string, labels ...string) float64 {
	return proxytest.Metric(r.reg, name, labels...)
}

// start parses a config (frontend "f" plus backends) and runs it until
// the test ends.
func start(t testing.TB, toml string) *rig {
	t.Helper()
	f, reg, bs := proxytest.Run(t, toml, New)
	return &rig{f: f, reg: reg, bs: bs}
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// greeting reads the first line a Greeter server sends through the proxy.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestEchoHalfCloseAndBytes(t *testing.T) {
	echo := proxytest.Listen(t, proxytest.Echo)
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
[[backend.b.server]]
address = %q
`, echo.Addr))
	c := dial(t, r.addr())
	payload := strings.Repeat("0123456789abcdef", 64<<10) // 1MiB, enough for splice to loop
	go func() {
		io.WriteString(c, payload)
		c.CloseWrite() // the FIN must reach the echo server, which then ends
	}()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != payload {
		t.Fatalf("echo: %d bytes, %v; want %d bytes back then EOF", len(got), err, len(payload))
	}
	testenv.EventuallyWithin(t, 2*time.Second, "byte counters", func() bool {
		return r.metric("wharf_proxy_frontend_bytes_in_total") == float64(len(payload)) &&
			r.metric("wharf_proxy_frontend_bytes_out_total") == float64(len(payload)) &&
			r.metric("wharf_proxy_server_bytes_sent_total", "server", echo.Addr) == float64(len(payload))
	})
	if n := r.metric("wharf_proxy_frontend_connections_total"); n != 1 {
		t.Errorf("connections_total = %v, want 1", n)
	}
	if st := r.f.Stats(); st.BytesIn != uint64(len(payload)) || st.Connections != 1 {
		t.Errorf("stats %+v", st)
	}
	proxytest.CheckStats(t, r.reg, r.f.Stats(), r.bs)
}

func TestBalance(t *testing.T) {
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	b := proxytest.Listen(t, proxytest.Greeter("b"))
	c := proxytest.Listen(t, proxytest.Greeter("c"))
	cfg := func(balance string) string {
		return fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
balance = %q
check = "none"
[[backend.b.server]]
address = %q
[[backend.b.server]]
address = %q
weight = 2
[[backend.b.server]]
address = %q
`, balance, a.Addr, b.Addr, c.Addr)
	}
	t.Run("roundrobin weighted", func(t *testing.T) {
		r := start(t, cfg("roundrobin"))
		var seq []string
		for range 8 {
			seq = append(seq, greeting(t, r.addr()))
		}
		count := map[string]int{}
		for _, s := range seq {
			count[s]++
		}
		if count["a"] != 2 || count["b"] != 4 || count["c"] != 2 {
			t.Errorf("8 connections went %v (%v), want a:2 b:4 c:2", count, seq)
		}
		// Smooth: the heavy server never gets three in a row.
		if strings.Contains(strings.Join(seq, ""), "bbb") {
			t.Errorf("not interleaved: %v", seq)
		}
	})
	t.Run("source sticks", func(t *testing.T) {
		r := start(t, cfg("source"))
		first := greeting(t, r.addr())
		for range 5 {
			if g := greeting(t, r.addr()); g != first {
				t.Fatalf("source balance moved 127.0.0.1 from %s to %s", first, g)
			}
		}
	})
	t.Run("leastconn", func(t *testing.T) {
		r := start(t, cfg("leastconn"))
		// Hold four connections: by connections per weight they spread
		// a:1 b:2 c:1.
		count := map[string]int{}
		for range 4 {
			c := dial(t, r.addr())
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			count[strings.TrimSpace(line)]++
		}
		if count["a"] != 1 || count["b"] != 2 || count["c"] != 1 {
			t.Errorf("4 held connections went %v, want a:1 b:2 c:1", count)
		}
	})
}

func TestFailoverAndHealth(t *testing.T) {
	base := runtime.NumGoroutine()
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	b := proxytest.Listen(t, proxytest.Greeter("b"))
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check_interval = "30ms"
check_timeout = "200ms"
rise = 3
fall = 2
[[backend.b.server]]
name = "a"
address = %q
[[backend.b.server]]
name = "b"
address = %q
`, a.Addr, b.Addr))
	up := func(s string) float64 { return r.metric("wharf_proxy_server_up", "server", s) }
	if up("a") != 1 || up("b") != 1 {
		t.Fatal("servers do not start up")
	}
	a.Kill()
	// Until the checks notice, connections that pick a fail over to b.
	for range 6 {
		if g := greeting(t, r.addr()); g != "b" {
			t.Fatalf("after killing a, got %q, want b", g)
		}
	}
	testenv.EventuallyWithin(t, 3*time.Second, "a marked down", func() bool { return up("a") == 0 })
	if n := r.metric("wharf_proxy_server_transitions_total", "server", "a", "to", "down"); n != 1 {
		t.Errorf("a went down %v times, want 1", n)
	}
	// Passive (failed connects) or active checks, whichever came first.
	if errs := r.metric("wharf_proxy_server_connect_errors_total", "server", "a") + r.metric("wharf_proxy_server_checks_total", "server", "a", "result", "fail"); errs < 2 {
		t.Errorf("a marked down after %v failures, want fall = 2", errs)
	}
	// Restart a on its port: after rise=3 good checks it takes traffic.
	a2 := proxytest.ListenAt(t, a.Addr, proxytest.Greeter("a"))
	testenv.EventuallyWithin(t, 3*time.Second, "a back up", func() bool { return up("a") == 1 })
	if ok := r.metric("wharf_proxy_server_checks_total", "server", "a", "result", "ok"); ok < 3 {
		t.Errorf("a came back after %v passed checks, want >= rise 3", ok)
	}
	seen := map[string]bool{}
	for range 4 {
		seen[greeting(t, r.addr())] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("after recovery traffic went to %v, want both", seen)
	}
	if r.metric("wharf_proxy_server_check_seconds", "server", "b") <= 0 {
		t.Error("check latency not recorded")
	}
	// Everything down: clients are closed at once and counted.
	a2.Kill()
	b.Kill()
	testenv.EventuallyWithin(t, 3*time.Second, "both down", func() bool { return up("a") == 0 && up("b") == 0 })
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", r.addr(), 2*time.Second)
	n := 0
	if err == nil { // else reset before connect returned: closed at once too
		c.SetDeadline(time.Now().Add(5 * time.Second))
		n, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if n != 0 || err == nil || time.Since(t0) > time.Second {
		t.Errorf("all servers down: read %d, %v after %s; want the connection closed at once", n, err, time.Since(t0))
	}
	testenv.EventuallyWithin(t, time.Second, "no_server counted", func() bool {
		return r.metric("wharf_proxy_frontend_rejected_total", "reason", "no_server") == 1 &&
			r.metric("wharf_proxy_backend_no_server_total", "backend", "b") == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.bs["b"].Close()
	proxytest.SettleGoroutines(t, base, 2)
}

func TestPassiveMarkDown(t *testing.T) {
	// With check none, failed connects alone take a server out, and it
	// is retried after check_interval.
	b := proxytest.Listen(t, proxytest.Greeter("b"))
	dead := proxytest.Listen(t, proxytest.Echo)
	dead.Kill()
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
fall = 2
check_interval = "300ms"
[[backend.b.server]]
name = "dead"
address = %q
[[backend.b.server]]
name = "b"
address = %q
`, dead.Addr, b.Addr))
	for range 6 {
		if g := greeting(t, r.addr()); g != "b" {
			t.Fatalf("got %q, want b", g)
		}
	}
	if errs := r.metric("wharf_proxy_server_connect_errors_total", "server", "dead"); errs != 2 {
		t.Errorf("connect errors on dead = %v, want 2 (fall), then no more tries", errs)
	}
	if r.metric("wharf_proxy_server_up", "server", "dead") != 0 {
		t.Error("dead server not marked down passively")
	}
	testenv.EventuallyWithin(t, 2*time.Second, "dead retried", func() bool {
		return r.metric("wharf_proxy_server_up", "server", "dead") == 1
	})
}

func TestACL(t *testing.T) {
	echo := proxytest.Listen(t, proxytest.Echo)
	f := func(allow, deny string, wantOpen bool) {
		t.Helper()
		r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
allow = [%s]
deny = [%s]
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, allow, deny, echo.Addr))
		// A refused connection may already fail in connect: the reset can
		// beat the dialer's check of the socket on loopback.
		var n int
		c, err := net.DialTimeout("tcp", r.addr(), 2*time.Second)
		if err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "x")
			n, err = c.Read(make([]byte, 1))
		}
		if open := n == 1 && err == nil; open != wantOpen {
			t.Errorf("allow [%s] deny [%s]: read %d, %v; want open=%v", allow, deny, n, err, wantOpen)
		}
		want := 1.0
		if wantOpen {
			want = 0
		}
		testenv.EventuallyWithin(t, time.Second, "acl counter", func() bool {
			return r.metric("wharf_proxy_frontend_rejected_total", "reason", "acl") == want
		})
	}
	f(`"127.0.0.0/8"`, ``, true)
	f(`"10.0.0.0/8"`, ``, false)
	f(``, `"127.0.0.1"`, false)
	f(`"127.0.0.0/8"`, `"127.0.0.0/24"`, false)
	if n := echo.Accepted.Load(); n != 1 {
		t.Errorf("server saw %d connections, want only the allowed one", n)
	}
}

func TestProxyProtocol(t *testing.T) {
	rep := proxytest.Listen(t, proxytest.ProxyReporter)
	cfg := func(trusted, sendProxy string) string {
		return fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
accept_proxy = true
trusted_proxies = [%q]
header_timeout = "300ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
send_proxy = %q
`, trusted, rep.Addr, sendProxy)
	}
	// A trusted sender's v1 header reaches the server as v2 with the
	// same addresses; the payload after the header arrives intact, even
	// in the same segment.
	r := start(t, cfg("127.0.0.0/8", "v2"))
	c := dial(t, r.addr())
	io.WriteString(c, "PROXY TCP4 192.0.2.10 198.51.100.20 40000 443\r\nhello")
	c.CloseWrite()
	got, _ := io.ReadAll(c)
	if want := "192.0.2.10:40000 198.51.100.20:443 v2\nhello"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// v2 in, v1 out.
	r = start(t, cfg("127.0.0.0/8", "v1"))
	c = dial(t, r.addr())
	hdr := proxyproto.AppendV2(nil, netipAP("[2001:db8::1]:5000"), netipAP("[2001:db8::2]:80"))
	c.Write(append(hdr, "x"...))
	c.CloseWrite()
	got, _ = io.ReadAll(c)
	if want := "[2001:db8::1]:5000 [2001:db8::2]:80 v1\nx"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}

	f := func(name, cfgText, send, reason string) {
		t.Helper()
		r := start(t, cfgText)
		t0 := time.Now()
		var got []byte
		if c, err := net.DialTimeout("tcp", r.addr(), 2*time.Second); err == nil { // may be reset already
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, send)
			got, _ = io.ReadAll(c)
		}
		if len(got) != 0 {
			t.Errorf("%s: server answered %q, want the connection closed", name, got)
		}
		if time.Since(t0) > 2*time.Second {
			t.Errorf("%s: took %s to close", name, time.Since(t0))
		}
		testenv.EventuallyWithin(t, time.Second, name+" counted as "+reason, func() bool {
			return r.metric("wharf_proxy_frontend_rejected_total", "reason", reason) == 1
		})
	}
	before := rep.Accepted.Load()
	f("untrusted sender", cfg("10.0.0.0/8", ""), "PROXY TCP4 192.0.2.10 198.51.100.20 40000 443\r\n", "proxy_untrusted")
	f("garbage header", cfg("127.0.0.0/8", ""), "GET / HTTP/1.0\r\n\r\n", "proxy_header")
	f("bad v1 family", cfg("127.0.0.0/8", ""), "PROXY TCP9 1 2 3 4\r\n", "proxy_header")
	f("v1 too long", cfg("127.0.0.0/8", ""), "PROXY TCP4 "+strings.Repeat("1", 200), "proxy_header")
	f("slow header", cfg("127.0.0.0/8", ""), "PROXY TCP4 192.0.2.10", "header_timeout")
	if n := rep.Accepted.Load(); n != before {
		t.Errorf("server got %d connections from refused clients", n-before)
	}
}

func TestSNIRouting(t *testing.T) {
	tlsServer := func(name string, names ...string) (*proxytest.Server, *tls.Config) {
		ca := testpki.NewCA(t, "test CA")
		cert, _, _ := ca.ServerCert(t, names...)
		pool := ca.Pool()
		srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		s := proxytest.Listen(t, func(c net.Conn) {
			tc := tls.Server(c, srvCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			io.WriteString(tc, name+" "+tc.ConnectionState().ServerName+"\n")
			io.Copy(tc, tc)
		})
		return s, &tls.Config{RootCAs: pool}
	}
	exact, exactCli := tlsServer("exact", "db.example.com")
	wild, wildCli := tlsServer("wild", "*.apps.example.com")
	def, defCli := tlsServer("default", "fallback.example.net", "plain.example.org")
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
sni_routing = true
backend = "def"
[[frontend.f.use]]
sni = "db.example.com"
backend = "exact"
[[frontend.f.use]]
sni = "*.apps.example.com"
backend = "wild"
[backend.exact]
check = "none"
[[backend.exact.server]]
address = %q
[backend.wild]
check = "none"
[[backend.wild.server]]
address = %q
[backend.def]
check = "none"
[[backend.def.server]]
address = %q
`, exact.Addr, wild.Addr, def.Addr))
	f := func(serverName string, cli *tls.Config, want string) {
		t.Helper()
		cfg := cli.Clone()
		cfg.ServerName = serverName
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", r.addr(), cfg)
		if err != nil {
			t.Errorf("%s: TLS through the proxy: %v", serverName, err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if got := strings.TrimSpace(line); err != nil || got != want+" "+serverName {
			t.Errorf("%s: got %q, %v; want %q", serverName, got, err, want+" "+serverName)
		}
		io.WriteString(c, "ping\n")
		if echo, _ := br.ReadString('\n'); echo != "ping\n" {
			t.Errorf("%s: echo %q", serverName, echo)
		}
	}
	f("db.example.com", exactCli, "exact")
	f("DB.Example.COM", exactCli, "exact")
	f("x.apps.example.com", wildCli, "wild")
	f("fallback.example.net", defCli, "default")
	// Not TLS at all: the default backend gets the bytes unchanged (and
	// the TLS server there rejects them).
	c := dial(t, r.addr())
	io.WriteString(c, "hello\n")
	c.Read(make([]byte, 64))
	if n := def.Accepted.Load(); n != 2 {
		t.Errorf("default backend saw %d connections, want 2", n)
	}
}

func TestTimeoutsAndNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	echo := proxytest.Listen(t, proxytest.Echo)
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
client_timeout = "200ms"
[backend.b]
check = "none"
server_timeout = "200ms"
[[backend.b.server]]
address = %q
`, echo.Addr))
	// An active connection outlives the timeout: traffic every 100ms for
	// 600ms.
	c := dial(t, r.addr())
	buf := make([]byte, 1)
	for range 6 {
		time.Sleep(100 * time.Millisecond)
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("active connection cut: %v", err)
		}
	}
	// Then it goes quiet and is closed within timeout + a window.
	t0 := time.Now()
	_, err := c.Read(buf)
	if el := time.Since(t0); err == nil || el < 150*time.Millisecond || el > time.Second {
		t.Errorf("idle connection: %v after %s, want closed after ~200-250ms", err, el)
	}
	// Several slow clients that never send anything.
	for range 20 {
		dial(t, r.addr())
	}
	// Wait for the count, not only for active == 0: on a loaded machine
	// active can read 0 before the 20 connections are even accepted.
	testenv.EventuallyWithin(t, 5*time.Second, "idle connections closed", func() bool {
		return r.metric("wharf_proxy_frontend_idle_closed_total") >= 21 && r.metric("wharf_proxy_frontend_active") == 0
	})
	if n := r.metric("wharf_proxy_frontend_idle_closed_total"); n != 21 {
		t.Errorf("idle_closed_total = %v, want 21", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.bs["b"].Close()
	echo.Kill()
	proxytest.SettleGoroutines(t, base, 2)
}

func TestMaxConn(t *testing.T) {
	g := proxytest.Listen(t, proxytest.Greeter("g"))
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
maxconn = 1
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, g.Addr))
	first := dial(t, r.addr())
	br := bufio.NewReader(first)
	if l, _ := br.ReadString('\n'); l != "g\n" {
		t.Fatalf("first: %q", l)
	}
	second := dial(t, r.addr()) // sits in the accept queue
	second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := second.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection served beyond maxconn 1: %v", err)
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(2 * time.Second))
	if l, err := bufio.NewReader(second).ReadString('\n'); l != "g\n" {
		t.Fatalf("second after first closed: %q, %v", l, err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	echo := proxytest.Listen(t, proxytest.Echo)
	r := start(t, proxytest.OneServer("tcp", echo.Addr))
	c := dial(t, r.addr())
	c.Write([]byte("a"))
	io.ReadFull(c, make([]byte, 1))
	addr := r.addr()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done <- r.f.Shutdown(ctx)
	}()
	// New connections are refused, the open one still works.
	testenv.EventuallyWithin(t, time.Second, "listener closed", func() bool {
		c2, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	c.Write([]byte("b"))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("open connection broken by shutdown: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.CloseWrite()
	io.ReadAll(c)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown after the connection ended: %v", err)
	}

	// A connection that does not end is closed at the deadline.
	r = start(t, proxytest.OneServer("tcp", echo.Addr))
	c = dial(t, r.addr())
	c.Write([]byte("a"))
	io.ReadFull(c, make([]byte, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.f.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("forced Shutdown = %v, want DeadlineExceeded", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after forced shutdown")
	}
}

func netipAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestSNIBehindProxyProtocol(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	cert, _, _ := ca.ServerCert(t, "a.example.com")
	pool := ca.Pool()
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	s := proxytest.Listen(t, func(c net.Conn) {
		// This server wants PROXY too, then TLS.
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tc := tls.Server(&prefixConn{Conn: c, r: br}, srvCfg)
		if tc.Handshake() != nil {
			return
		}
		io.WriteString(tc, strings.TrimSpace(line)+"\n")
	})
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
accept_proxy = true
trusted_proxies = ["127.0.0.1"]
sni_routing = true
[[frontend.f.use]]
sni = "a.example.com"
backend = "a"
[backend.a]
check = "none"
[[backend.a.server]]
address = %q
send_proxy = "v1"
`, s.Addr))
	raw := dial(t, r.addr())
	io.WriteString(raw, "PROXY TCP4 192.0.2.5 198.51.100.6 1234 443\r\n")
	tc := tls.Client(raw, &tls.Config{ServerName: "a.example.com", RootCAs: pool})
	line, err := bufio.NewReader(tc).ReadString('\n')
	if want := "PROXY TCP4 192.0.2.5 198.51.100.6 1234 443\n"; err != nil || line != want {
		t.Errorf("got %q, %v; want %q", line, err, want)
	}
	// An unknown name with no default backend is refused and counted.
	raw = dial(t, r.addr())
	io.WriteString(raw, "PROXY TCP4 192.0.2.5 198.51.100.6 1234 443\r\n")
	tc = tls.Client(raw, &tls.Config{ServerName: "b.example.com", RootCAs: pool})
	if err := tc.Handshake(); err == nil {
		t.Error("handshake for an unrouted name succeeded")
	}
	testenv.EventuallyWithin(t, time.Second, "no_backend counted", func() bool {
		return r.metric("wharf_proxy_frontend_rejected_total", "reason", "no_backend") == 1
	})
}

// prefixConn reads through a bufio.Reader that may hold bytes already.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func TestServerHalfClose(t *testing.T) {
	// The server says something and half-closes; the client still sends
	// afterwards and the server gets it.
	got := make(chan string, 1)
	s := proxytest.Listen(t, func(c net.Conn) {
		io.WriteString(c, "bye\n")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	r := start(t, proxytest.OneServer("tcp", s.Addr))
	c := dial(t, r.addr())
	b, err := io.ReadAll(c) // EOF arrives: the server's FIN was passed on
	if err != nil || string(b) != "bye\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	io.WriteString(c, "still here")
	c.CloseWrite()
	select {
	case g := <-got:
		if g != "still here" {
			t.Errorf("server got %q after its half-close", g)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("client's data after the server's FIN never arrived")
	}
}

// A config built in code without defaults must not get zero timeouts
// (which would close every connection at once) or a zero check interval.
func TestConfigBuiltInCode(t *testing.T) {
	echo := proxytest.Listen(t, proxytest.Echo)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := metrics.NewRegistry()
	b, err := upstream.New(&conf.Backend{Name: "b", Servers: []conf.Server{{Address: echo.Addr}}}, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	defer b.Close()
	fc := &conf.Frontend{Name: "f", Mode: "tcp", Backend: "b", Binds: []conf.Bind{{Scheme: "tcp", Addr: "[::1]:0"}}}
	f, err := New(fc, map[string]*upstream.Backend{"b": b}, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := f.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	c := dial(t, f.Addrs()[0].String())
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // longer than a zero timeout's window
	io.WriteString(c, "v6")
	got := make([]byte, 2)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "v6" {
		t.Fatalf("echo over [::1]: %q, %v", got, err)
	}
	if s := b.Servers()[0]; !s.Up() || s.Name != echo.Addr || s.Weight != 1 {
		t.Errorf("server defaults: up %v name %q weight %d", s.Up(), s.Name, s.Weight)
	}
}

// A drained or maint server takes no new connections while one open
// to it keeps working; ready again, it takes them (issue #17.2).
func TestDrainKeepsOpenConnection(t *testing.T) {
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	b := proxytest.Listen(t, proxytest.Greeter("b"))
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
[[backend.b.server]]
name = "a"
address = %q
[[backend.b.server]]
name = "b"
address = %q
`, a.Addr, b.Addr))
	// Open connections until one is on a; keep it.
	var open *net.TCPConn
	var br *bufio.Reader
	for open == nil {
		c := dial(t, r.addr())
		rd := bufio.NewReader(c)
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "a\n" {
			open, br = c, rd
		}
	}
	for _, st := range []upstream.AdminState{upstream.StateDrain, upstream.StateMaint} {
		if err := r.bs["b"].Server("a").SetState(st); err != nil {
			t.Fatal(err)
		}
		for range 6 {
			if g := greeting(t, r.addr()); g != "b" {
				t.Fatalf("a in %s: a new connection went to %s", st, g)
			}
		}
		open.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(open, "still here %s\n", st)
		if line, err := br.ReadString('\n'); err != nil || line != "still here "+st.String()+"\n" {
			t.Fatalf("a in %s: the open connection echoed %q, %v", st, line, err)
		}
	}
	r.bs["b"].Server("a").SetState(upstream.StateReady)
	seen := map[string]bool{}
	for range 4 {
		seen[greeting(t, r.addr())] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("a ready again: new connections went to %v, want both", seen)
	}
}

// TestClientThatStopsReading: a client that stops reading a stream it is
// sent (the relay's writes to it block once the socket buffers are full)
// does not hold the connection, nor the server's, past client_timeout.
func TestClientThatStopsReading(t *testing.T) {
	released := make(chan error, 1)
	srv := proxytest.Listen(t, func(c net.Conn) {
		chunk := make([]byte, 64<<10)
		var err error
		for n := 0; n < 256<<20 && err == nil; n += len(chunk) {
			_, err = c.Write(chunk)
		}
		released <- err
	})
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
client_timeout = "500ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, srv.Addr))
	dial(t, r.addr()) // reads nothing
	t0 := time.Now()
	select {
	case err := <-released:
		if err == nil {
			t.Fatal("the server wrote 256 MiB through to a client that reads nothing")
		}
		t.Logf("the server's connection was closed %s after the client connected (%v)", time.Since(t0).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		t.Fatal("the relay still holds a client that has read nothing for 10 s (client_timeout 500ms)")
	}
}

// TestClientTimeoutWithLongServerTimeout: client_timeout closes an idle
// connection within 1.25x of it however long server_timeout is. Each
// direction used to wait in windows of a quarter of its own timeout, and
// the last byte's time was taken when its window ended: with
// server_timeout 2s, the echo's 500ms window moved the "last byte" to
// 500ms, and a 600ms client_timeout closed after 1.2 s (an audit: 3s
// closed at 4.5 s with server_timeout 5s).
func TestClientTimeoutWithLongServerTimeout(t *testing.T) {
	echo := proxytest.Listen(t, proxytest.Echo)
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
client_timeout = "600ms"
[backend.b]
check = "none"
server_timeout = "2s"
[[backend.b.server]]
address = %q
`, echo.Addr))
	c := dial(t, r.addr())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := c.Read(buf)
	if el := time.Since(t0); err == nil || el < 500*time.Millisecond || el > 950*time.Millisecond {
		t.Errorf("idle connection: %v after %s, want closed within 600-750ms of the echo (client_timeout 600ms)", err, el)
	}
}
