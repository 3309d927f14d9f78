package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// README promises (Commands, Reload, limits and loss accounting,
// Guarantees) that no other test asserted, found by an audit of the
// README against the tests.

// rawFileOut is sink "out": each message's bytes as received, a line
// each, in {{DIR}}/out.log, written within 2 ms.
const rawFileOut = `[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
batch_timeout = "2ms"
`

// TestOtherDropsLeaveExitStatusAlone holds README "Guarantees, TCP
// input": "Other drops (by policy, queue_full, rejected,
// retries_exhausted, spool_error) are counted by reason and leave the
// exit status alone", and "UDP input ... a datagram lost ... at a full
// sink queue is counted (wharf_sink_dropped_total{reason="queue_full"}),
// never silently gone". UDP datagrams meet a 50-message queue of a sink
// whose collector is down (queue_full), TCP messages a sink that gives up
// after 2 retries (retries_exhausted); then the collector comes up, the
// queue drains, and SIGTERM must exit 0 with every datagram either at the
// collector, counted queue_full, or counted as a kernel drop.
func TestOtherDropsLeaveExitStatusAlone(t *testing.T) {
	col := &switchedCollector{addr: testenv.ClosedAddr(t)} // down
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[global]
shutdown_timeout = "5s"
[frontend.u]
bind = ["udp://127.0.0.1:0"]
format = "rfc5424"
sinks = ["col"]
[frontend.r]
bind = ["tcp://127.0.0.1:0"]
format = "rfc5424"
sinks = ["ret"]
[sink.col]
type = "syslog"
servers = ["tcp://%s"]
queue_size = 50
batch_size = 10
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "100ms"
[sink.ret]
type = "syslog"
servers = ["tcp://%s"]
max_retries = 2
dial_timeout = "200ms"
retry_backoff = "20ms"
retry_max_backoff = "50ms"
`, col.addr, testenv.ClosedAddr(t)))
	defer col.down()

	// UDP: 500 datagrams, paced a little so the kernel keeps them; the
	// queue holds 50, the rest are queue_full.
	const nUDP = 500
	u, err := net.Dial("udp", in.bind("u", "udp"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range nUDP {
		fmt.Fprintf(u, "<13>1 2026-12-06T10:00:00Z host app - - - udp=%d", i)
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	u.Close()
	// TCP: 100 messages to the sink that gives up.
	const nTCP = 100
	msgs := make([]string, nTCP)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-12-06T10:00:00Z host app - - - tcp=%d", i)
	}
	sendTCP(t, in.bind("r", "tcp"), msgs)

	if got := in.waitMetric(nTCP, 30*time.Second, "wharf_sink_dropped_total", `sink="ret"`, `reason="retries_exhausted"`); got != nTCP {
		t.Fatalf(`wharf_sink_dropped_total{sink="ret",reason="retries_exhausted"} = %v, want %d`, got, nTCP)
	}
	// Every datagram the kernel handed over is queued or counted.
	var received, kernel, queueFull float64
	testenv.Poll(10*time.Second, func() bool {
		received = in.metric("wharf_frontend_received_total", `frontend="u"`)
		kernel = in.metric("wharf_frontend_udp_kernel_drops_total", `frontend="u"`)
		queueFull = in.metric("wharf_sink_dropped_total", `sink="col"`, `reason="queue_full"`)
		return received+kernel >= nUDP
	})
	if received+kernel != nUDP {
		t.Fatalf("UDP: received %v + kernel drops %v, want %d sent", received, kernel, nUDP)
	}
	if queueFull == 0 {
		t.Fatalf("UDP: no queue_full drop counted with a 50-message queue, the sink down and %v received", received)
	}

	// The collector comes up; what was queued is delivered.
	col.up(t)
	want := int(received - queueFull)
	var got, dups int
	testenv.Poll(20*time.Second, func() bool {
		got, dups, _ = ledger(col.sink.snapshot(), "udp=", nUDP)
		return got >= want
	})
	if got != want {
		t.Fatalf("UDP ledger: %d at the collector, want received %v - queue_full %v = %d (a datagram silently gone)", got, received, queueFull, want)
	}

	in.cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("wharf did not exit within 30 s of SIGTERM")
	}
	logs := in.stderr.String()
	if exitErr != nil {
		var ee *exec.ExitError
		code := -1
		if errors.As(exitErr, &ee) {
			code = ee.ExitCode()
		}
		t.Errorf("exit status %d after only queue_full and retries_exhausted drops, want 0 (README: they leave the exit status alone)", code)
	}
	if !strings.Contains(logs, "dropped_at_shutdown=0") || !strings.Contains(logs, "dropped_before_stop=0") {
		t.Errorf("the stopped line does not say dropped_before_stop=0 dropped_at_shutdown=0:\n%s", logs)
	}
	m := regexp.MustCompile(`sink_dropped_by_reason="?([a-z_=0-9,]+)`).FindStringSubmatch(logs)
	if m == nil || !strings.Contains(m[1], "queue_full=") || !strings.Contains(m[1], fmt.Sprintf("retries_exhausted=%d", nTCP)) {
		t.Errorf("the stopped line's sink_dropped_by_reason = %v, want queue_full and retries_exhausted=%d", m, nTCP)
	}
	t.Logf("UDP %d sent: %v received, %v kernel drops, %v queue_full, %d delivered (%d duplicates); TCP %d retries_exhausted; exit %v",
		nUDP, received, kernel, queueFull, got, dups, nTCP, exitErr)
}

// TestMetricNamesAndReasonsFromStart holds README "Reload, limits
// and loss accounting": the metric names of its table, and "Every reason
// a bind can count is exported from the start at 0 (as the sink ones
// are) ... RELP binds export their session close reasons at 0 too", and
// the renames under "Metric names changed" (the old names gone, the new
// ones counters). TestMetricsExposition checks six of these reasons; a
// user's alert on any other (or on a family this README names) silently
// matches nothing if it is missing or misnamed.
func TestMetricNamesAndReasonsFromStart(t *testing.T) {
	_, certFile, keyFile := testpki.NewCA(t, "test CA").ServerCert(t, "localhost")
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.ft]
bind = ["tcp://127.0.0.1:0"]
sinks = ["out"]
dead_letter = "{{DIR}}/dead.jsonl"
[frontend.fu]
bind = ["udp://127.0.0.1:0"]
sinks = ["out"]
rate_limit = "1000/s"
[frontend.fs]
bind = ["tls://127.0.0.1:0"]
tls_cert = %q
tls_key = %q
sinks = ["out"]
[frontend.fr]
bind = ["relp://127.0.0.1:0"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
[sink.tpl]
type = "file"
path = "{{DIR}}/{hostname}.log"
[sink.fwd]
type = "syslog"
servers = ["tcp://%s", "relp://%s"]
dial_timeout = "200ms"
[sink.fwd.buffer]
dir = "{{DIR}}/buf"
`, certFile, keyFile, testenv.ClosedAddr(t), testenv.ClosedAddr(t)))
	body := in.scrape()
	var missing []string
	need := func(name string, labels ...string) {
		t.Helper()
		found, v := series(body, name, labels...)
		if !found {
			missing = append(missing, fmt.Sprintf("%s%v", name, labels))
			return
		}
		// Values are 0 at start but for gauges and what the dead servers
		// of sink fwd count already.
		if v != 0 && !strings.HasPrefix(name, "wharf_sink_server_") && name != "wharf_build_info" {
			t.Errorf("%s%v = %v at start, want 0", name, labels, v)
		}
	}

	// Frontend reasons from the README's table, per bind kind that can
	// count them (malformed: only the two not from the framer or parser).
	common := []string{"oversize", "framing_error", "parse_error", "no_route", "route_drop"}
	for _, fe := range []string{"ft", "fu", "fs", "fr"} {
		f := `frontend="` + fe + `"`
		for _, r := range common {
			need("wharf_frontend_dropped_total", f, `reason="`+r+`"`)
		}
		need("wharf_frontend_malformed_total", f, `reason="empty"`)
		need("wharf_frontend_malformed_total", f, `reason="oversize"`)
		need("wharf_frontend_rejected_total", f, `reason="acl"`)
		need("wharf_frontend_received_total", f)
		if fe == "fu" {
			need("wharf_frontend_dropped_total", f, `reason="rate_limit"`)
			need("wharf_frontend_udp_kernel_drops_total", f)
			need("wharf_frontend_rate_limited_total", f, `scope="bind"`)
			need("wharf_frontend_rate_limited_total", f, `scope="ip"`)
			continue
		}
		need("wharf_frontend_dropped_total", f, `reason="incomplete_frame_at_close"`)
		for _, r := range []string{"maxconn", "maxconn_per_ip", "fd_limit"} {
			need("wharf_frontend_rejected_total", f, `reason="`+r+`"`)
		}
		for _, r := range []string{"idle_timeout", "frame_timeout"} {
			need("wharf_frontend_closed_total", f, `reason="`+r+`"`)
		}
	}
	need("wharf_frontend_rejected_total", `frontend="fs"`, `reason="tls_handshake"`)
	for _, r := range []string{"relp_frame", "relp_datalen", "relp_txnr", "relp_sequence", "relp_offer", "relp_not_delivered", "relp_write", "relp_open_timeout"} {
		need("wharf_frontend_closed_total", `frontend="fr"`, `reason="`+r+`"`)
	}
	for _, name := range []string{"wharf_relp_sessions", "wharf_relp_sessions_total", "wharf_relp_window_in_flight", "wharf_relp_acks_sent_total"} {
		need(name, `frontend="fr"`)
	}

	// Sink reasons and families.
	for _, s := range []string{"out", "tpl", "fwd"} {
		l := `sink="` + s + `"`
		for _, r := range []string{"queue_full", "rejected", "retries_exhausted", "shutdown", "closed", "spool_error"} {
			need("wharf_sink_dropped_total", l, `reason="`+r+`"`)
		}
		need("wharf_sink_handed_over_total", l)
	}
	need("wharf_sink_file_opens_total", `sink="tpl"`)
	need("wharf_sink_file_closes_total", `sink="tpl"`, `reason="lru"`)
	need("wharf_sink_file_closes_total", `sink="tpl"`, `reason="idle"`)
	need("wharf_sink_open_files", `sink="tpl"`)
	need("wharf_sink_failovers_total", `sink="fwd"`)
	need("wharf_sink_replays_total", `sink="fwd"`)
	for _, name := range []string{"wharf_sink_server_active", "wharf_sink_server_up", "wharf_sink_server_failures_total"} {
		need(name, `sink="fwd"`, `server="`)
	}
	for _, name := range []string{"wharf_relp_acks_received_total", "wharf_relp_resent_total", "wharf_relp_in_flight"} {
		need(name, `sink="fwd"`)
	}
	for _, name := range []string{"wharf_buffer_bytes", "wharf_buffer_pending_records", "wharf_buffer_corrupt_records_total", "wharf_buffer_torn_tails_total", "wharf_buffer_dropped_full_total", "wharf_buffer_sync_errors_total", "wharf_buffer_lost_records_total"} {
		need(name, `sink="fwd"`)
	}
	need("wharf_deadletter_written_total")
	need("wharf_deadletter_lost_total")
	need("wharf_tap_stalled_total")
	for _, r := range []string{"ok", "invalid", "failed", "partial"} {
		need("wharf_config_reloads_total", `result="`+r+`"`)
	}
	need("wharf_build_info", `version="`, `revision="`, `goversion="`)
	joinLines := func(s []string) string { return strings.Join(s, "\n  ") }
	if len(missing) > 0 {
		t.Errorf("/metrics at start lacks %d series the README names:\n  %s", len(missing), joinLines(missing))
	}

	// "Metric names changed": the old names are gone, the new ones are
	// counters.
	for old, renamed := range map[string]string{
		"wharf_sink_failovers":            "wharf_sink_failovers_total",
		"wharf_frontend_udp_kernel_drops": "wharf_frontend_udp_kernel_drops_total",
		"wharf_buffer_corrupt_records":    "wharf_buffer_corrupt_records_total",
		"wharf_buffer_torn_tails":         "wharf_buffer_torn_tails_total",
		"wharf_buffer_dropped_full":       "wharf_buffer_dropped_full_total",
	} {
		if strings.Contains(body, "# TYPE "+old+" ") || strings.Contains(body, "\n"+old+"{") || strings.Contains(body, "\n"+old+" ") {
			t.Errorf("/metrics still has the old name %s", old)
		}
		if !strings.Contains(body, "# TYPE "+renamed+" counter\n") {
			t.Errorf("/metrics: %s is not of TYPE counter", renamed)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// TestInvalidReloadCounted holds README "Reload, limits and loss
// accounting": "An invalid config is refused with its errors (HTTP 400,
// a log line, wharf_config_reloads_total{result="invalid"}) and the
// running one stays", by POST /reload and by SIGHUP. TestReloadUnderLoad
// checks the 400 only; no test read the counter an alert would use.
func TestInvalidReloadCounted(t *testing.T) {
	in := start(t, tcpEdge(0, "out")+"\n"+rawFileOut)
	addr := in.bind("edge", "tcp")
	cfgPath := filepath.Join(in.dir, "wharf.toml")
	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if v := in.metric("wharf_config_reloads_total", `result="invalid"`); v != 0 {
		t.Fatalf(`wharf_config_reloads_total{result="invalid"} = %v at start`, v)
	}
	// Invalid: a port out of range and an unknown key, reported at once.
	bad := strings.Replace(string(good), `bind = ["tcp://127.0.0.1:0"]`, `bind = ["tcp://127.0.0.1:70000"]`, 1) + "bogus_key = 1\n"
	if err := os.WriteFile(cfgPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := postReload(t, in.admin)
	if code != http.StatusBadRequest || !strings.Contains(body, "70000") || !strings.Contains(body, "bogus_key") {
		t.Errorf("POST /reload of an invalid config = %d %q, want 400 naming both problems", code, body)
	}
	if v := in.metric("wharf_config_reloads_total", `result="invalid"`); v != 1 {
		t.Errorf(`after POST /reload: wharf_config_reloads_total{result="invalid"} = %v, want 1`, v)
	}
	if !in.waitLog(`by="POST /reload"`, 5*time.Second) || !strings.Contains(in.stderr.String(), "previous config keeps running") {
		t.Errorf("no log line for the refused POST /reload:\n%s", in.stderr.String())
	}
	// The same by SIGHUP.
	in.cmd.Process.Signal(syscall.SIGHUP)
	if v := in.waitMetric(2, 10*time.Second, "wharf_config_reloads_total", `result="invalid"`); v != 2 {
		t.Errorf(`after SIGHUP: wharf_config_reloads_total{result="invalid"} = %v, want 2`, v)
	}
	if !in.waitLog(`by=SIGHUP`, 5*time.Second) {
		t.Errorf("no log line for the refused SIGHUP reload:\n%s", in.stderr.String())
	}
	for _, r := range []string{"ok", "failed", "partial"} {
		if v := in.metric("wharf_config_reloads_total", `result="`+r+`"`); v != 0 {
			t.Errorf(`wharf_config_reloads_total{result=%q} = %v, want 0`, r, v)
		}
	}
	// The running config stays: same bind, same sink.
	sendTCP(t, addr, []string{"<13>1 2026-12-06T10:00:00Z host app - - - after-invalid"})
	if lines := readLines(t, filepath.Join(in.dir, "out.log"), 1, 10*time.Second); len(lines) != 1 || !strings.HasSuffix(lines[0], "after-invalid") {
		t.Errorf("out.log after the refused reloads = %q, want the message sent after them", lines)
	}
	in.stop()
}

// TestIncompleteFrameCountedOnTCP holds README "Reload, limits and
// loss accounting": a connection closed at frame_timeout is "counted as
// frame_timeout and incomplete_frame_at_close", and
// wharf_frontend_dropped_total{reason="incomplete_frame_at_close"}
// counts what a tcp:// sender left unfinished when its connection
// closed ("Everything wharf refuses, truncates or drops is counted").
// The ingest tests assert the counter on tls:// and relp:// binds only;
// this is the plain tcp:// (gnet) path, with the real binary: a sender
// that closes mid-frame, and one that stalls mid-frame until
// frame_timeout. The whole messages before each partial frame arrive.
func TestIncompleteFrameCountedOnTCP(t *testing.T) {
	in := start(t, tcpEdge(0, "out")+"\nframe_timeout = \"500ms\"\n"+rawFileOut)
	addr := in.bind("edge", "tcp")
	whole := func(text string) string {
		m := "<13>1 2026-12-06T10:00:00Z host app - - - " + text
		return fmt.Sprintf("%d %s", len(m), m)
	}
	// 1: a whole message, then 30 of a promised 200 bytes, then close.
	sendRaw(t, addr, whole("closer-whole")+"200 <13>1 2026-12-06T10:00:00Z h")
	if got := in.waitMetric(1, 10*time.Second, "wharf_frontend_dropped_total", `reason="incomplete_frame_at_close"`); got != 1 {
		t.Errorf(`after a close mid-frame: dropped{reason="incomplete_frame_at_close"} = %v, want 1`, got)
	}

	// 2: a whole message, then half a frame, and the connection stays
	// open: frame_timeout closes it.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, whole("staller-whole")+"200 <13>1 2026-12-06T10:00:00Z h"); err != nil {
		t.Fatal(err)
	}
	if got := in.waitMetric(1, 10*time.Second, "wharf_frontend_closed_total", `reason="frame_timeout"`); got != 1 {
		t.Errorf(`closed{reason="frame_timeout"} = %v, want 1`, got)
	}
	if got := in.waitMetric(2, 5*time.Second, "wharf_frontend_dropped_total", `reason="incomplete_frame_at_close"`); got != 2 {
		t.Errorf(`after a close at frame_timeout: dropped{reason="incomplete_frame_at_close"} = %v, want 2 (README: counted as frame_timeout and incomplete_frame_at_close)`, got)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the stalled connection is still open after frame_timeout")
	}

	lines := readLines(t, filepath.Join(in.dir, "out.log"), 2, 10*time.Second)
	if len(lines) != 2 || !strings.HasSuffix(lines[0]+lines[1], "-whole") || !strings.Contains(strings.Join(lines, "\n"), "closer-whole") || !strings.Contains(strings.Join(lines, "\n"), "staller-whole") {
		t.Errorf("out.log = %q, want the two whole messages", lines)
	}
	if got := in.metric("wharf_frontend_received_total", `frontend="edge"`); got != 2 {
		t.Errorf("received = %v, want 2 (the partial frames are not messages)", got)
	}
	in.stop()
}
