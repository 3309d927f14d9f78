package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// holdConns opens n idle TCP connections from src to addr and returns
// them; the caller closes them.
func holdConns(t *testing.T, src, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	deadline := time.Now().Add(30 * time.Second)
	for len(conns) < n {
		if time.Now().After(deadline) {
			t.Fatalf("opened only %d of %d connections in 30s", len(conns), n)
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", len(conns), src, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// closedAtOnce reports whether wharf closes a new connection from src to
// addr within 3 s without the client sending anything.
func closedAtOnce(t *testing.T, src, addr string) bool {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return true // refused before the handshake completed: closed too
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestDefaultMaxConnPerIP holds README's Security promise that
// maxconn_per_ip defaults to 512 on syslog tcp:// and relp:// binds and 1024 on proxy
// frontends, with neither key in the config: one source holds that many
// idle connections, one more is closed at once and counted as
// rejected{reason="maxconn_per_ip"}, and another source still gets in.
func TestDefaultMaxConnPerIP(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer web.Close()
	httpPort := testenv.FreePort(t)
	// header_timeout is raised so the proxy's idle connections outlive
	// the test; maxconn_per_ip is left at its default.
	in := start(t, tcpEdge(0, "out")+fmt.Sprintf(`
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
[frontend.rl]
bind = ["relp://127.0.0.1:0"]
header_timeout = "60s"
sinks = ["out"]
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
header_timeout = "60s"
client_timeout = "60s"
backend = "web"
[backend.web]
check = "none"
server = [{ address = %q, name = "w1" }]
`, httpPort, strings.TrimPrefix(web.URL, "http://")))

	t.Run("syslog tcp 512", func(t *testing.T) {
		addr := in.bind("edge", "tcp")
		holdConns(t, "127.0.0.1", addr, 512)
		if got := in.waitMetric(512, 15*time.Second, "wharf_frontend_connections"); got != 512 {
			t.Fatalf("wharf holds %v connections from 127.0.0.1, want 512 (the default maxconn_per_ip)", got)
		}
		if n := in.metric("wharf_frontend_rejected_total", `reason="maxconn_per_ip"`); n != 0 {
			t.Fatalf("%v maxconn_per_ip rejections for 512 connections, want 0", n)
		}
		if !closedAtOnce(t, "127.0.0.1", addr) {
			t.Error("connection 513 from 127.0.0.1 was not closed at once")
		}
		if n := in.waitMetric(1, 5*time.Second, "wharf_frontend_rejected_total", `reason="maxconn_per_ip"`); n != 1 {
			t.Errorf(`wharf_frontend_rejected_total{reason="maxconn_per_ip"} = %v, want 1`, n)
		}
		// Another source still delivers.
		other := holdConns(t, "127.0.0.2", addr, 1)[0]
		m := "<13>1 2026-12-06T10:00:00Z h app - - - from 127.0.0.2"
		if _, err := fmt.Fprintf(other, "%d %s", len(m), m); err != nil {
			t.Fatal(err)
		}
		if in.waitMetric(1, 5*time.Second, "wharf_sink_sent_total", `sink="out"`) != 1 {
			t.Error("127.0.0.2 could not deliver while 127.0.0.1 held its 512")
		}
	})

	// RELP binds share the default (README); a session that never sends
	// its open is held until header_timeout (raised above).
	t.Run("syslog relp 512", func(t *testing.T) {
		addr := in.bind("rl", "relp")
		holdConns(t, "127.0.0.5", addr, 512)
		if got := in.waitMetric(512, 15*time.Second, "wharf_frontend_connections", `frontend="rl"`); got != 512 {
			t.Fatalf("wharf holds %v RELP connections from 127.0.0.5, want 512 (the default maxconn_per_ip)", got)
		}
		if !closedAtOnce(t, "127.0.0.5", addr) {
			t.Error("RELP connection 513 from 127.0.0.5 was not closed at once")
		}
		if n := in.waitMetric(1, 5*time.Second, "wharf_frontend_rejected_total", `frontend="rl"`, `reason="maxconn_per_ip"`); n != 1 {
			t.Errorf(`wharf_frontend_rejected_total{frontend="rl",reason="maxconn_per_ip"} = %v, want 1`, n)
		}
	})

	t.Run("proxy http 1024", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", httpPort)
		holdConns(t, "127.0.0.3", addr, 1024)
		if got := in.waitMetric(1024, 15*time.Second, "wharf_proxy_frontend_connections_total", `frontend="web"`); got != 1024 {
			t.Fatalf("wharf accepted %v proxy connections from 127.0.0.3, want 1024 (the default maxconn_per_ip)", got)
		}
		if n := in.metric("wharf_proxy_frontend_rejected_total", `frontend="web"`, `reason="maxconn_per_ip"`); n != 0 {
			t.Fatalf("%v maxconn_per_ip rejections for 1024 connections, want 0", n)
		}
		if !closedAtOnce(t, "127.0.0.3", addr) {
			t.Error("connection 1025 from 127.0.0.3 was not closed at once")
		}
		if n := in.waitMetric(1, 5*time.Second, "wharf_proxy_frontend_rejected_total", `frontend="web"`, `reason="maxconn_per_ip"`); n != 1 {
			t.Errorf(`wharf_proxy_frontend_rejected_total{frontend="web",reason="maxconn_per_ip"} = %v, want 1`, n)
		}
		c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).DialContext}}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("127.0.0.4 while 127.0.0.3 holds its 1024: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("127.0.0.4: %d, want 200", resp.StatusCode)
		}
	})
}

// TestAdminHeaderBounds holds README's "A request header is limited
// to 64 KiB and 5 s (431 beyond)" for the admin listener of the real
// binary: a header trickled one byte every 200 ms (never idle) is cut
// after about 5 s, and a 72 KiB header gets 431 while a 60 KiB one is
// served.
func TestAdminHeaderBounds(t *testing.T) {
	in := start(t, tcpEdge(0, "out")+`
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`)
	t.Run("5s", func(t *testing.T) {
		c, err := net.Dial("tcp", in.admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		begin := time.Now()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		closed := make(chan time.Duration, 1)
		go func() {
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			io.Copy(io.Discard, c)
			closed <- time.Since(begin)
		}()
		var took time.Duration
	trickle:
		for range 75 { // 15 s at most
			select {
			case took = <-closed:
				break trickle
			case <-time.After(200 * time.Millisecond):
				c.Write([]byte("a")) // fails once wharf closed; the reader reports it
			}
		}
		if took == 0 {
			t.Fatalf("a header trickled for 15 s is still being read, want it cut after 5 s")
		}
		t.Logf("trickled header cut after %v", took.Round(10*time.Millisecond))
		if took < 4*time.Second || took > 8*time.Second {
			t.Errorf("trickled header cut after %v, want about 5 s", took.Round(10*time.Millisecond))
		}
	})
	t.Run("64KiB", func(t *testing.T) {
		f := func(pad, want int) {
			t.Helper()
			req, _ := http.NewRequest("GET", "http://"+in.admin+"/healthz", nil)
			req.Header.Set("X-Pad", strings.Repeat("a", pad))
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("%d-byte header: %v", pad, err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET /healthz with a %d-byte header: %d, want %d", pad, resp.StatusCode, want)
			}
		}
		f(60<<10, http.StatusOK)
		f(72<<10, http.StatusRequestHeaderFieldsTooLarge)
	})
}
