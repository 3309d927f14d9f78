package tcp

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"wharf/proxy/internal/proxytest"
)

// Regression: one client address could hold every maxconn slot of a
// proxy frontend. With maxconn_per_ip 3, 127.0.0.1 holds 3 (the rest are
// refused and counted) while 127.0.0.2 is still served; a trusted proxy
// is not capped.
func TestMaxConnPerIP(t *testing.T) {
	g := proxytest.Listen(t, proxytest.Greeter("g"))
	cfg := func(trusted string) string {
		return fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
maxconn = 6
maxconn_per_ip = 3
trusted_proxies = [%s]
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, trusted, g.Addr)
	}
	r := start(t, cfg(""))
	from := func(src string) (string, error) {
		d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", r.addr())
		if err != nil {
			return "", err
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	served := 0
	for range 6 {
		if l, err := from("127.0.0.1"); err == nil && l == "g\n" {
			served++
		}
	}
	if served != 3 {
		t.Fatalf("127.0.0.1 was served %d connections, want 3 (maxconn_per_ip)", served)
	}
	if n := r.metric("wharf_proxy_frontend_rejected_total", "reason", "maxconn_per_ip"); n != 3 {
		t.Errorf("rejected{maxconn_per_ip} = %v, want 3", n)
	}
	if l, err := from("127.0.0.2"); l != "g\n" {
		t.Fatalf("127.0.0.2 not served while 127.0.0.1 holds its cap: %q %v", l, err)
	}

	// A trusted proxy (a load balancer in front) is not capped.
	r = start(t, cfg(`"127.0.0.1"`))
	for i := range 5 {
		if l, err := from("127.0.0.1"); l != "g\n" {
			t.Fatalf("trusted peer's connection %d: %q %v", i, l, err)
		}
	}
	if n := r.f.sources.Open(netip.MustParseAddr("127.0.0.1")); n != 0 {
		t.Errorf("trusted peer counted: %d", n)
	}
}
