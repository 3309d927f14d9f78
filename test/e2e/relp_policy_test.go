package e2e

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestRELPNoRouteAndMalformedFromRsyslog holds the README's "a message
// wharf drops by policy is acknowledged" for the two drops
// TestRELPRouteDropFromRsyslog does not send: no route, and a malformed
// message (no <PRI>) with on_error = "drop". rsyslog omrelp sends 2,000
// routable messages, 20 that match no route and one without a PRI into a
// relp_ack = "delivered" frontend: all 2,000 arrive once and no session is
// closed as not delivered (which would make rsyslog resend forever).
func TestRELPNoRouteAndMalformedFromRsyslog(t *testing.T) {
	relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
relp_ack = "delivered"
on_error = "drop"
[[frontend.relpin.route]]
msg_contains = "KEEP"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`, relpPort))
	// One template for every message, so all go over one RELP session in
	// order: <13> in front of each but the NOPRI one.
	startRsyslog(t, fmt.Sprintf(`
global(workDirectory="DIR" maxMessageSize="64k")
module(load="imtcp")
module(load="omrelp")
template(name="maybepri" type="string"
         string="%%$!pri%%1 %%TIMESTAMP:::date-rfc3339%% %%HOSTNAME%% %%APP-NAME%% %%PROCID%% %%MSGID%% %%STRUCTURED-DATA%% %%msg%%\n")
input(type="imtcp" port="%d" ruleset="fwd")
ruleset(name="fwd") {
  if $msg contains "NOPRI" then { set $!pri = ""; } else { set $!pri = "<13>"; }
  action(type="omrelp" target="127.0.0.1" port="%d" template="maybepri"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, inPort, relpPort), fmt.Sprintf("127.0.0.1:%d", inPort))
	run := fmt.Sprintf("policy-relp-%d", time.Now().UnixNano())
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", inPort))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(c)
	strays := 0
	for seq := range 2000 {
		if seq%100 == 50 {
			fmt.Fprintf(w, "<13>Dec  6 10:00:00 host app: STRAY %s no route takes this\n", run)
			strays++
		}
		if seq == 1000 {
			fmt.Fprintf(w, "<13>Dec  6 10:00:00 host app: NOPRI %s sent without a PRI\n", run)
		}
		fmt.Fprintf(w, "<13>Dec  6 10:00:00 host app: KEEP %s seq=%d\n", run, seq)
	}
	w.Flush()
	c.Close()
	got := waitAll(t, filepath.Join(dir, "out.log"), run, 2000, 30*time.Second)
	noRoute := in.waitMetric(float64(strays), 5*time.Second, "wharf_frontend_dropped_total", `reason="no_route"`)
	parseErr := in.waitMetric(1, 5*time.Second, "wharf_frontend_dropped_total", `reason="parse_error"`)
	noPri := in.metric("wharf_frontend_malformed_total", `reason="no_pri"`)
	notDelivered := in.metric("wharf_frontend_closed_total", `reason="relp_not_delivered"`)
	t.Logf("%d of 2000 arrived, %d duplicates; no_route drops %v, parse_error drops %v, relp_not_delivered closes %v",
		len(got), duplicates(got), noRoute, parseErr, notDelivered)
	if d := duplicates(got); d != 0 {
		t.Errorf("%d duplicates, want none (a session closed and rsyslog resent?)", d)
	}
	if noRoute != float64(strays) || parseErr != 1 || noPri != 1 {
		t.Errorf("dropped no_route = %v (want %d), parse_error = %v (want 1), malformed no_pri = %v (want 1): the policy drops did not happen as sent", noRoute, strays, parseErr, noPri)
	}
	if notDelivered != 0 {
		t.Errorf("relp_not_delivered = %v, want 0", notDelivered)
	}
	in.stop()
}
