package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestForwardToSyslogNG relays messages arriving over UDP and TCP to a real
// syslog-ng collector over TCP (octet counting), with a dead first server
// to fail over from, and checks that every message arrived intact.
func TestForwardToSyslogNG(t *testing.T) {
	collector := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	outDir := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "collector")+fmt.Sprintf(`
[sink.collector]
type = "syslog"
servers = ["tcp://%s", "tcp://%s"]
out_framing = "octet-counting"
encoding = "raw"
dial_timeout = "1s"
`, dead, collector))

	run := fmt.Sprintf("run%d", time.Now().UnixNano())
	const n = 5000
	msgs := make([]string, n)
	want := map[string]bool{}
	for i := range msgs {
		// Structured data with escapes and a UTF-8 message body: must
		// arrive byte for byte.
		msgs[i] = fmt.Sprintf(`<165>1 2026-11-25T10:00:00.000001Z relay-%d app 42 ID7 [ex@32473 k="a\"b\]c" run="%s"] grüße %d`, i%3, run, i)
		want[msgs[i]] = true
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if got := in.waitMetric(n, 30*time.Second, "wharf_sink_sent_total", `sink="collector"`); got != n {
		t.Fatalf("sent %v, want %d", got, n)
	}
	got := waitLinesWith(filepath.Join(outDir, "tcp.log"), run, n, 20*time.Second)
	if len(got) != n {
		t.Fatalf("collector wrote %d of our %d messages", len(got), n)
	}
	seen := map[string]bool{}
	for _, l := range got {
		if !want[l] {
			t.Fatalf("collector line not sent by us (altered in transit?): %q", l)
		}
		if seen[l] {
			t.Fatalf("duplicate at the collector: %q", l)
		}
		seen[l] = true
	}
	in.stop()
}
