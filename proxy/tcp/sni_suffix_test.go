package tcp

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"wharf/proxy/internal/proxytest"
)

// recordHello returns the ClientHello crypto/tls sends for serverName
// (the handshake itself is abandoned).
func recordHello(t *testing.T, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: serverName}).Handshake()
		c.Close()
	}()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	// A TLS record header, then its body: crypto/tls writes the whole
	// ClientHello as one record.
	hdr := make([]byte, 5)
	if _, err := readFull(s, hdr); err != nil {
		t.Fatalf("ClientHello for %q: %v", serverName, err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := readFull(s, body); err != nil {
		t.Fatalf("ClientHello for %q: %v", serverName, err)
	}
	return append(hdr, body...)
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Regression: HAProxy's `req_ssl_sni -m end .db.example.com` was
// translated to sni = "*.db.example.com", which matches one label only,
// so a.b.db.example.com went to the default backend; ".db.example.com"
// matches any depth (not db.example.com itself, as -m end).
func TestSNISuffixAnyDepth(t *testing.T) {
	db := proxytest.Listen(t, proxytest.Greeter("db"))
	apps := proxytest.Listen(t, proxytest.Greeter("apps"))
	def := proxytest.Listen(t, proxytest.Greeter("default"))
	r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
sni_routing = true
backend = "def"
[[frontend.f.use]]
sni = ".db.example.com"
backend = "db"
[[frontend.f.use]]
sni = "*.apps.example.com"
backend = "apps"
[backend.db]
check = "none"
[[backend.db.server]]
address = %q
[backend.apps]
check = "none"
[[backend.apps.server]]
address = %q
[backend.def]
check = "none"
[[backend.def.server]]
address = %q
`, db.Addr, apps.Addr, def.Addr))
	f := func(serverName, want string) {
		t.Helper()
		c := dial(t, r.addr())
		defer c.Close()
		if _, err := c.Write(recordHello(t, serverName)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if got := strings.TrimSpace(line); got != want {
			t.Errorf("SNI %q went to %q (%v), want %q", serverName, got, err, want)
		}
	}
	f("a.db.example.com", "db")
	f("a.b.db.example.com", "db")
	f("X.Y.Z.DB.Example.Com", "db")
	f("db.example.com", "default") // -m end .db.example.com does not match it
	f("adb.example.com", "default")
	f("a.apps.example.com", "apps")
	f("a.b.apps.example.com", "default") // *. is still one label
}
