package httpproxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestSlowlorisClosedAndCounted guards against slowloris going unseen:
// clients trickling a request head are closed at header_timeout, counted
// as rejected{reason="header_timeout"}, and the server never sees them,
// while another client is served meanwhile. Both engines.
func TestSlowlorisClosedAndCounted(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		var reqs sync.Map
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqs.Store(r.URL.Path, true)
			io.WriteString(w, "ok")
		}))
		defer s.Close()
		r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
engine = %q
bind = ["tcp://127.0.0.1:0"]
backend = "b"
header_timeout = "300ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, engine, hostPort(s)))
		const n = 20
		var wg sync.WaitGroup
		lives := make(chan time.Duration, n)
		for range n {
			wg.Go(func() {
				c, err := net.Dial("tcp", r.f.Addrs()[0].String())
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				t0 := time.Now()
				io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n")
				for time.Since(t0) < 5*time.Second {
					if _, err := io.WriteString(c, "X"); err != nil {
						break
					}
					c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
					if _, err := c.Read(make([]byte, 1)); err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							continue
						}
					}
					break
				}
				lives <- time.Since(t0)
			})
		}
		rc := dialRaw(t, r)
		rc.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("a client beside the slow ones: %d %q", resp.StatusCode, body)
		}
		wg.Wait()
		close(lives)
		for l := range lives {
			if l < 250*time.Millisecond || l > 2*time.Second {
				t.Errorf("a slow client was closed after %s, want header_timeout (300ms)", l)
			}
		}
		if _, ok := reqs.Load("/slow"); ok {
			t.Error("the server saw a request from a slow client")
		}
		if v := r.metric("wharf_proxy_frontend_rejected_total", "frontend", "f", "reason", "header_timeout"); v != n {
			t.Errorf("rejected{reason=header_timeout} = %v, want %d", v, n)
		}
	})
}

// TestTLSHandshakeFailuresCounted guards against slow or failed TLS
// handshakes on an https frontend going unseen: a stalled ClientHello
// is closed at header_timeout, and it and a plaintext client are counted
// as rejected{reason="tls_handshake"}, with http2 on and off.
func TestTLSHandshakeFailuresCounted(t *testing.T) {
	for _, h2 := range []string{"true", "false"} {
		t.Run("http2="+h2, func(t *testing.T) {
			r := startH2(t, h2echo, `header_timeout = "300ms"
http2 = `+h2)
			stalled, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer stalled.Close()
			t0 := time.Now()
			stalled.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a ClientHello begun
			stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := stalled.Read(make([]byte, 1)); err == nil {
				t.Error("a stalled ClientHello got an answer")
			} else if el := time.Since(t0); el < 250*time.Millisecond || el > 2*time.Second {
				t.Errorf("a stalled ClientHello was closed after %s, want header_timeout (300ms)", el)
			}
			plain, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			plain.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, plain)
			time.Sleep(50 * time.Millisecond)
			if v := r.metric("wharf_proxy_frontend_rejected_total", "frontend", "f", "reason", "tls_handshake"); v != 2 {
				t.Errorf("rejected{reason=tls_handshake} = %v, want 2", v)
			}
		})
	}
}

// TestHeaderTimeoutFromConnectionStart guards against a slowloris
// doubling header_timeout: a new connection that waits almost
// header_timeout before its first byte must still finish its head
// within header_timeout of connecting, as the key's documentation says.
// Both engines.
func TestHeaderTimeoutFromConnectionStart(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
engine = %q
bind = ["tcp://127.0.0.1:0"]
backend = "b"
header_timeout = "600ms"
[backend.b]
check = "none"
[[backend.b.server]]
address = "127.0.0.1:1"
`, engine))
		c, err := net.Dial("tcp", r.f.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		t0 := time.Now()
		time.Sleep(450 * time.Millisecond)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1))
		if el := time.Since(t0); el > 900*time.Millisecond {
			t.Errorf("closed %s after connecting, want about header_timeout (600ms)", el.Round(time.Millisecond))
		}
	})
}

// TestTLSHeaderTimeoutFromConnectionStart guards against an https
// slowloris getting header_timeout twice: once for the TLS handshake and
// once more for the request head (HTTP/1.1) or the HTTP/2 preface and
// SETTINGS. A client that finishes its handshake late must still send
// what comes before the first request within header_timeout of
// connecting.
func TestTLSHeaderTimeoutFromConnectionStart(t *testing.T) {
	r := startH2(t, h2echo, `header_timeout = "1s"`)
	f := func(proto, begun string, counted float64) {
		t.Helper()
		raw, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		t0 := time.Now()
		time.Sleep(700 * time.Millisecond)
		c := tls.Client(raw, &tls.Config{RootCAs: r.ca.Pool(), ServerName: "site.example.com", NextProtos: []string{proto}})
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err != nil {
			t.Fatalf("%s: handshake %s after connecting: %v", proto, time.Since(t0).Round(time.Millisecond), err)
		}
		io.WriteString(c, begun)
		io.Copy(io.Discard, c)
		if el := time.Since(t0); el > 1350*time.Millisecond {
			t.Errorf("%s: closed %s after connecting, want about header_timeout (1s)", proto, el.Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
		if v := r.metric("wharf_proxy_frontend_rejected_total", "frontend", "f", "reason", "header_timeout"); v != counted {
			t.Errorf("%s: rejected{reason=header_timeout} = %v, want %v", proto, v, counted)
		}
	}
	f("http/1.1", "GET / HTTP/1.1\r\nHost: x\r\n", 1)
	f("h2", http2.ClientPreface[:10], 1)
}
