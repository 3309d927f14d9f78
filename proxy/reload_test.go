package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/internal/testpki"
	"wharf/metrics"
	"wharf/proxy"
	"wharf/proxy/internal/proxytest"
	"wharf/proxy/upstream"
)

// reload applies toml to a running set as SIGHUP does.
func reload(t *testing.T, set *proxy.Set, toml string) error {
	t.Helper()
	cfg, err := conf.Parse([]byte(toml), "wharf.toml")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", toml, err)
	}
	r, err := set.Prepare(cfg)
	if err != nil {
		return err
	}
	r.Commit()
	return nil
}

// greet connects to addr and returns the server's greeting line.
func greet(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// clientLoop connects to addr over and over until stop is called, and
// counts the greetings by server and the connections that failed.
type clientLoop struct {
	mu     sync.Mutex
	seen   map[string]int
	failed []error
	stop   chan struct{}
	done   chan struct{}
}

func startClientLoop(addr string) *clientLoop {
	l := &clientLoop{seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			name, err := greet(addr)
			l.mu.Lock()
			if err != nil || name == "" {
				l.failed = append(l.failed, fmt.Errorf("greeting %q: %v", name, err))
			} else {
				l.seen[name]++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// count returns how many greetings came from name so far.
func (l *clientLoop) count(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[name]
}

// reset forgets the greetings counted so far, once a greeting from
// name shows that the connection begun before a reload has ended (the
// loop makes one at a time).
func (l *clientLoop) reset(t *testing.T, name string) {
	t.Helper()
	l.mu.Lock()
	l.seen = map[string]int{}
	l.mu.Unlock()
	testenv.Eventually(t, "a connection to "+name, func() bool { return l.count(name) > 0 })
	l.mu.Lock()
	l.seen = map[string]int{}
	l.mu.Unlock()
}

func (l *clientLoop) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	<-l.done
	for _, err := range l.failed {
		t.Error(err)
	}
}

const reloadTCP = `
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "%s"
[backend.web]
check = "tcp"
check_interval = "100ms"
%s
[backend.api]
check = "none"
[[backend.api.server]]
name = "c"
address = "%s"
`

func server(name, addr string, weight int) string {
	return fmt.Sprintf("[[backend.web.server]]\nname = %q\naddress = %q\nweight = %d\n", name, addr, weight)
}

// A tcp frontend reloaded under a connection loop: a server added, its
// weight changed, the frontend moved to another backend. No connection
// fails, the socket stays, each change shows in where connections go, a
// connection open across the reloads keeps its server, and the backend
// left behind closes once that connection ends.
func TestReloadTCP(t *testing.T) {
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	b := proxytest.Listen(t, proxytest.Greeter("b"))
	c := proxytest.Listen(t, proxytest.Greeter("c"))
	set, reg := startWharf(t, fmt.Sprintf(reloadTCP, "web", server("a", a.Addr, 1), c.Addr))
	addr := set.Addrs("f")[0].String()

	open, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	rd := bufio.NewReader(open)
	if line, _ := rd.ReadString('\n'); line != "a\n" {
		t.Fatalf("first connection greeted %q, want a", line)
	}

	loop := startClientLoop(addr)
	testenv.Eventually(t, "connections to a", func() bool { return loop.count("a") >= 5 })

	// Add b at weight 3: b takes most new connections.
	if err := reload(t, set, fmt.Sprintf(reloadTCP, "web", server("a", a.Addr, 1)+server("b", b.Addr, 3), c.Addr)); err != nil {
		t.Fatal(err)
	}
	loop.reset(t, "b")
	testenv.Eventually(t, "connections to b", func() bool { return loop.count("b") >= 30 })
	if na, nb := loop.count("a"), loop.count("b"); nb < 2*na {
		t.Errorf("after weights a=1 b=3: a %d, b %d connections", na, nb)
	}

	// Move the frontend to api: only c from now on.
	if err := reload(t, set, fmt.Sprintf(reloadTCP, "api", server("a", a.Addr, 1)+server("b", b.Addr, 3), c.Addr)); err != nil {
		t.Fatal(err)
	}
	loop.reset(t, "c")
	testenv.Eventually(t, "connections to c", func() bool { return loop.count("c") >= 10 })
	loop.finish(t)
	if na, nb := loop.count("a"), loop.count("b"); na+nb > 0 {
		t.Errorf("after the move to api: a %d, b %d connections, want none", na, nb)
	}
	if got := set.Addrs("f")[0].String(); got != addr {
		t.Errorf("bind moved from %s to %s", addr, got)
	}

	// Remove backend web: the connection open to a since the start
	// still works; web closes once it ends.
	if err := reload(t, set, fmt.Sprintf(strings.Replace(reloadTCP, "[backend.web]\ncheck = \"tcp\"\ncheck_interval = \"100ms\"\n%s", "%s", 1), "api", "", c.Addr)); err != nil {
		t.Fatal(err)
	}
	io.WriteString(open, "still there\n")
	if line, err := rd.ReadString('\n'); line != "still there\n" {
		t.Fatalf("open connection after the reloads: %q, %v", line, err)
	}
	// web as first built stays open for that connection; web rebuilt
	// with b had nothing in flight and closes.
	testenv.Eventually(t, "one retired backend left open", func() bool { return set.Retired() == 1 })
	open.Close()
	testenv.Eventually(t, "the removed backend to close", func() bool { return set.Retired() == 0 })
	// web's series are gone from /metrics; api's are there.
	seen := map[string]bool{}
	reg.Each(func(m metrics.Sample) {
		if m.Name == "wharf_proxy_server_up" {
			seen[m.Label("backend")+"/"+m.Label("server")] = true
		}
	})
	if len(seen) != 1 || !seen["api/c"] {
		t.Errorf("wharf_proxy_server_up series after web was removed: %v, want api/c only", seen)
	}
}

// httpNamed is an HTTP server answering its name, counting its open
// connections.
type httpNamed struct {
	*httptest.Server
	open atomic.Int64
}

func newHTTPNamed(t *testing.T, name string) *httpNamed {
	h := &httpNamed{}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, name)
	}))
	h.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			h.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			h.open.Add(-1)
		}
	}
	h.Start()
	t.Cleanup(h.Close)
	return h
}

const reloadHTTP = `
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "%s"
[backend.one]
check = "none"
[[backend.one.server]]
name = "a"
address = "%s"
[backend.two]
check = "none"
[[backend.two.server]]
name = "b"
address = "%s"
`

// get sends a GET on an open client connection and returns the body.
func get(t *testing.T, c net.Conn, rd *bufio.Reader) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

// An http frontend moved to another backend: the next request on an
// open keep-alive connection goes to the new backend, and the
// connections pooled to the backend left behind are closed.
func TestReloadHTTPKeepAlive(t *testing.T) {
	a, b := newHTTPNamed(t, "a"), newHTTPNamed(t, "b")
	aAddr, bAddr := a.Listener.Addr().String(), b.Listener.Addr().String()
	set, _ := startWharf(t, fmt.Sprintf(reloadHTTP, "one", aAddr, bAddr))
	c, err := net.Dial("tcp", set.Addrs("f")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if got := get(t, c, rd); got != "a" {
		t.Fatalf("before the reload: %q, want a", got)
	}
	if a.open.Load() != 1 {
		t.Fatalf("a has %d connections open, want the pooled one", a.open.Load())
	}
	// Backend one is removed: two stays as it was.
	cfg := strings.Replace(fmt.Sprintf(reloadHTTP, "two", aAddr, bAddr), "[backend.one]\ncheck = \"none\"\n[[backend.one.server]]\nname = \"a\"\naddress = \""+aAddr+"\"\n", "", 1)
	if err := reload(t, set, cfg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := get(t, c, rd); got != "b" {
			t.Fatalf("after the reload, same connection: %q, want b", got)
		}
	}
	testenv.Eventually(t, "a's pooled connection to close", func() bool { return a.open.Load() == 0 })
	testenv.Eventually(t, "backend one to close", func() bool { return set.Retired() == 0 })
}

const reloadAdmin = `
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "web"
[backend.web]
check = "none"
[[backend.web.server]]
name = "a"
address = "127.0.0.1:1"
[[backend.web.server]]
name = "b"
address = "127.0.0.1:2"
weight = %d
%s`

// A reload that rebuilds a backend keeps what the operator set on the
// servers it does not change, and not on those it does.
func TestReloadKeepsAdminState(t *testing.T) {
	set, _ := startWharf(t, fmt.Sprintf(reloadAdmin, 1, ""))
	a, _ := set.Server("web", "a")
	a.SetState(upstream.StateDrain)
	a.SetWeight(5)
	b, _ := set.Server("web", "b")
	b.SetState(upstream.StateMaint)
	// c is added (the backend is rebuilt), b's configured weight changes.
	if err := reload(t, set, fmt.Sprintf(reloadAdmin, 2, "[[backend.web.server]]\nname = \"c\"\naddress = \"127.0.0.1:3\"\n")); err != nil {
		t.Fatal(err)
	}
	na, _ := set.Server("web", "a")
	if na == a {
		t.Fatal("backend web was not rebuilt")
	}
	if na.State() != upstream.StateDrain || na.EffectiveWeight() != 5 {
		t.Errorf("a after the reload: %s weight %d, want drain weight 5", na.State(), na.EffectiveWeight())
	}
	if nb, _ := set.Server("web", "b"); nb.State() != upstream.StateReady || nb.EffectiveWeight() != 2 {
		t.Errorf("b (weight changed by the config) after the reload: %s weight %d, want ready weight 2", nb.State(), nb.EffectiveWeight())
	}
	if _, err := set.Server("web", "c"); err != nil {
		t.Error(err)
	}
}

// A reload that cannot bind changes nothing: the old routing, binds and
// backends stay.
func TestReloadAllOrNothing(t *testing.T) {
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	c := proxytest.Listen(t, proxytest.Greeter("c"))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	set, _ := startWharf(t, fmt.Sprintf(reloadTCP, "web", server("a", a.Addr, 1), c.Addr))
	addr := set.Addrs("f")[0].String()
	bad := strings.Replace(fmt.Sprintf(reloadTCP, "api", server("a", a.Addr, 1), c.Addr),
		`bind = ["tcp://127.0.0.1:0"]`, `bind = ["tcp://127.0.0.1:0", "tcp://`+busy.Addr().String()+`"]`, 1)
	err = reload(t, set, bad)
	if err == nil || !strings.Contains(err.Error(), "cannot listen on tcp://"+busy.Addr().String()) {
		t.Fatalf("reload onto a busy address: %v", err)
	}
	if got := set.Addrs("f"); len(got) != 1 || got[0].String() != addr {
		t.Errorf("binds after the failed reload: %v, want [%s]", got, addr)
	}
	if name, err := greet(addr); name != "a" {
		t.Errorf("after the failed reload: greeted by %q (%v), want a (backend web)", name, err)
	}
	if set.Retired() != 0 {
		t.Errorf("a failed reload retired %d backends", set.Retired())
	}
}

const reloadFrontends = `
[frontend.f]
mode = "tcp"
bind = [%s]
backend = "web"
client_timeout = "%s"
[frontend.g]
mode = "http"
bind = [%s]
backend = "web"
[backend.web]
check = "none"
[[backend.web.server]]
name = "a"
address = "%s"
`

// A frontend whose own settings change is rebuilt on the same socket,
// and a bind moved between frontends keeps its socket too: no
// connection is refused meanwhile, and one open on the old frontend
// finishes there.
func TestReloadRebuildsFrontendOnItsSocket(t *testing.T) {
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	set, _ := startWharf(t, fmt.Sprintf(reloadFrontends, `"tcp://127.0.0.1:0"`, "30s", `"tcp://127.0.0.1:0"`, a.Addr))
	fAddr, gAddr := set.Addrs("f")[0].String(), set.Addrs("g")[0].String()
	open, err := net.Dial("tcp", fAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	rd := bufio.NewReader(open)
	if line, _ := rd.ReadString('\n'); line != "a\n" {
		t.Fatalf("greeted %q", line)
	}
	loop := startClientLoop(fAddr)
	testenv.Eventually(t, "connections", func() bool { return loop.count("a") >= 5 })
	// f's client_timeout changes (rebuilt); g's bind moves to f, named by
	// the port it got: a tcp frontend now answers there.
	q := func(s string) string { return `"tcp://` + s + `"` }
	if err := reload(t, set, fmt.Sprintf(reloadFrontends, q(fAddr)+", "+q(gAddr), "20s", `"tcp://127.0.0.1:0"`, a.Addr)); err != nil {
		t.Fatal(err)
	}
	loop.reset(t, "a")
	testenv.Eventually(t, "connections after the reload", func() bool { return loop.count("a") >= 5 })
	loop.finish(t)
	got := set.Addrs("f")
	if len(got) != 2 || got[0].String() != fAddr || got[1].String() != gAddr {
		t.Errorf("f's binds after the reload: %v, want [%s %s]", got, fAddr, gAddr)
	}
	if name, err := greet(gAddr); name != "a" {
		t.Errorf("g's old bind, now f's (tcp): %q, %v", name, err)
	}
	if ng := set.Addrs("g"); len(ng) != 1 || ng[0].String() == gAddr {
		t.Errorf("g's binds after the reload: %v", ng)
	}
	io.WriteString(open, "x\n")
	if line, err := rd.ReadString('\n'); line != "x\n" {
		t.Errorf("connection open on the replaced frontend: %q, %v", line, err)
	}
}

// A failed reload leaves /metrics showing the running servers: the
// backend it built and dropped does not take their series over.
func TestReloadFailedKeepsMetrics(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	set, reg := startWharf(t, fmt.Sprintf(reloadAdmin, 1, ""))
	a, _ := set.Server("web", "a")
	a.SetState(upstream.StateDrain)
	a.SetWeight(9)
	// a gets a new address (so no state to carry over) and the bind a
	// busy one.
	bad := strings.Replace(fmt.Sprintf(reloadAdmin, 1, ""), `bind = ["tcp://127.0.0.1:0"]`, `bind = ["tcp://`+busy.Addr().String()+`"]`, 1)
	bad = strings.Replace(bad, "127.0.0.1:1", "127.0.0.1:4", 1)
	if err := reload(t, set, bad); err == nil {
		t.Fatal("reload onto a busy address succeeded")
	}
	if w := proxytest.Metric(reg, "wharf_proxy_server_weight", "backend", "web", "server", "a"); w != 9 {
		t.Errorf("wharf_proxy_server_weight of a after the failed reload: %v, want 9", w)
	}
	if v := proxytest.Metric(reg, "wharf_proxy_server_admin_state", "backend", "web", "server", "a", "state", "drain"); v != 1 {
		t.Errorf("admin_state drain of a after the failed reload: %v, want 1", v)
	}
}

// A reload adds the first proxy frontend to a config that had none, and
// a later one takes every proxy away again.
func TestReloadFromAndToNoProxy(t *testing.T) {
	a := proxytest.Listen(t, proxytest.Greeter("a"))
	withProxy, err := conf.Parse([]byte(fmt.Sprintf("[frontend.f]\nmode = \"tcp\"\nbind = [\"tcp://127.0.0.1:0\"]\nbackend = \"web\"\n[backend.web]\ncheck = \"none\"\n[[backend.web.server]]\nname = \"a\"\naddress = %q\n", a.Addr)), "wharf.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The same config without its proxies (a syslog-only one, as far as
	// the proxies can tell).
	none := *withProxy
	none.Frontends, none.Backends = map[string]*conf.Frontend{}, map[string]*conf.Backend{}
	set, err := proxy.Start(&none, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), proxy.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Shutdown(context.Background()) })
	apply := func(cfg *conf.Config) {
		t.Helper()
		r, err := set.Prepare(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Commit()
	}
	apply(withProxy)
	addr := set.Addrs("f")[0].String()
	if name, err := greet(addr); name != "a" {
		t.Fatalf("the added proxy frontend: %q, %v", name, err)
	}
	apply(&none)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the removed proxy frontend's bind still accepts")
	}
	testenv.Eventually(t, "web to close", func() bool { return set.Retired() == 0 })
	if n := len(set.Servers()); n != 0 {
		t.Errorf("%d servers after the proxies were removed", n)
	}
}

// A certificate renewed in place (same tls_cert path, new contents) is
// served after a reload, on the same socket.
func TestReloadRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	put := func(name string) {
		t.Helper()
		_, certFile, keyFile := ca.ServerCert(t, name)
		for from, to := range map[string]string{certFile: dir + "/cert.pem", keyFile: dir + "/key.pem"} {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("one.example")
	cfg := fmt.Sprintf("[frontend.f]\nmode = \"http\"\nbind = [\"tcp://127.0.0.1:0\"]\nbackend = \"b\"\ntls_cert = %q\ntls_key = %q\n[backend.b]\ncheck = \"none\"\n[[backend.b.server]]\naddress = \"127.0.0.1:1\"\n", dir+"/cert.pem", dir+"/key.pem")
	set, _ := startWharf(t, cfg)
	addr := set.Addrs("f")[0].String()
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].DNSNames[0]
	}
	if got := served(); got != "one.example" {
		t.Fatalf("serves %s, want one.example", got)
	}
	put("two.example")
	if err := reload(t, set, cfg); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "two.example" {
		t.Errorf("after the renewal and a reload: serves %s, want two.example", got)
	}
	if got := set.Addrs("f")[0].String(); got != addr {
		t.Errorf("bind moved from %s to %s", addr, got)
	}
}

// An http frontend rebuilt by a reload (its own settings changed) does
// not cut an open keep-alive connection: the next request on it is
// answered, with Connection: close, and the client reconnects to the new
// frontend on the same socket.
func TestReloadHTTPRebuiltClosesAfterAnswer(t *testing.T) {
	a := newHTTPNamed(t, "a")
	cfg := fmt.Sprintf(reloadHTTP, "one", a.Listener.Addr().String(), a.Listener.Addr().String())
	set, _ := startWharf(t, cfg)
	addr := set.Addrs("f")[0].String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if got := get(t, c, rd); got != "a" {
		t.Fatalf("before the reload: %q", got)
	}
	rebuilt := strings.Replace(cfg, `backend = "one"`, "backend = \"one\"\nclient_timeout = \"20s\"", 1)
	if err := reload(t, set, rebuilt); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("the kept-alive connection's request after the rebuild: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "a" || !resp.Close {
		t.Errorf("answer on the old frontend: %d %q Connection: close %v, want 200 \"a\" and close", resp.StatusCode, body, resp.Close)
	}
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Errorf("after the answer the old frontend's connection gives %v, want EOF", err)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := get(t, c2, bufio.NewReader(c2)); got != "a" {
		t.Errorf("a new connection after the rebuild: %q", got)
	}
}

// TestReloadHTTPRebuiltClosesAfterOwnAnswer: as
// TestReloadHTTPRebuiltClosesAfterAnswer when the answer is wharf's own
// (a 503 for a backend whose server is down, a redirect_https 301): the
// next one on the old frontend carries Connection: close and the
// connection ends, so the client moves to the new frontend instead of
// being cut when shutdown_timeout runs out. Both engines.
func TestReloadHTTPRebuiltClosesAfterOwnAnswer(t *testing.T) {
	dead := testenv.ClosedAddr(t)
	for _, c := range []struct{ name, extra string }{
		{"503", ""},
		{"redirect_https", "redirect_https = true\n"},
	} {
		for _, engine := range []string{"event-loop", "goroutines"} {
			t.Run(c.name+"/"+engine, func(t *testing.T) {
				cfg := fmt.Sprintf(reloadHTTP, "one", dead, dead)
				cfg = strings.Replace(cfg, `backend = "one"`, "backend = \"one\"\n"+c.extra+"engine = \""+engine+"\"", 1)
				set, _ := startWharf(t, cfg)
				c, err := net.Dial("tcp", set.Addrs("f")[0].String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				rd := bufio.NewReader(c)
				ask := func() *http.Response {
					t.Helper()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					io.WriteString(c, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n")
					resp, err := http.ReadResponse(rd, nil)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return resp
				}
				if resp := ask(); resp.Close {
					t.Fatalf("before the reload: %d with Connection: close", resp.StatusCode)
				}
				if err := reload(t, set, strings.Replace(cfg, `backend = "one"`, "backend = \"one\"\nclient_timeout = \"20s\"", 1)); err != nil {
					t.Fatal(err)
				}
				if resp := ask(); !resp.Close {
					t.Errorf("the answer after the rebuild (%d) keeps the old frontend's connection open", resp.StatusCode)
				}
				if _, err := rd.ReadByte(); err != io.EOF {
					t.Errorf("after that answer the connection gives %v, want EOF", err)
				}
			})
		}
	}
}
