package httpproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"wharf/proxy/internal/proxytest"
)

// BenchmarkRequest sends small GETs over one keep-alive client
// connection through the proxy (which keeps its own pool to the server),
// and straight to the server for comparison.
func BenchmarkRequest(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	defer s.Close()
	r := oneBackend(b, hostPort(s))
	run := func(b *testing.B, url string) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("proxy", func(b *testing.B) { run(b, r.url()+"/") })
	b.Run("direct", func(b *testing.B) { run(b, s.URL+"/") })
}

// rawBackend is a keep-alive HTTP/1.1 server that answers every request
// head with one fixed 128-byte response and allocates nothing per
// request, so allocation counts over loopback are the proxy's alone.
func rawBackend(b testing.TB) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 128\r\n\r\n" + strings.Repeat("x", 127) + "\n")
	s := proxytest.Listen(b, func(c net.Conn) {
		buf := make([]byte, 8192)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			for {
				i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				n = copy(buf, buf[i+4:n])
			}
			if n == len(buf) {
				return
			}
		}
	})
	return s.Addr
}

// rawClient sends one keep-alive GET at a time on c and reads the
// response (Content-Length framed) into buf, allocating nothing.
type rawClient struct {
	c   net.Conn
	req []byte
	buf []byte
}

func (rc *rawClient) do() error {
	if _, err := rc.c.Write(rc.req); err != nil {
		return err
	}
	n := 0
	for {
		m, err := rc.c.Read(rc.buf[n:])
		if err != nil {
			return err
		}
		n += m
		i := bytes.Index(rc.buf[:n], []byte("\r\n\r\n"))
		if i < 0 {
			continue
		}
		j := bytes.Index(rc.buf[:i], []byte("Content-Length: "))
		if j < 0 {
			return fmt.Errorf("no Content-Length in %q", rc.buf[:i])
		}
		cl := 0
		for _, ch := range rc.buf[j+16 : i] {
			if ch < '0' || ch > '9' {
				break
			}
			cl = cl*10 + int(ch-'0')
		}
		if n >= i+4+cl {
			if n != i+4+cl {
				return fmt.Errorf("%d bytes after the response", n-(i+4+cl))
			}
			if !bytes.HasPrefix(rc.buf, []byte("HTTP/1.1 200 ")) {
				return fmt.Errorf("response %q", rc.buf[:i])
			}
			return nil
		}
	}
}

// BenchmarkLoopbackGET is the bench scenario in miniature: keep-alive
// GETs over one raw client connection through the proxy to a server
// that allocates nothing, so allocs/op is the proxy's own.
func BenchmarkLoopbackGET(b *testing.B) {
	r := oneBackend(b, rawBackend(b))
	c, err := net.Dial("tcp", r.f.Addrs()[0].String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rc := &rawClient{c: c, req: []byte("GET / HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"), buf: make([]byte, 4096)}
	b.ReportAllocs()
	b.SetBytes(128)
	for b.Loop() {
		if err := rc.do(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopbackGETParallel: 64 client connections at once, as the
// end-to-end bench's wrk -c64.
func BenchmarkLoopbackGETParallel(b *testing.B) {
	r := oneBackend(b, rawBackend(b))
	b.ReportAllocs()
	b.SetParallelism(32) // 64 connections on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", r.f.Addrs()[0].String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		rc := &rawClient{c: c, req: []byte("GET / HTTP/1.1\r\nHost: bench.example\r\n\r\n"), buf: make([]byte, 4096)}
		for pb.Next() {
			if err := rc.do(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A bodiless keep-alive GET allocates nothing in the proxy once its
// buffers and the server connection exist (client and server here
// allocate nothing either); nor does balance = "source" taking the client
// from a trusted proxy's X-Forwarded-For (sourceIP).
func TestZeroAllocGET(t *testing.T) {
	if testing.Short() {
		t.Skip("loopback allocation count")
	}
	backend := rawBackend(t)
	t.Run("plain", func(t *testing.T) { zeroAllocGET(t, oneBackend(t, backend)) })
	t.Run("source-hash-trusted-xff", func(t *testing.T) {
		toml := strings.Replace(proxytest.OneServer("http", backend), `backend = "b"`, "backend = \"b\"\ntrusted_proxies = [\"127.0.0.0/8\"]", 1)
		zeroAllocGET(t, start(t, strings.Replace(toml, `check = "none"`, "check = \"none\"\nbalance = \"source\"", 1)))
	})
}

func zeroAllocGET(t *testing.T, r *rig) {
	c, err := net.Dial("tcp", r.f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc := &rawClient{c: c, req: []byte("GET /some/path?q=1 HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\nAccept: */*\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"), buf: make([]byte, 4096)}
	for range 100 { // warm up: pools, buffers, timers
		if err := rc.do(); err != nil {
			t.Fatal(err)
		}
	}
	var failed error
	allocs := testing.AllocsPerRun(500, func() {
		if err := rc.do(); err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}
