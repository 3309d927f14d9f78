package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"wharf/internal/testenv"
)

// TestPortsSurviveFDExhaustion: a connection flood (or a low `ulimit -n`)
// runs wharf out of file descriptors. A connection open before the flood
// must keep delivering; when the flood is over, the syslog and HTTP ports
// must take connections again and lose nothing sent on them. gnet's own
// acceptor shut the whole tcp:// engine down on the first EMFILE: every
// open connection closed and the port refused connections until wharf
// was restarted.
func TestPortsSurviveFDExhaustion(t *testing.T) {
	in := start(t, tcpEdge(0, "out")+`
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
redirect_https = true

[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
`)
	addr := in.bind("edge", "tcp")
	var web string
	for _, line := range strings.Split(in.stderr.String(), "\n") {
		if f, ok := testenv.LogAttr(line, "proxy listening", "frontend"); ok && f == "web" {
			web, _ = testenv.LogAttr(line, "proxy listening", "bind")
		}
	}
	web = strings.TrimPrefix(web, "tcp://")
	veteran, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer veteran.Close()
	pid := in.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Room for about 30 more descriptors.
	lim := unix.Rlimit{Cur: uint64(len(fds) + 30), Max: uint64(len(fds) + 30)}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Skipf("cannot lower wharf's descriptor limit: %v", err)
	}

	// The flood: 200 idle connections to each port, held for a while.
	var flood []net.Conn
	for i := 0; i < 200; i++ {
		for _, a := range []string{addr, web} {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				flood = append(flood, c)
			}
		}
	}
	hit := testenv.Poll(10*time.Second, func() bool {
		return strings.Contains(in.stderr.String(), "too many open files")
	})
	for _, c := range flood {
		c.Close()
	}
	if !hit {
		t.Fatalf("the flood of %d connections did not run wharf out of descriptors", len(flood))
	}
	// The connection from before the flood still delivers.
	if _, err := fmt.Fprintf(veteran, "<13>1 2026-12-05T00:00:00Z host app - - - veteran\n"); err != nil {
		t.Fatalf("the connection opened before the flood: %v", err)
	}
	if got := waitLinesWith(in.dir+"/out.log", "veteran", 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("the message sent on the connection opened before the flood did not arrive")
	}

	// After the flood: the port recovers (the connections of the flood
	// still in the accept queue are taken and closed first), then a
	// sender loses nothing.
	probes := 0
	ok := testenv.Poll(10*time.Second, func() bool {
		probes++
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		fmt.Fprintf(c, "<13>1 2026-12-05T00:00:00Z host app - - - probe %d end\n", probes)
		c.Close()
		return len(waitLinesWith(in.dir+"/out.log", fmt.Sprintf("probe %d end", probes), 1, 500*time.Millisecond)) == 1
	})
	if !ok {
		t.Fatalf("no message sent on the syslog port in the 10s after the flood arrived (%d tries)", probes)
	}
	const n = 1000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-12-05T00:00:00Z host app - - - after the flood %d", i)
	}
	sendTCP(t, addr, msgs)
	if lines := waitLinesWith(in.dir+"/out.log", "after the flood", n, 15*time.Second); len(lines) != n {
		t.Fatalf("%d of %d messages sent after the flood arrived", len(lines), n)
	}
	client := http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get("http://" + web + "/x")
	if err != nil {
		t.Fatalf("the HTTP port after the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("the HTTP port after the flood answered %d, want 301", resp.StatusCode)
	}
	t.Logf("flood: %d connections opened; recovered after %d probes; connections closed for want of a descriptor: %v", len(flood), probes,
		in.metric("wharf_frontend_rejected_total", "reason", "fd_limit"))
}
