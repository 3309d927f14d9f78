package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIPv4WildcardBindIsIPv4Only: tcp://0.0.0.0:P listens on IPv4 only,
// as `wharf check` (conf's overlap rule) and HAProxy's bind lines read
// it, so a second frontend on tcp://[::1]:P starts beside it and each
// gets what is sent to its own address. Before, Go's net.Listen("tcp")
// made the first socket [::]:P, taking IPv6 too: such a config passed
// `wharf check` and failed at start with "address already in use" (here:
// the reload that adds the second frontend was refused), and a bind
// written as IPv4 accepted IPv6 clients.
//
// The first frontend binds port 0 and wharf holds the port it got, so no
// other process can take it before the second frontend asks for it.
func TestIPv4WildcardBindIsIPv4Only(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	const v4 = `
[admin]
listen = "{{ADMIN}}"
[frontend.v4]
bind = ["tcp://0.0.0.0:%d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`
	in := start(t, fmt.Sprintf(v4, 0))
	addr := in.bind("v4", "tcp")
	if !strings.HasPrefix(addr, "0.0.0.0:") {
		t.Fatalf("frontend v4 listens on %s, want 0.0.0.0 (IPv4 only)", addr)
	}
	_, port, _ := net.SplitHostPort(addr)
	// The same config (v4 still on port 0: the running bind is kept)
	// plus a frontend on [::1] and the port v4 holds.
	path := filepath.Join(in.dir, "wharf.toml")
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg = fmt.Appendf(cfg, "[frontend.v6]\nbind = [\"tcp://[::1]:%s\"]\nsinks = [\"out\"]\n", port)
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, "http://"+in.admin+"/reload"); code != 200 {
		t.Fatalf("POST /reload adding tcp://[::1]:%s beside tcp://0.0.0.0:%s = %d: %s", port, port, code, body)
	}
	sendTCP(t, "127.0.0.1:"+port, []string{"<13>1 - - - - - - to v4", "<13>1 - - - - - - to v4 again"})
	sendTCP(t, "[::1]:"+port, []string{"<13>1 - - - - - - to v6"})
	if n := in.waitMetric(2, 10*time.Second, "wharf_frontend_received_total", `frontend="v4"`); n != 2 {
		t.Errorf("frontend v4 received %v, want 2", n)
	}
	if n := in.waitMetric(1, 10*time.Second, "wharf_frontend_received_total", `frontend="v6"`); n != 1 {
		t.Errorf("frontend v6 received %v, want 1", n)
	}
}
