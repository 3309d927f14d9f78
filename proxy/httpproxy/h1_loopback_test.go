package httpproxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/proxy/internal/proxytest"
)

// oneBackend starts a frontend whose default backend is the one server
// at addr.
func oneBackend(t testing.TB, addr string) *rig {
	return start(t, proxytest.OneServer("http", addr))
}

// rawConn is a client connection that writes bytes as given and reads
// responses with net/http's parser.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, r *rig) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", r.f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a request with method and returns it with
// its body.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading the response body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the proxy closed the connection (nothing more
// comes).
func (rc *rawConn) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

// echo answers with what it saw of the request: method, URI, framing and
// a digest of the body.
func echo(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch r.URL.Path {
		case "/chunked":
			// Answer in two flushed pieces: a chunked response.
			fmt.Fprintf(w, "%s %s len=%d ", r.Method, r.RequestURI, len(body))
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, "te=%v sha=%x", r.TransferEncoding, sha256.Sum256(body))
			return
		}
		fmt.Fprintf(w, "%s %s len=%d te=%v sha=%x", r.Method, r.RequestURI, len(body), r.TransferEncoding, sha256.Sum256(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestChunkedBodiesBothWays(t *testing.T) {
	r := oneBackend(t, hostPort(echo(t)))
	rc := dialRaw(t, r)
	rc.send("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
	time.Sleep(20 * time.Millisecond) // the body arrives in pieces
	rc.send("7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
	resp, body := rc.read("POST")
	want := fmt.Sprintf("POST /chunked len=12 te=[chunked] sha=%x", sha256.Sum256([]byte("hello, world")))
	if resp.StatusCode != 200 || body != want || resp.TransferEncoding == nil {
		t.Errorf("got %d %q (te %v), want 200 %q, chunked", resp.StatusCode, body, resp.TransferEncoding, want)
	}
	// A large chunked body, streamed through.
	big := strings.Repeat("0123456789abcdef", 1<<14)
	var req strings.Builder
	req.WriteString("POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := 0; i < len(big); i += 10000 {
		part := big[i:min(i+10000, len(big))]
		fmt.Fprintf(&req, "%x\r\n%s\r\n", len(part), part)
	}
	req.WriteString("0\r\n\r\n")
	rc.send(req.String())
	_, body = rc.read("POST")
	if want := fmt.Sprintf("POST /big len=%d te=[chunked] sha=%x", len(big), sha256.Sum256([]byte(big))); body != want {
		t.Errorf("big chunked body: %q, want %q", body, want)
	}
	// A malformed chunk size is refused with 400 and the connection closed.
	rc.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 400 {
		t.Errorf("bad chunk size: %d, want 400", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("connection open after a bad chunk")
	}
}

func TestContentLengthBodies(t *testing.T) {
	r := oneBackend(t, hostPort(echo(t)))
	rc := dialRaw(t, r)
	for _, n := range []int{0, 1, 100, 1 << 20} {
		body := strings.Repeat("x", n)
		rc.send(fmt.Sprintf("PUT /len HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, body))
		resp, got := rc.read("PUT")
		want := fmt.Sprintf("PUT /len len=%d te=[] sha=%x", n, sha256.Sum256([]byte(body)))
		if resp.StatusCode != 200 || got != want {
			t.Errorf("%d bytes: %d %q, want %q", n, resp.StatusCode, got, want)
		}
	}
	// A large response, framed by length.
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3000000")
		io.WriteString(w, strings.Repeat("y", 3000000))
	}))
	defer s.Close()
	rc = dialRaw(t, oneBackend(t, hostPort(s)))
	for range 2 {
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, got := rc.read("GET"); resp.ContentLength != 3000000 || got != strings.Repeat("y", 3000000) {
			t.Errorf("large response: length %d, %d bytes", resp.ContentLength, len(got))
		}
	}
}

// rawServer answers each request head with the canned response that
// reply returns for its request line, and counts its connections.
func rawServer(t *testing.T, conns *atomic.Int64, reply func(line string) (resp string, close bool)) string {
	s := proxytest.Listen(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := readHead(br); err != nil {
				return
			}
			resp, cl := reply(strings.TrimSpace(line))
			io.WriteString(c, resp)
			if cl {
				return
			}
		}
	})
	return s.Addr
}

func TestResponseFramings(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, &conns, func(line string) (string, bool) {
		switch {
		case strings.HasPrefix(line, "GET /close"):
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", true
		case strings.HasPrefix(line, "GET /204"):
			return "HTTP/1.1 204 No Content\r\n\r\n", false
		case strings.HasPrefix(line, "GET /304"):
			return "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n", false
		case strings.HasPrefix(line, "HEAD "):
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false
		case strings.HasPrefix(line, "GET /chunked"):
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\nTrailer: X-Sum\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nok", false
	})
	r := oneBackend(t, addr)
	rc := dialRaw(t, r)
	f := func(method, path string, wantCode int, wantBody string, check func(*http.Response) string) {
		t.Helper()
		rc.send(method + " " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := rc.read(method)
		if resp.StatusCode != wantCode || body != wantBody {
			t.Errorf("%s %s: %d %q, want %d %q", method, path, resp.StatusCode, body, wantCode, wantBody)
		}
		if check != nil {
			if msg := check(resp); msg != "" {
				t.Errorf("%s %s: %s", method, path, msg)
			}
		}
	}
	f("GET", "/", 200, "ok", func(resp *http.Response) string {
		if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("Connection") != "" {
			return fmt.Sprintf("hop-by-hop fields passed on: %v", resp.Header)
		}
		return ""
	})
	f("HEAD", "/", 200, "", func(resp *http.Response) string {
		if resp.ContentLength != 5 {
			return fmt.Sprintf("Content-Length %d, want 5", resp.ContentLength)
		}
		return ""
	})
	f("GET", "/204", 204, "", nil)
	f("GET", "/304", 304, "", func(resp *http.Response) string {
		if resp.Header.Get("Etag") != `"x"` {
			return "no ETag"
		}
		return ""
	})
	f("GET", "/chunked", 200, "hello", func(resp *http.Response) string {
		if resp.Trailer.Get("X-Sum") != "5" || len(resp.TransferEncoding) != 1 || resp.Header.Get("Content-Length") != "" {
			return fmt.Sprintf("trailer %v te %v header %v", resp.Trailer, resp.TransferEncoding, resp.Header)
		}
		return ""
	})
	f("GET", "/", 200, "ok", nil)
	if n := conns.Load(); n != 1 {
		t.Errorf("%d server connections for 6 requests on one client connection, want 1", n)
	}
	// Until close: the client connection closes after it too.
	f("GET", "/close", 200, "until close", nil)
	if !rc.closed() {
		t.Error("client connection open after a close-delimited response")
	}
	// The pool keeps serving from another client connection.
	rc = dialRaw(t, r)
	f("GET", "/", 200, "ok", nil)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d server connections, want 2 (one closed by the server)", n)
	}
}

func TestExpectContinue(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusExpectationFailed)
			return
		}
		b, _ := io.ReadAll(r.Body) // net/http sends 100 Continue here
		fmt.Fprintf(w, "got %s", b)
	}))
	defer s.Close()
	r := oneBackend(t, hostPort(s))
	rc := dialRaw(t, r)
	rc.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 100 {
		t.Fatalf("first answer %d, want 100 Continue", resp.StatusCode)
	}
	rc.send("hello")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "got hello" {
		t.Errorf("after 100: %d %q", resp.StatusCode, body)
	}
	// A server that refuses: the final answer comes without a 100, the
	// body is never sent, and the connection closes after.
	rc.send("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 417 || !resp.Close {
		t.Errorf("refused: %d close=%v, want 417 and Connection: close", resp.StatusCode, resp.Close)
	}
	// A server that ignores Expect: after a second the proxy sends the
	// body anyway (and tells the client to go on).
	silent := proxytest.Listen(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		b := make([]byte, 5)
		io.ReadFull(br, b)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ngot %s", b)
	})
	rc = dialRaw(t, oneBackend(t, silent.Addr))
	rc.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 100 {
		t.Fatalf("silent server: first answer %d, want the proxy's 100", resp.StatusCode)
	}
	rc.send("hello")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "got hello" {
		t.Errorf("silent server: %d %q", resp.StatusCode, body)
	}
}

func TestPipelining(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, &conns, func(line string) (string, bool) {
		path := strings.Fields(line)[1]
		if path == "/slow" {
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(path), path), false
	})
	rc := dialRaw(t, oneBackend(t, addr))
	// Empty lines before a request are skipped (RFC 9112 2.2), also when
	// a CRLF arrives split across reads.
	rc.send("\r\n\r")
	time.Sleep(20 * time.Millisecond)
	rc.send("\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "/a" {
		t.Errorf("after empty lines: %d %q", resp.StatusCode, body)
	}
	// Three requests in one write (the first slow): answers in order.
	rc.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	for _, want := range []string{"/slow", "/b", "/c"} {
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != want {
			t.Errorf("got %d %q, want %q", resp.StatusCode, body, want)
		}
	}
}

func TestHTTP10Client(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, &conns, func(line string) (string, bool) {
		if strings.HasPrefix(line, "GET /chunked") {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	r := oneBackend(t, addr)
	// Without keep-alive: one answer, then close.
	rc := dialRaw(t, r)
	rc.send("GET / HTTP/1.0\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" || !resp.Close {
		t.Errorf("1.0: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if !rc.closed() {
		t.Error("1.0 connection without keep-alive left open")
	}
	// With keep-alive: the connection stays, the answer says so.
	rc = dialRaw(t, r)
	for range 2 {
		rc.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Connection") != "keep-alive" {
			t.Errorf("1.0 keep-alive: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	// A chunked response is decoded for it, and the connection closed.
	rc.send("GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	raw, _ := io.ReadAll(rc.br)
	if got := string(raw); !strings.HasSuffix(got, "\r\n\r\nabcde") || strings.Contains(strings.ToLower(got), "transfer-encoding") {
		t.Errorf("1.0 chunked: %q", got)
	}
}

func TestSmugglingRefused(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, &conns, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	r := oneBackend(t, addr)
	f := func(req string, want int) {
		t.Helper()
		rc := dialRaw(t, r)
		rc.send(req)
		resp, _ := rc.read("GET")
		if resp.StatusCode != want {
			t.Errorf("%q: %d, want %d", req, resp.StatusCode, want)
		}
		if !rc.closed() {
			t.Errorf("%q: connection left open", req)
		}
	}
	f("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
	f("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400)
	f("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400)
	f("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400)
	f("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400)
	f("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400)
	f("GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400)
	f("GET / HTTP/1.1\r\n\r\n", 400)
	f("GET / HTTP/1.1\nHost: x\n\n", 400) // refused at once, not after header_timeout
	f("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
	f("GET / HTTP/1.1\r\nHost: x\r\nX: "+strings.Repeat("a", 70<<10)+"\r\n\r\n", 431)
	f("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505)
	f("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405)
	if n := conns.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
	// Absolute form: the authority is the Host.
	rc := dialRaw(t, r)
	rc.send("GET http://abs.example/p HTTP/1.1\r\nHost: ABS.example:80\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("absolute form: %d %q", resp.StatusCode, body)
	}
	rc = dialRaw(t, r)
	rc.send("GET http://abs.example/p HTTP/1.0\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("absolute form without Host: %d %q", resp.StatusCode, body)
	}
	// Regression: an absolute-form target whose authority differs from
	// Host was routed by the authority; HAProxy refuses it, so does wharf.
	n := conns.Load()
	f("GET http://abs.example/p HTTP/1.1\r\nHost: other\r\n\r\n", 400)
	f("GET https://abs.example:8443/p HTTP/1.1\r\nHost: abs.example\r\n\r\n", 400)
	if conns.Load() != n {
		t.Error("a request with a target/Host mismatch reached the server")
	}
}

// Regression: a chunk size of 2^31 or more was passed on as sent, and a
// server that parses sizes into 32 bits reads a different body length
// than wharf (desync). wharf re-frames it in chunks below 2^31.
func TestHugeChunkReframed(t *testing.T) {
	got := make(chan string, 1)
	s := proxytest.Listen(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			got <- "error: " + err.Error()
			return
		}
		l, _ := br.ReadString('\n')
		got <- strings.TrimSpace(l)
	})
	rc := dialRaw(t, oneBackend(t, s.Addr))
	rc.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000000\r\n" + strings.Repeat("a", 1024))
	select {
	case l := <-got:
		if n, err := strconv.ParseInt(l, 16, 64); err != nil || n >= 1<<31 {
			t.Errorf("server got chunk-size line %q, want one below 2^31", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server saw no chunk")
	}
}

// The backend sees the rewritten request: Host first, hop-by-hop and
// Connection-named fields gone, framing normalized, forwarding fields.
func TestRequestRewrite(t *testing.T) {
	got := make(chan string, 1)
	s := proxytest.Listen(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		h, err := readHead(br)
		if err != nil {
			return
		}
		b := make([]byte, 3)
		io.ReadFull(br, b)
		got <- h + string(b)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	rc := dialRaw(t, oneBackend(t, s.Addr))
	rc.send("POST /p?q HTTP/1.1\r\nHost: h.example:81\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\n" +
		"Content-Length: 3, 3\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\nabc")
	rc.read("POST")
	want := "POST /p?q HTTP/1.1\r\nHost: h.example:81\r\nAccept: */*\r\nContent-Length: 3\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"Forwarded: for=127.0.0.1;proto=http;host=\"h.example:81\"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example:81\r\n\r\nabc"
	if h := <-got; h != want {
		t.Errorf("server got\n%q\nwant\n%q", h, want)
	}
}

// Shutdown closes kept-alive connections waiting for their next request
// at once, without waiting for the shutdown timeout.
func TestShutdownClosesIdleKeepAlive(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, &conns, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	r := oneBackend(t, addr)
	var rcs []*rawConn
	for range 3 {
		rc := dialRaw(t, r)
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		rcs = append(rcs, rc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := r.f.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (idle connections were waited for)", err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Shutdown took %s with only idle connections", el)
	}
	for i, rc := range rcs {
		if !rc.closed() {
			t.Errorf("idle connection %d still open", i)
		}
	}
}

// A kept-alive connection is closed after client_timeout without a
// request, and one that starts a head but does not finish it after
// header_timeout.
func TestClientTimeouts(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, &conns, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
header_timeout = "200ms"
client_timeout = "400ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, addr))
	f := func(second string, min, max time.Duration) {
		t.Helper()
		rc := dialRaw(t, r)
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		rc.read("GET")
		t0 := time.Now()
		if second != "" {
			rc.send(second)
		}
		if !rc.closed() {
			t.Errorf("%q: connection not closed", second)
		}
		if el := time.Since(t0); el < min || el > max {
			t.Errorf("%q: closed after %s, want %s-%s", second, el, min, max)
		}
	}
	f("", 350*time.Millisecond, 2*time.Second)                   // idle: client_timeout (up to 1/16 early)
	f("GET / HTTP/1.1\r\n", 150*time.Millisecond, 2*time.Second) // a head begun: header_timeout
}

// A server that answers before reading the whole body (413 here) and
// closes: its answer reaches the client, not a 502.
func TestServerAnswersBeforeBody(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	defer s.Close()
	rc := dialRaw(t, oneBackend(t, hostPort(s)))
	const n = 8 << 20
	go func() {
		io.WriteString(rc.c, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", n))
		rc.c.Write(make([]byte, n)) // fails once the proxy closes
	}()
	resp, body := rc.read("POST")
	if resp.StatusCode != 413 || body != "too large\n" {
		t.Errorf("got %d %q, want the server's 413", resp.StatusCode, body)
	}
}

// TestStalledPeersTimeOut guards against a connection held forever by a
// peer that stops reading: a client that asks for a large response and
// never reads it (the proxy's writes to it block once the socket buffers
// are full), and a server that never reads a large request body. HAProxy
// bounds both with timeout client / timeout server; wharf with
// client_timeout and server_timeout: the writes to that peer must make
// progress within it, or both connections are closed.
func TestStalledPeersTimeOut(t *testing.T) {
	const big = 64 << 20
	released := make(chan error, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(big))
		chunk := make([]byte, 64<<10)
		var err error
		for n := 0; n < big && err == nil; n += len(chunk) {
			_, err = w.Write(chunk)
		}
		released <- err
	}))
	defer s.Close()
	var served atomic.Int64
	quit := make(chan struct{})
	silent := proxytest.Listen(t, func(c net.Conn) {
		served.Add(1)
		<-quit // reads nothing, answers nothing
	})
	t.Cleanup(func() { close(quit) })
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
use = [{ backend = "silent", path_prefix = "/upload" }]
backend = "b"
client_timeout = "500ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
[backend.silent]
check = "none"
server_timeout = "500ms"
[[backend.silent.server]]
address = %q
`, hostPort(s), silent.Addr))

	t.Run("client stops reading the response", func(t *testing.T) {
		rc := dialRaw(t, r)
		rc.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		t0 := time.Now()
		select {
		case err := <-released:
			if err == nil {
				t.Fatalf("the server wrote all %d bytes to a client that reads nothing", big)
			}
			t.Logf("the server's connection was closed %s after the request (%v)", time.Since(t0).Round(time.Millisecond), err)
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy still holds a client that has read nothing for 10 s (client_timeout 500ms)")
		}
	})
	t.Run("server stops reading the request body", func(t *testing.T) {
		rc := dialRaw(t, r)
		rc.c.SetDeadline(time.Now().Add(10 * time.Second))
		t0 := time.Now()
		werr := make(chan error, 1)
		go func() {
			_, err := io.WriteString(rc.c, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", big))
			if err == nil {
				_, err = rc.c.Write(make([]byte, big))
			}
			werr <- err
		}()
		select {
		case err := <-werr:
			if err == nil {
				t.Fatalf("the proxy took all %d bytes for a server that reads nothing", big)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the proxy still holds a request body for a server that has read nothing for 10 s (server_timeout 500ms)")
			}
			t.Logf("the client's upload was cut %s after it began (%v)", time.Since(t0).Round(time.Millisecond), err)
		case <-time.After(12 * time.Second):
			t.Fatal("no end to the upload after 12 s")
		}
		if served.Load() == 0 {
			t.Error("the silent server never got the request")
		}
	})
}

// readHead reads an HTTP/1.1 head from br, through its blank line, and
// returns it whole.
func readHead(br *bufio.Reader) (string, error) {
	var h strings.Builder
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return h.String(), err
		}
		h.WriteString(l)
		if l == "\r\n" {
			return h.String(), nil
		}
	}
}
