package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/metrics"
	"wharf/proxy"
	"wharf/proxy/internal/proxytest"
)

// haproxy runs a real HAProxy in the foreground with config until the
// test ends, and waits until every port in ports accepts connections.
func haproxy(t *testing.T, config string, ports ...int) {
	t.Helper()
	bin := testenv.Tool(t, "haproxy")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects the generated config: %v\n%s\n%s", err, out, config)
	}
	cmd := exec.Command(bin, "-db", "-f", cfgFile)
	var logBuf strings.Builder
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", logBuf.String())
		}
	})
	for _, p := range ports {
		testenv.EventuallyWithin(t, 5*time.Second, fmt.Sprintf("haproxy listening on %d", p), func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
}

// startWharf runs the proxy part of a wharf config until the test ends.
func startWharf(t *testing.T, toml string) (*proxy.Set, *metrics.Registry) {
	t.Helper()
	cfg, err := conf.Parse([]byte(toml), "wharf.toml")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", toml, err)
	}
	reg := metrics.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	set, err := proxy.Start(cfg, reg, log, proxy.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		set.Shutdown(ctx)
	})
	return set, reg
}

const haproxyDefaults = `global
    maxconn 200
defaults
    timeout connect 2s
    timeout client 10s
    timeout server 10s
`

// HAProxy sends PROXY v1 (send-proxy) and v2 (send-proxy-v2) into wharf
// binds with accept_proxy; wharf passes the client HAProxy saw on to its
// server (as v2), and the http frontend puts it in X-Forwarded-For.
func TestHAProxySendsProxyToWharf(t *testing.T) {
	reporter := proxytest.Listen(t, proxytest.ProxyReporter)
	web := proxytest.Listen(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "X-Forwarded-For:") {
				body := strings.TrimSpace(strings.TrimPrefix(line, "X-Forwarded-For:"))
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
				return
			}
		}
	})
	set, reg := startWharf(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
accept_proxy = true
trusted_proxies = ["127.0.0.1"]
backend = "rep"
[frontend.h]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
accept_proxy = true
trusted_proxies = ["127.0.0.1"]
backend = "web"
[backend.rep]
check = "none"
[[backend.rep.server]]
address = %q
send_proxy = "v2"
[backend.web]
check = "none"
[[backend.web.server]]
address = %q
`, reporter.Addr, web.Addr))
	// wharf's ports as bound (port 0): HAProxy's config names them.
	wTCP, wHTTP := port(t, set.Addrs("f")[0]), port(t, set.Addrs("h")[0])
	hp1, hp2, hp3 := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	haproxy(t, haproxyDefaults+fmt.Sprintf(`
listen v1
    mode tcp
    bind 127.0.0.1:%d
    server wharf 127.0.0.1:%d send-proxy
listen v2
    mode tcp
    bind 127.0.0.1:%d
    server wharf 127.0.0.1:%d send-proxy-v2
listen httpv2
    mode tcp
    bind 127.0.0.1:%d
    server wharf 127.0.0.1:%d send-proxy-v2
`, hp1, wTCP, hp2, wTCP, hp3, wHTTP), hp1, hp2, hp3)

	for _, hp := range []int{hp1, hp2} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", hp))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "payload")
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		c.Close()
		want := fmt.Sprintf("%s 127.0.0.1:%d v2\npayload", c.LocalAddr(), hp)
		if string(got) != want {
			t.Errorf("via HAProxy :%d: server saw %q, want %q", hp, got, want)
		}
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", hp3))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	got, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasSuffix(string(got), "\r\n\r\n127.0.0.1") {
		t.Errorf("http via HAProxy: %q, want X-Forwarded-For 127.0.0.1 (the client HAProxy saw)", got)
	}
	if n := proxytest.Metric(reg, "wharf_proxy_frontend_rejected_total"); n != 0 {
		t.Errorf("%v connections rejected", n)
	}
}

// wharf sends PROXY v1 and v2 to HAProxy binds with accept-proxy, from a
// tcp and an http frontend; HAProxy answers with the addresses it
// believes. wharf's HTTP health checks (with a LOCAL header) pass.
func TestWharfSendsProxyToHAProxy(t *testing.T) {
	hp1, hp2 := testenv.FreePort(t), testenv.FreePort(t)
	haproxy(t, haproxyDefaults+fmt.Sprintf(`
frontend v1
    mode http
    bind 127.0.0.1:%d accept-proxy
    http-request return status 200 content-type text/plain lf-string "v1 src=%%[src]:%%[src_port] dst=%%[dst]:%%[dst_port]\n"
frontend v2
    mode http
    bind 127.0.0.1:%d accept-proxy
    http-request return status 200 content-type text/plain lf-string "v2 src=%%[src]:%%[src_port] dst=%%[dst]:%%[dst_port]\n"
`, hp1, hp2), hp1, hp2)
	set, reg := startWharf(t, fmt.Sprintf(`
[frontend.t1]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "hp1"
[frontend.t2]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "hp2"
[frontend.h]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "hp2"
[backend.hp1]
check = "http"
check_interval = "50ms"
[[backend.hp1.server]]
name = "haproxy"
address = "127.0.0.1:%d"
send_proxy = "v1"
[backend.hp2]
check = "http"
check_interval = "50ms"
[[backend.hp2.server]]
name = "haproxy"
address = "127.0.0.1:%d"
send_proxy = "v2"
`, hp1, hp2))
	wTCP1, wTCP2, wHTTP := port(t, set.Addrs("t1")[0]), port(t, set.Addrs("t2")[0]), port(t, set.Addrs("h")[0])
	f := func(wport int, version string) {
		t.Helper()
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", wport))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		got, _ := io.ReadAll(c)
		want := fmt.Sprintf("%s src=%s dst=127.0.0.1:%d\n", version, c.LocalAddr(), wport)
		if !strings.HasSuffix(string(got), want) {
			t.Errorf("wharf :%d -> HAProxy: got %q, want it to end with %q", wport, got, want)
		}
	}
	f(wTCP1, "v1")
	f(wTCP2, "v2")
	f(wHTTP, "v2")
	// Checks carry a LOCAL header that HAProxy accepts and answers 200.
	testenv.EventuallyWithin(t, 3*time.Second, "checks pass through accept-proxy", func() bool {
		return proxytest.Metric(reg, "wharf_proxy_server_checks_total", "backend", "hp1", "result", "ok") >= 3 &&
			proxytest.Metric(reg, "wharf_proxy_server_checks_total", "backend", "hp2", "result", "ok") >= 3
	})
	if n := proxytest.Metric(reg, "wharf_proxy_server_checks_total", "result", "fail"); n != 0 {
		t.Errorf("%v failed checks against HAProxy", n)
	}
}

// port is the port of a bound address.
func port(t *testing.T, a net.Addr) int {
	t.Helper()
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		t.Fatalf("%v is not a TCP address", a)
	}
	return tcp.Port
}
