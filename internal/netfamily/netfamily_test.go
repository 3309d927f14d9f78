package netfamily

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestNetwork(t *testing.T) {
	for _, c := range []struct{ proto, addr, want string }{
		{"tcp", "0.0.0.0:514", "tcp4"},
		{"tcp", "127.0.0.1:514", "tcp4"},
		{"tcp", "[::ffff:10.0.0.1]:514", "tcp4"},
		{"tcp", "[::1]:514", "tcp6"},
		{"tcp", "[::]:514", "tcp"},
		{"tcp", ":514", "tcp"},
		{"tcp", "localhost:514", "tcp"},
		{"udp", "0.0.0.0:514", "udp4"},
		{"udp", "[fe80::1%lo]:514", "udp6"},
		{"tcp", "no-port", "tcp"},
	} {
		if got := Network(c.proto, c.addr); got != c.want {
			t.Errorf("Network(%q, %q) = %q, want %q", c.proto, c.addr, got, c.want)
		}
	}
}

// TestWildcardIPv4LeavesIPv6Free: a listener on 0.0.0.0 opened with
// Network leaves the same port free on [::1], as conf's overlap check
// assumes; Go's plain "tcp" took it (the socket was [::], dual-stack).
func TestWildcardIPv4LeavesIPv6Free(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	v4, err := net.Listen(Network("tcp", "0.0.0.0:0"), "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	if a := v4.Addr().String(); !strings.HasPrefix(a, "0.0.0.0:") {
		t.Errorf("0.0.0.0 listens on %s, want IPv4 only", a)
	}
	v6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		t.Fatalf("0.0.0.0 took the port on IPv6 too: %v", err)
	}
	v6.Close()
}
