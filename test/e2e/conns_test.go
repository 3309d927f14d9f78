package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTenThousandIdleConnections holds 10k idle TCP syslog connections
// (from 25 loopback addresses) and checks that wharf's resident memory
// stays under maxIdleRSS and that the connections still work.
func TestTenThousandIdleConnections(t *testing.T) {
	// About twice what it measured (25.5-26.0 MiB, 3 runs, 2026-12-04 with
	// maxconn_per_ip's per-source map): a regression that doubles the
	// per-connection cost fails, scheduling noise does not.
	const maxIdleRSS = 52 << 20
	const n = 10000
	in := start(t, tcpEdge(0, "out")+`
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
`)
	addr := in.bind("edge", "tcp")
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for len(conns) < n {
		if time.Now().After(deadline) {
			t.Fatalf("opened only %d connections in 60s", len(conns))
		}
		// From 25 source addresses (127.0.0.1-25, 400 each), as 10k
		// senders come from many hosts: one address may hold at most
		// maxconn_per_ip (512 by default).
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+len(conns)%25))}
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: src}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	if got := in.waitMetric(n, 30*time.Second, "wharf_frontend_connections"); got != n {
		t.Fatalf("wharf holds %v connections, want %d", got, n)
	}
	rss := vmRSS(t, in.cmd.Process.Pid)
	t.Logf("wharf RSS with %d idle connections: %.1f MiB", n, float64(rss)/(1<<20))
	if rss > maxIdleRSS {
		t.Errorf("RSS %.1f MiB with %d idle connections, want < %d MiB", float64(rss)/(1<<20), n, maxIdleRSS>>20)
	}
	// The first, the middle and the last connection still deliver.
	for _, i := range []int{0, n / 2, n - 1} {
		m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - from conn %d", i)
		if _, err := fmt.Fprintf(conns[i], "%d %s", len(m), m); err != nil {
			t.Fatal(err)
		}
	}
	lines := readLines(t, filepath.Join(in.dir, "out.log"), 3, 10*time.Second)
	if len(lines) != 3 {
		t.Fatalf("got %d messages over the idle connections, want 3", len(lines))
	}
	in.stop()
}

// vmRSS reads a process's resident set size in bytes from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
