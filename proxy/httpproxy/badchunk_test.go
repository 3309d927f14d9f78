package httpproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// badChunkServer answers each request with a chunked response whose
// body is malformed: at once, in the same write as the head, for
// /bad-size (a chunk size that is not hex) and /bad-crlf (no CRLF after
// a chunk's data); for /late-bad, a good first chunk, then (100 ms on)
// a bad size.
func badChunkServer(t *testing.T) string {
	return connServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		switch req.URL.Path {
		case "/bad-size":
			io.WriteString(c, head+"zz\r\nhello\r\n0\r\n\r\n")
		case "/bad-crlf":
			io.WriteString(c, head+"5\r\nhelloXX0\r\n\r\n")
		case "/late-bad":
			io.WriteString(c, head+"5\r\nhello\r\n")
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, "zz\r\n")
		}
		time.Sleep(time.Second) // the proxy, not this server, ends the exchange
	})
}

// Regression: a server's chunked answer malformed before any byte of it
// reached the client made wharf close the client connection without an
// answer; HAProxy answers 502. Once bytes went out, closing is all that
// is left (kept).
func TestMalformedChunkedResponse(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		r := engineRig(t, engine, badChunkServer(t), "")
		for i, path := range []string{"/bad-size", "/bad-crlf"} {
			rc := dialRaw(t, r)
			rc.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := rc.read("GET")
			if resp.StatusCode != 502 || !strings.Contains(body, "failed to answer") {
				t.Errorf("%s: %d %q, want 502", path, resp.StatusCode, body)
			}
			if !rc.closed() {
				t.Errorf("%s: client connection open after the 502", path)
			}
			want := float64(i + 1)
			if n := r.metric("wharf_proxy_http_errors_total", "kind", "bad_gateway"); n != want {
				t.Errorf("%s: http_errors_total{kind=bad_gateway} = %v, want %v", path, n, want)
			}
			if n2, n5 := r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "2xx"),
				r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "5xx"); n2 != 0 || n5 != want {
				t.Errorf("%s: requests 2xx = %v, 5xx = %v; want 0, %v (the 200 that never left is not counted)", path, n2, n5, want)
			}
		}

		// The head and the first chunk went out: the connection is cut
		// mid-body, the 200 counted.
		rc := dialRaw(t, r)
		rc.send("GET /late-bad HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil {
			t.Fatalf("/late-bad: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "hello" || err == nil {
			t.Errorf("/late-bad: %d %q, %v; want 200 \"hello\" cut off", resp.StatusCode, body, err)
		}
		if n := r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "2xx"); n != 1 {
			t.Errorf("/late-bad: requests 2xx = %v, want 1", n)
		}
	})
}
