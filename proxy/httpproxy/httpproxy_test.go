package httpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/internal/testpki"
	"wharf/metrics"
	"wharf/proxy/internal/proxytest"
	"wharf/proxy/proxyproto"
	"wharf/proxy/upstream"
)

type rig struct {
	f   *Frontend
	reg *metrics.Registry
	bs  map[string]*upstream.Backend
}

func (r *rig) url() string { return "http://" + r.f.Addrs()[0].String() }

func (r *rig) metric(name string, labels ...string) float64 {
	return proxytest.Metric(r.reg, name, labels...)
}

func start(t testing.TB, toml string) *rig {
	t.Helper()
	f, reg, bs := proxytest.Run(t, withTestEngine(toml), New)
	return &rig{f: f, reg: reg, bs: bs}
}

// withTestEngine sets engine = WHARF_TEST_HTTP_ENGINE on frontend f when
// that variable is set and f can have it (plain HTTP, no accept_proxy):
// `make test` runs this package's tests with both engines.
func withTestEngine(toml string) string {
	engine := os.Getenv("WHARF_TEST_HTTP_ENGINE")
	if engine == "" || strings.Contains(toml, "engine =") || strings.Contains(toml, "tls_cert") || strings.Contains(toml, "accept_proxy = true") {
		return toml
	}
	return strings.Replace(toml, "[frontend.f]\n", "[frontend.f]\nengine = \""+engine+"\"\n", 1)
}

// reporter is a backend that answers with its name and what it saw.
func reporter(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s xff=%s proto=%s xfh=%s fwd=%s\n", name, r.URL.Path, r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("Forwarded"))
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func get(t *testing.T, url, host string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutingAndForwardedHeaders(t *testing.T) {
	api, web, def := reporter(t, "api"), reporter(t, "web"), reporter(t, "def")
	cfg := func(trusted string) string {
		return fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "def"
trusted_proxies = [%s]
[[frontend.f.use]]
host = "api.example.com"
path_prefix = "/v1/"
backend = "api"
[[frontend.f.use]]
host = "*.web.example.com"
backend = "web"
[backend.api]
check = "http"
[[backend.api.server]]
address = %q
[backend.web]
[[backend.web.server]]
address = %q
[backend.def]
[[backend.def.server]]
address = %q
`, trusted, hostPort(api), hostPort(web), hostPort(def))
	}
	r := start(t, cfg(""))
	f := func(host, path string, want string, hdr ...string) {
		t.Helper()
		code, body := get(t, r.url()+path, host, hdr...)
		if code != 200 || body != want+"\n" {
			t.Errorf("Host %s %s: %d %q, want %q", host, path, code, body, want)
		}
	}
	f("api.example.com", "/v1/users", "api /v1/users host=api.example.com xff=127.0.0.1 proto=http xfh=api.example.com fwd=for=127.0.0.1;proto=http;host=api.example.com")
	f("api.example.com:8080", "/v1/x", `api /v1/x host=api.example.com:8080 xff=127.0.0.1 proto=http xfh=api.example.com:8080 fwd=for=127.0.0.1;proto=http;host="api.example.com:8080"`)
	f("api.example.com", "/v2/x", "def /v2/x host=api.example.com xff=127.0.0.1 proto=http xfh=api.example.com fwd=for=127.0.0.1;proto=http;host=api.example.com")
	f("a.web.example.com", "/", "web / host=a.web.example.com xff=127.0.0.1 proto=http xfh=a.web.example.com fwd=for=127.0.0.1;proto=http;host=a.web.example.com")
	// An untrusted client's forwarding headers are dropped.
	f("x.web.example.com", "/", "web / host=x.web.example.com xff=127.0.0.1 proto=http xfh=x.web.example.com fwd=for=127.0.0.1;proto=http;host=x.web.example.com",
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "Forwarded", "for=6.6.6.6", "X-Forwarded-Host", "evil")
	// A trusted one's are kept and appended to.
	r = start(t, cfg(`"127.0.0.0/8"`))
	f("x.web.example.com", "/", "web / host=x.web.example.com xff=192.0.2.1, 127.0.0.1 proto=https xfh=orig.example.com fwd=for=192.0.2.1, for=127.0.0.1;proto=http;host=x.web.example.com",
		"X-Forwarded-For", "192.0.2.1", "X-Forwarded-Proto", "https", "Forwarded", "for=192.0.2.1", "X-Forwarded-Host", "orig.example.com")
	// Regression: a Connection header passed on by the trusted proxy
	// named its forwarding fields, and wharf dropped them (and put its own
	// X-Forwarded-Proto: http in place of the proxy's https).
	f("x.web.example.com", "/", "web / host=x.web.example.com xff=192.0.2.1, 127.0.0.1 proto=https xfh=orig.example.com fwd=for=192.0.2.1, for=127.0.0.1;proto=http;host=x.web.example.com",
		"Connection", "X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-For, Forwarded",
		"X-Forwarded-For", "192.0.2.1", "X-Forwarded-Proto", "https", "Forwarded", "for=192.0.2.1", "X-Forwarded-Host", "orig.example.com")
	if n := r.metric("wharf_proxy_http_requests_total", "backend", "web", "code", "2xx"); n != 2 {
		t.Errorf("requests_total{backend=web,code=2xx} = %v, want 2", n)
	}
}

func TestErrors(t *testing.T) {
	dead := proxytest.Listen(t, proxytest.Echo)
	dead.Kill()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	// A server that reads the request and hangs up without answering.
	rude := proxytest.Listen(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
	})
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
[[frontend.f.use]]
path_prefix = "/dead"
backend = "dead"
[[frontend.f.use]]
path_prefix = "/slow"
backend = "slow"
[[frontend.f.use]]
path_prefix = "/rude"
backend = "rude"
[backend.dead]
check = "none"
fall = 2
[[backend.dead.server]]
address = %q
[backend.slow]
check = "none"
server_timeout = "150ms"
[[backend.slow.server]]
address = %q
[backend.rude]
check = "none"
[[backend.rude.server]]
address = %q
`, dead.Addr, hostPort(slow), rude.Addr))
	f := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, body := get(t, r.url()+path, "x")
		if code != wantCode || !strings.Contains(body, wantBody) || len(body) > 200 {
			t.Errorf("%s: %d %q, want %d containing %q (short)", path, code, body, wantCode, wantBody)
		}
	}
	f("/dead", 503, "503 Service Unavailable: cannot connect to a server of backend dead")
	f("/dead", 503, "503 Service Unavailable: cannot connect")
	f("/dead", 503, "503 Service Unavailable: no server is available in backend dead") // fall 2 reached
	f("/slow", 504, "504 Gateway Timeout")
	f("/rude", 502, "502 Bad Gateway")
	f("/nothing", 503, "no backend for this host and path")
	for kind, want := range map[string]float64{"connect_failed": 2, "no_server": 2, "timeout": 1, "bad_gateway": 1} {
		if n := r.metric("wharf_proxy_http_errors_total", "kind", kind); n != want {
			t.Errorf("http_errors_total{kind=%s} = %v, want %v", kind, n, want)
		}
	}
	if st := r.f.Stats(); st.HTTPErrors["no_server"] != 2 || st.HTTPRequests[[2]string{"", "5xx"}] != 1 {
		t.Errorf("stats %+v", st)
	}
	proxytest.CheckStats(t, r.reg, r.f.Stats(), r.bs)
}

// checkedServer answers body, and its /health 200 while healthy is set
// (it starts set), 500 otherwise.
func checkedServer(t *testing.T, body string) (*httptest.Server, *atomic.Bool) {
	healthy := new(atomic.Bool)
	healthy.Store(true)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && !healthy.Load() {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s, healthy
}

// checkedBackend is frontend f on backend b with HTTP checks of /health
// every 30 ms (rise 2, fall 2) and the servers given as TOML.
const checkedBackend = `
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "http"
check_path = "/health"
check_interval = "30ms"
rise = 2
fall = 2
`

func TestHTTPHealthCheck(t *testing.T) {
	s, healthy := checkedServer(t, "ok")
	r := start(t, checkedBackend+fmt.Sprintf(`
[[backend.b.server]]
name = "s"
address = %q
`, hostPort(s)))
	if code, _ := get(t, r.url()+"/", "x"); code != 200 {
		t.Fatalf("healthy: %d", code)
	}
	healthy.Store(false)
	testenv.EventuallyWithin(t, 3*time.Second, "server down", func() bool { return r.metric("wharf_proxy_server_up", "server", "s") == 0 })
	if code, body := get(t, r.url()+"/", "x"); code != 503 {
		t.Errorf("server down: %d %q, want 503", code, body)
	}
	healthy.Store(true)
	testenv.EventuallyWithin(t, 3*time.Second, "server up", func() bool { return r.metric("wharf_proxy_server_up", "server", "s") == 1 })
	if code, _ := get(t, r.url()+"/", "x"); code != 200 {
		t.Errorf("back up: %d", code)
	}
}

// TestBackupServer: with real servers and HTTP health checks, the backup
// server gets no request while the main one is healthy, all of them once
// its checks fail, and none again once it passes them.
func TestBackupServer(t *testing.T) {
	main, healthy := checkedServer(t, "main")
	spare, _ := checkedServer(t, "spare")
	r := start(t, checkedBackend+fmt.Sprintf(`
[[backend.b.server]]
name = "main"
address = %q
[[backend.b.server]]
name = "spare"
address = %q
backup = true
`, hostPort(main), hostPort(spare)))
	answers := func() map[string]int {
		got := map[string]int{}
		for range 20 {
			code, body := get(t, r.url()+"/", "x")
			got[fmt.Sprint(code, " ", body)]++
		}
		return got
	}
	if got := answers(); got["200 main"] != 20 {
		t.Errorf("main healthy: %v, want 20 from main", got)
	}
	healthy.Store(false)
	testenv.EventuallyWithin(t, 3*time.Second, "main down", func() bool { return r.metric("wharf_proxy_server_up", "server", "main") == 0 })
	if got := answers(); got["200 spare"] != 20 {
		t.Errorf("main down: %v, want 20 from the backup", got)
	}
	healthy.Store(true)
	testenv.EventuallyWithin(t, 3*time.Second, "main up", func() bool { return r.metric("wharf_proxy_server_up", "server", "main") == 1 })
	if got := answers(); got["200 main"] != 20 {
		t.Errorf("main back: %v, want 20 from main", got)
	}
}

func TestStreamingAndUpgrade(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw)
			return
		}
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	// Streaming: the first chunk arrives while the server still works.
	resp, err := http.Get(r.url() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	done := make(chan string, 1)
	go func() { l, _ := br.ReadString('\n'); done <- l }()
	select {
	case l := <-done:
		if l != "first\n" {
			t.Errorf("first chunk %q", l)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("first chunk not streamed before the response ended")
	}
	close(release)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
	// Upgrade: after 101 the connection is a byte pipe both ways.
	c, err := net.Dial("tcp", r.f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	cr := bufio.NewReader(c)
	status, _ := cr.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("upgrade status %q", status)
	}
	for {
		l, err := cr.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	io.WriteString(c, "ping through the tunnel\n")
	if l, err := cr.ReadString('\n'); l != "ping through the tunnel\n" {
		t.Errorf("tunnel echo %q, %v", l, err)
	}
}

func TestBadClients(t *testing.T) {
	base := runtime.NumGoroutine()
	s := reporter(t, "s")
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
max_header_bytes = "4KiB"
header_timeout = "200ms"
client_timeout = "300ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, hostPort(s)))
	if code, _ := get(t, r.url()+"/", "x", "X-Big", strings.Repeat("a", 16<<10)); code != 431 {
		t.Errorf("oversized header: %d, want 431", code)
	}
	// Slow clients: a few bytes of header and then nothing.
	var conns []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", r.f.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		t0 := time.Now()
		io.ReadAll(c)
		if el := time.Since(t0); el > 2*time.Second {
			t.Errorf("slow client held for %s (header_timeout 200ms)", el)
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.bs["b"].Close()
	s.CloseClientConnections()
	s.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	proxytest.SettleGoroutines(t, base, 3)
}

func TestACLAndProxyProtocol(t *testing.T) {
	s := reporter(t, "s")
	// The server wants PROXY too: a raw server that reports the header,
	// then answers one request.
	pp := proxytest.Listen(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		var buf []byte
		var h proxyproto.Header
		for {
			b, err := br.ReadByte()
			if err != nil {
				return
			}
			buf = append(buf, b)
			if h, _, err = proxyproto.Parse(buf); err == nil {
				break
			} else if err != proxyproto.ErrNeedMore {
				return
			}
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body := fmt.Sprintf("pp v%d %s %s xff=%s", h.Version, h.Source, h.Dest, req.Header.Get("X-Forwarded-For"))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "s"
accept_proxy = true
trusted_proxies = ["127.0.0.1"]
deny = ["192.0.2.66"]
[[frontend.f.use]]
path_prefix = "/pp"
backend = "pp"
[backend.s]
check = "none"
[[backend.s.server]]
address = %q
[backend.pp]
check = "none"
[[backend.pp.server]]
address = %q
send_proxy = "v2"
`, hostPort(s), pp.Addr))
	addr := r.f.Addrs()[0].String()
	f := func(header, path, want string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, header+"GET "+path+" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		got, _ := io.ReadAll(c)
		if want == "" {
			if len(got) != 0 {
				t.Errorf("%q: got %q, want the connection closed", header, got)
			}
			return
		}
		if !strings.Contains(string(got), want) {
			t.Errorf("%q %s: got %q, want it to contain %q", header, path, got, want)
		}
	}
	f("PROXY TCP4 192.0.2.7 198.51.100.1 5555 80\r\n", "/", "xff=192.0.2.7 ")
	f("PROXY TCP4 192.0.2.7 198.51.100.1 5555 80\r\n", "/pp", "pp v2 192.0.2.7:5555 127.0.0.1:")
	f("PROXY TCP4 192.0.2.66 198.51.100.1 5555 80\r\n", "/", "")
	f("", "/", "")
	f("PROXY garbage\r\n", "/", "")
	if n := r.metric("wharf_proxy_frontend_rejected_total", "reason", "proxy_header"); n != 2 {
		t.Errorf("proxy_header rejects = %v, want 2", n)
	}
	if n := r.metric("wharf_proxy_frontend_rejected_total", "reason", "acl"); n != 1 {
		t.Errorf("acl rejects = %v, want 1", n)
	}
}

func TestTLSTerminationWithCurl(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	s := reporter(t, "s")
	ca := testpki.NewCA(t, "test CA")
	_, certFile, keyFile := ca.ServerCert(t, "site.example.com")
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
tls_cert = %q
tls_key = %q
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, certFile, keyFile, hostPort(s)))
	port := r.f.Addrs()[0].(*net.TCPAddr).Port
	out, err := exec.Command(curl, "-sS", "--max-time", "5", "--cacert", ca.File,
		"--resolve", fmt.Sprintf("site.example.com:%d:127.0.0.1", port),
		"-H", "X-Forwarded-For: 6.6.6.6",
		fmt.Sprintf("https://site.example.com:%d/hello", port)).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	want := fmt.Sprintf("s /hello host=site.example.com:%d xff=127.0.0.1 proto=https", port)
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("curl got %q, want prefix %q", out, want)
	}
	// Plain HTTP to a TLS bind is refused by the TLS layer.
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	c.Close()
}

func TestCurlKeepAlive(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hi\n")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	args := []string{"-sS", "--max-time", "5"}
	for range 5 {
		args = append(args, r.url()+"/")
	}
	out, err := exec.Command(curl, args...).CombinedOutput()
	if err != nil || string(out) != strings.Repeat("hi\n", 5) {
		t.Fatalf("curl: %v %q", err, out)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 requests used %d server connections, want 1 (keep-alive pool)", n)
	}
}

func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done\n")
	}))
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	url := r.url()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	testenv.EventuallyWithin(t, 2*time.Second, "request in flight", func() bool {
		return r.metric("wharf_proxy_server_active") == 1
	})
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		shut <- r.f.Shutdown(ctx)
	}()
	testenv.EventuallyWithin(t, time.Second, "new connections refused", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if b := <-got; b != "done\n" {
		t.Errorf("in-flight request during shutdown: %q", b)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownForcesUpgraded(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	}))
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	c, err := net.Dial("tcp", r.f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if l, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(l, "HTTP/1.1 101") {
		t.Fatalf("upgrade: %q", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if err := r.f.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil with an upgraded connection open; want it waited for, then forced")
	}
	if el := time.Since(t0); el < 150*time.Millisecond {
		t.Errorf("Shutdown did not wait for the upgraded connection (%s)", el)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("upgraded connection still open after forced shutdown")
	}
}

// startExtra is frontend f, with extra settings, on one server running
// handler.
func startExtra(t *testing.T, handler http.Handler, extra string) *rig {
	s := httptest.NewServer(handler)
	t.Cleanup(s.Close)
	return start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
%s
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, extra, hostPort(s)))
}

// TestResponseHeaders: response_headers sets fields on every final
// response from a server, replacing the server's own of the same name
// (case-insensitively), and an empty value removes one (HAProxy's
// http-response set-header / del-header); answers to HTTP/1.1 and
// HTTP/2 clients alike; 1xx and wharf's own error answers are left
// alone.
func TestResponseHeaders(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "gobackend")
		w.Header().Set("X-Powered-By", "php/5")
		w.Header().Set("X-Kept", "yes")
		io.WriteString(w, "ok")
	})
	const extra = `response_headers = { "Strict-Transport-Security" = "max-age=63072000", "server" = "wharf", "X-Powered-By" = "" }`
	check := func(t *testing.T, h http.Header) {
		t.Helper()
		if got := h.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=63072000" {
			t.Errorf("Strict-Transport-Security %q", got)
		}
		if got := h.Values("Server"); len(got) != 1 || got[0] != "wharf" {
			t.Errorf("Server %q, want only wharf's", got)
		}
		if got := h.Values("X-Powered-By"); len(got) != 0 {
			t.Errorf("X-Powered-By %q, want it removed", got)
		}
		if h.Get("X-Kept") != "yes" {
			t.Errorf("X-Kept %q: other fields must pass", h.Get("X-Kept"))
		}
	}
	t.Run("http1", func(t *testing.T) {
		r := startExtra(t, backend, extra)
		resp, err := http.Get("http://" + r.f.Addrs()[0].String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		check(t, resp.Header)
	})
	t.Run("http2", func(t *testing.T) {
		r := startH2(t, backend, extra)
		resp, err := (&http.Client{Transport: r.tr}).Get(r.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s, want HTTP/2", resp.Proto)
		}
		check(t, resp.Header)
	})
}

// TestRequestHeaders: request_headers sets fields on every request passed
// to a server, replacing the client's own of the same name
// (case-insensitively), and an empty value removes one (HAProxy's
// http-request set-header / del-header), for HTTP/1.1 and HTTP/2
// clients alike.
func TestRequestHeaders(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	})
	const extra = `request_headers = { "X-Request-Source" = "edge", "cookie" = "" }`
	send := func(t *testing.T, c *http.Client, url string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-Request-Source", "spoofed")
		req.Header.Set("Cookie", "session=secret")
		req.Header.Set("X-Kept", "yes")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got http.Header
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if v := got.Values("X-Request-Source"); len(v) != 1 || v[0] != "edge" {
			t.Errorf("%s: the server got X-Request-Source %q, want only edge", resp.Proto, v)
		}
		if v := got.Values("Cookie"); len(v) != 0 {
			t.Errorf("%s: the server got Cookie %q, want it removed", resp.Proto, v)
		}
		if got.Get("X-Kept") != "yes" {
			t.Errorf("%s: X-Kept %q: other fields must pass", resp.Proto, got.Get("X-Kept"))
		}
	}
	t.Run("http1", func(t *testing.T) {
		r := startExtra(t, backend, extra)
		send(t, http.DefaultClient, "http://"+r.f.Addrs()[0].String()+"/")
	})
	t.Run("http2", func(t *testing.T) {
		r := startH2(t, backend, extra)
		send(t, &http.Client{Transport: r.tr}, r.url("/"))
	})
}

// TestRedirectHTTPS: redirect_https answers every request with 301 to
// the same URL over https (HAProxy: http-request redirect scheme https):
// the Host without its port, path and query as sent; the connection is
// kept alive, except after a request whose body was not read; no server
// is asked.
func TestRedirectHTTPS(t *testing.T) {
	var asked atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	t.Cleanup(s.Close)
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
redirect_https = true
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, hostPort(s)))
	c, err := net.Dial("tcp", r.f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		req, location string
		close         bool
	}{
		{"GET /a/b?c=d HTTP/1.1\r\nHost: site.example.com:8080\r\n\r\n", "https://site.example.com/a/b?c=d", false},
		{"HEAD / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "https://[2001:db8::1]/", false},
		{"GET http://other.example/x HTTP/1.1\r\nHost: other.example\r\n\r\n", "https://other.example/x", false},
		{"POST /form HTTP/1.1\r\nHost: site.example.com\r\nContent-Length: 3\r\n\r\nabc", "https://site.example.com/form", true},
	} {
		io.WriteString(c, tc.req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.req, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 301 || resp.Header.Get("Location") != tc.location || resp.Close != tc.close {
			t.Errorf("%q: %d Location %q close %v, want 301 %q %v", tc.req, resp.StatusCode, resp.Header.Get("Location"), resp.Close, tc.location, tc.close)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the server was asked %d times", n)
	}
}
