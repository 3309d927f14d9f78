package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/proxy/internal/proxytest"
)

// The pool keeps server connections alive across requests and responses
// of every framing (length, chunked with trailers, none, close-delimited).
func TestPoolFramingAndReuse(t *testing.T) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(200)
			io.WriteString(w, "part1 ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "42")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	c := &http.Client{Timeout: 5 * time.Second}
	f := func(method, path string, wantCode int, wantBody, wantTrailer string) {
		t.Helper()
		req, _ := http.NewRequest(method, r.url()+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode || string(b) != wantBody || resp.Trailer.Get("X-Sum") != wantTrailer {
			t.Errorf("%s %s: %d %q trailer %q, want %d %q trailer %q", method, path, resp.StatusCode, b, resp.Trailer.Get("X-Sum"), wantCode, wantBody, wantTrailer)
		}
	}
	for range 3 {
		f("GET", "/", 200, "hello", "")
		f("HEAD", "/", 200, "", "")
		f("GET", "/chunked", 200, "part1 part2", "42")
		f("GET", "/empty", 204, "", "")
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d server connections for 12 sequential requests, want 1", n)
	}
	f("GET", "/close", 200, "bye", "")
	f("GET", "/", 200, "hello", "")
	if n := conns.Load(); n != 2 {
		t.Errorf("%d server connections after a Connection: close answer, want 2", n)
	}
	if n := r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "2xx"); n != 14 {
		t.Errorf("requests_total{code=2xx} = %v, want 14", n)
	}
}

// Regression: a kept-alive server connection the server closed while idle
// must not turn the next request into a 502; it is sent again on a new one.
func TestPoolRetriesClosedIdleConnection(t *testing.T) {
	var conns atomic.Int64
	// Answers one request per connection as if keeping it alive, then
	// hangs up.
	once := proxytest.Listen(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond) // let the proxy pool it first
	})
	r := oneBackend(t, once.Addr)
	for i := range 5 {
		if code, body := get(t, r.url()+"/", "x"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, code, body)
		}
		time.Sleep(40 * time.Millisecond) // the server has closed it by now
	}
	if n := conns.Load(); n < 5 {
		t.Errorf("%d server connections for 5 requests to a one-request server, want >= 5", n)
	}
}

// A client that goes away ends the wait for the server's answer, and the
// server sees its connection closed.
func TestPoolClientGoesAway(t *testing.T) {
	gone := make(chan struct{}, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(5 * time.Second):
		}
	}))
	defer s.Close()
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
server_timeout = "10s"
[[backend.b.server]]
address = %q
`, hostPort(s)))
	c := &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := c.Get(r.url() + "/"); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("GET: %v, want a client timeout", err)
	}
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the server's request was not cancelled 3 s after the client went away")
	}
}

// A bodiless request (replayable, any pooled connection) and one with a
// body (not replayable, framed by Content-Length) reach the server with
// the same head otherwise. Written when they took different paths
// (connPool and http.Transport); kept as a regression test.
func TestPoolHeadMatchesTransport(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var keys []string
		for k := range r.Header {
			if k != "Content-Length" && k != "Content-Type" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		fmt.Fprintf(w, "%s host=%s close=%v", r.RequestURI, r.Host, r.Close)
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%q", k, r.Header[k])
		}
	}))
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	c := &http.Client{Timeout: 5 * time.Second}
	do := func(method, path string, close bool, hdr ...string) string {
		t.Helper()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(method, r.url()+path, body)
		req.Host = "h.example:81"
		req.Close = close
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	f := func(path string, close bool, hdr ...string) {
		t.Helper()
		pool, tr := do("GET", path, close, hdr...), do("POST", path, close, hdr...)
		if pool != tr {
			t.Errorf("%s %v: the pool sent\n%s\nthe Transport\n%s", path, hdr, pool, tr)
		}
		if !strings.Contains(pool, "X-Forwarded-For=") {
			t.Errorf("%s: no X-Forwarded-For in %s", path, pool)
		}
	}
	f("/", false)
	f("/a%20b/c?q=1&r=%2F#frag", false, "X-Multi", "one", "X-Multi", "two", "Accept", "*/*")
	f("/ua", false, "User-Agent", "curl/8")
	f("/ua-empty", false, "User-Agent", "")
	f("/close", true, "Cookie", "a=b", "Cookie", "c=d")
}

// Idle connections past the idle timeout are closed when the pool is
// next used (put closes the old ones, get drops a stale newest one).
func TestPoolIdleTimeout(t *testing.T) {
	var closed atomic.Int64
	srv := proxytest.Listen(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		closed.Add(1)
	})
	p := &connPool{addr: srv.Addr, maxIdle: 4, idleTimeout: 50 * time.Millisecond,
		dial: (&net.Dialer{}).DialContext}
	conn := func() *poolConn {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		return &poolConn{c: c}
	}
	old := conn()
	p.put(old)
	time.Sleep(80 * time.Millisecond)
	p.put(conn()) // closes old
	testenv.EventuallyWithin(t, 2*time.Second, "the expired connection closed", func() bool { return closed.Load() == 1 })
	if got := p.get(); got == nil || got == old {
		t.Fatalf("get = %v, want the fresh connection", got)
	} else {
		p.put(got)
	}
	time.Sleep(80 * time.Millisecond)
	if got := p.get(); got != nil {
		t.Fatalf("get after the idle timeout = %v, want nil", got)
	}
	testenv.EventuallyWithin(t, 2*time.Second, "both connections closed", func() bool { return closed.Load() == 2 })
	p.closeIdle()
}
