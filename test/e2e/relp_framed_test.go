package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestRELPDeliveredToSyslogCollector: rsyslog omrelp -> wharf
// (relp_ack = "delivered") -> a TCP syslog collector. The syslog sink
// over TCP queues bytes, not messages (sinks.Framer), and each RELP
// message's reference travels with its frame until the block is
// written. While the collector is down nothing may be acknowledged to
// rsyslog; once it is up every message arrives and each is
// acknowledged.
func TestRELPDeliveredToSyslogCollector(t *testing.T) {
	const n = 2000
	relpPort, inPort, colPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
relp_ack = "delivered"
sinks = ["col"]
[sink.col]
type = "syslog"
servers = ["tcp://127.0.0.1:%d"]
out_framing = "octet-counting"
`, relpPort, colPort))
	startRsyslogRELP(t, inPort, relpPort, "64k", "")
	run := fmt.Sprintf("relp-framed-%d", time.Now().UnixNano())
	sendLines(t, fmt.Sprintf("127.0.0.1:%d", inPort), run, n, 0)

	// The collector is down: messages arrive and wait in the sink's
	// queue, none acknowledged.
	testenv.Eventually(t, "messages received over RELP", func() bool { return in.metric("wharf_frontend_received_total") > 0 })
	time.Sleep(time.Second)
	if acks := in.metric("wharf_relp_acks_sent_total"); acks != 0 {
		t.Fatalf("%v acknowledged to rsyslog with the collector down", acks)
	}
	received := in.metric("wharf_frontend_received_total")

	col := newTCPCollector(t, fmt.Sprintf("127.0.0.1:%d", colPort))
	got := map[int]int{}
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = map[int]int{}
		for _, m := range col.snapshot() {
			i := strings.Index(m, run+" seq=")
			if i < 0 {
				continue
			}
			var seq int
			if _, err := fmt.Sscanf(m[i+len(run)+5:], "%d", &seq); err == nil {
				got[seq]++
			}
		}
	}
	if len(got) != n {
		t.Fatalf("%d of %d messages at the collector", len(got), n)
	}
	acks := in.waitMetric(n, 10*time.Second, "wharf_relp_acks_sent_total")
	if acks < n {
		t.Fatalf("%v of %d acknowledged to rsyslog after delivery", acks, n)
	}
	t.Logf("%v received while the collector was down, none acknowledged; then all %d delivered (%d duplicates, framing %s), %v acknowledged",
		received, n, duplicates(got), col.framing(), acks)
	in.stop()
}
