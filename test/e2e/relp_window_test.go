package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestRELPBigWindowFromRsyslog: with relp_window at its maximum (65536)
// a session's table of unanswered transactions starts small and grows as
// rsyslog's omrelp fills its window of 1024 (ingest's
// TestRELPFullWindowGrows takes one to the whole 65536), while the
// answers go out: every message arrives, acknowledged once, and no
// session is closed for an error.
func TestRELPBigWindowFromRsyslog(t *testing.T) {
	relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
relp_window = 65536
relp_ack = "delivered"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`, relpPort))
	startRsyslogRELP(t, inPort, relpPort, "64k", "")
	run := fmt.Sprintf("big-window-%d", time.Now().UnixNano())
	sendLines(t, fmt.Sprintf("127.0.0.1:%d", inPort), run, relpMessages, 0)
	got := waitAll(t, filepath.Join(in.dir, "out.log"), run, relpMessages, 60*time.Second)
	t.Logf("%d messages from rsyslog with relp_window 65536, %d duplicates", len(got), duplicates(got))
	if acks := in.waitMetric(relpMessages, 10*time.Second, "wharf_relp_acks_sent_total"); acks < relpMessages {
		t.Fatalf("wharf_relp_acks_sent_total = %v, want at least %d", acks, relpMessages)
	}
	if errs := in.metric("wharf_frontend_closed_total", `reason="relp_`); errs != 0 {
		t.Fatalf("%v RELP sessions closed for errors:\n%s", errs, in.stderr.String())
	}
	if d := duplicates(got); d != 0 {
		t.Errorf("%d duplicates (a session broken and resent)", d)
	}
}
