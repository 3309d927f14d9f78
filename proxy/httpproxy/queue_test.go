package httpproxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/proxy/internal/proxytest"
)

// holdServer is a server that answers every request at once with 200
// "ok", except GET /hold, which it answers once release is closed; held
// receives when a /hold request has arrived. It counts requests in n.
func holdServer(t *testing.T) (addr string, held chan struct{}, release chan struct{}, n *atomic.Int64) {
	t.Helper()
	held, release, n = make(chan struct{}, 4), make(chan struct{}), new(atomic.Int64)
	addr = connServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			n.Add(1)
			if req.URL.Path == "/hold" {
				held <- struct{}{}
				<-release
			}
			if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
				return
			}
		}
	})
	return addr, held, release, n
}

// client is a raw client connection and a reader over it.
type client struct {
	net.Conn
	br *bufio.Reader
}

// queueHTTPRig runs frontend f (engine) over one holdServer with maxconn
// 1 and the given queue_timeout; a first client's GET /hold fills the
// server, and a second client sends GET /b, which finds it full.
func queueHTTPRig(t *testing.T, engine, queueTimeout string) (r *rig, first, second client, release chan struct{}, n *atomic.Int64) {
	t.Helper()
	addr, held, release, n := holdServer(t)
	r = start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
engine = %q
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
queue_timeout = %q
[[backend.b.server]]
address = %q
maxconn = 1
`, engine, queueTimeout, addr))
	send := func(path string) client {
		c, err := net.Dial("tcp", r.f.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		return client{c, bufio.NewReader(c)}
	}
	first = send("/hold")
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the /hold request did not reach the server")
	}
	second = send("/b")
	return r, first, second, release, n
}

// readAnswer reads one response from c.
func readAnswer(t *testing.T, c client, what string) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatalf("%s: body: %v", what, err)
	}
	return resp.StatusCode, b.String()
}

// Regression: an http request finding every server at maxconn was
// answered 503 at once, where HAProxy queues it (timeout queue) as wharf
// already did for tcp. The second request must wait in the backend's
// queue, then be served when the first one's answer frees the slot.
func TestHTTPMaxConnQueueServedWhenSlotFrees(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		r, first, second, release, n := queueHTTPRig(t, engine, "10s")
		testenv.EventuallyWithin(t, 2*time.Second, "second request queued", func() bool {
			return r.metric("wharf_proxy_backend_queued", "backend", "b") == 1
		})
		// Queued, not answered: nothing arrives.
		second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := second.br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("second request while the server is full: %v, want it to wait (queued)", err)
		}
		second.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got := n.Load(); got != 1 {
			t.Fatalf("server got %d requests beyond its maxconn 1", got)
		}
		close(release)
		if code, body := readAnswer(t, first, "first request"); code != 200 || body != "ok" {
			t.Fatalf("first request: %d %q", code, body)
		}
		freed := time.Now()
		if code, body := readAnswer(t, second, "second request"); code != 200 || body != "ok" {
			t.Fatalf("second request after the slot freed: %d %q, want 200 \"ok\"", code, body)
		}
		if d := time.Since(freed); d > time.Second {
			t.Errorf("second request served %v after the slot freed", d)
		}
		for kind, want := range map[string]float64{"queue_timeout": 0, "queue_full": 0, "no_server": 0} {
			if got := r.metric("wharf_proxy_http_errors_total", "kind", kind); got != want {
				t.Errorf("http_errors_total{kind=%s} = %v, want %v", kind, got, want)
			}
		}
		if q := r.metric("wharf_proxy_backend_queued", "backend", "b"); q != 0 {
			t.Errorf("queued = %v after serving, want 0", q)
		}
	})
}

// The queue is bounded in time: with no slot freeing, the second request
// gets 503 after queue_timeout (HAProxy: 503 after timeout queue),
// counted as http_errors_total{kind="queue_timeout"} and no_server on
// the backend.
func TestHTTPMaxConnQueueTimeout(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		r, first, second, release, n := queueHTTPRig(t, engine, "600ms")
		sent := time.Now()
		code, body := readAnswer(t, second, "second request")
		waited := time.Since(sent)
		if code != 503 || !strings.Contains(body, "queue_timeout") {
			t.Fatalf("second request: %d %q, want 503 naming queue_timeout", code, body)
		}
		if waited < 400*time.Millisecond || waited > 3*time.Second {
			t.Errorf("503 after %v, want about queue_timeout 600ms", waited)
		}
		testenv.EventuallyWithin(t, time.Second, "queue_timeout counted", func() bool {
			return r.metric("wharf_proxy_http_errors_total", "kind", "queue_timeout") == 1 &&
				r.metric("wharf_proxy_backend_no_server_total", "backend", "b") == 1 &&
				r.metric("wharf_proxy_backend_queued", "backend", "b") == 0
		})
		if got := n.Load(); got != 1 {
			t.Errorf("server got %d requests, want 1 (maxconn)", got)
		}
		proxytest.CheckStats(t, r.reg, r.f.Stats(), r.bs)
		close(release)
		if code, body := readAnswer(t, first, "first request"); code != 200 || body != "ok" {
			t.Fatalf("first request: %d %q", code, body)
		}
	})
}
