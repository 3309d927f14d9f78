package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Regression: one client address could hold every maxconn slot of an http
// frontend with idle keep-alive connections. With maxconn_per_ip 3,
// 127.0.0.1 holds 3 and 127.0.0.2 is still served.
func TestMaxConnPerIP(t *testing.T) {
	s := reporter(t, "s")
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "s"
maxconn = 6
maxconn_per_ip = 3
[backend.s]
check = "none"
[[backend.s.server]]
address = %q
`, hostPort(s)))
	get := func(src string) (int, error) {
		d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", r.f.Addrs()[0].String())
		if err != nil {
			return 0, err
		}
		t.Cleanup(func() { c.Close() }) // kept alive until the test ends
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	served := 0
	for range 6 {
		if code, err := get("127.0.0.1"); err == nil && code == 200 {
			served++
		}
	}
	if served != 3 {
		t.Fatalf("127.0.0.1 was served on %d connections, want 3 (maxconn_per_ip)", served)
	}
	if n := r.metric("wharf_proxy_frontend_rejected_total", "reason", "maxconn_per_ip"); n != 3 {
		t.Errorf("rejected{maxconn_per_ip} = %v, want 3", n)
	}
	if code, err := get("127.0.0.2"); code != 200 {
		t.Fatalf("127.0.0.2 not served while 127.0.0.1 holds its cap: %d %v", code, err)
	}
}
