package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestIPv4WildcardBindIsIPv4Only: tcp://0.0.0.0:P listens on IPv4 only,
// as `wharf check` (conf's overlap rule) and HAProxy's bind lines read
// it, so a second frontend on tcp://[::1]:P starts beside it and each
// gets what is sent to its own address. Before, Go's net.Listen("tcp")
// made the first socket [::]:P, taking IPv6 too: the config passed
// `wharf check` and `wharf run` failed with "address already in use"
// (and a bind written as IPv4 accepted IPv6 clients).
func TestIPv4WildcardBindIsIPv4Only(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.v4]
bind = ["tcp://0.0.0.0:%d"]
sinks = ["out"]
[frontend.v6]
bind = ["tcp://[::1]:%d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`, port, port))
	if got := in.bind("v4", "tcp"); got != fmt.Sprintf("0.0.0.0:%d", port) {
		t.Errorf("frontend v4 listens on %s, want 0.0.0.0:%d (IPv4 only)", got, port)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), []string{"<13>1 - - - - - - to v4", "<13>1 - - - - - - to v4 again"})
	sendTCP(t, fmt.Sprintf("[::1]:%d", port), []string{"<13>1 - - - - - - to v6"})
	if n := in.waitMetric(2, 10*time.Second, "wharf_frontend_received_total", `frontend="v4"`); n != 2 {
		t.Errorf("frontend v4 received %v, want 2", n)
	}
	if n := in.waitMetric(1, 10*time.Second, "wharf_frontend_received_total", `frontend="v6"`); n != 1 {
		t.Errorf("frontend v6 received %v, want 1", n)
	}
}
