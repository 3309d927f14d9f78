package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

const bufferedConfig = `
[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["collector"]
[sink.collector]
type = "syslog"
servers = ["tcp://%s"]
dial_timeout = "500ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
[sink.collector.buffer]
dir = "%s"
fsync = "always"
segment_bytes = "256KiB"
max_bytes = "64MiB"
`

// TestDiskBufferSurvivesKillAndCorruption: messages are accepted while the
// downstream collector is unreachable, so they sit in the disk buffer;
// wharf is killed with SIGKILL; one record is corrupted on disk; `wharf
// check` reports it; wharf restarts pointing at a real syslog-ng, and
// every message but the corrupted one arrives, the corruption counted.
func TestDiskBufferSurvivesKillAndCorruption(t *testing.T) {
	collector := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	outDir := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	bufDir := filepath.Join(t.TempDir(), "buf")
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	port := testenv.FreePort(t)
	run := fmt.Sprintf("kill%d", time.Now().UnixNano())

	in := start(t, fmt.Sprintf(bufferedConfig, port, dead, bufDir))
	const n = 20000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s seq=%d", run, i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if got := in.waitMetric(n, 30*time.Second, "wharf_frontend_received_total"); got != n {
		t.Fatalf("received %v of %d", got, n)
	}
	if sent := in.metric("wharf_sink_sent_total"); sent != 0 {
		t.Fatalf("sent %v to a dead collector", sent)
	}
	in.cmd.Process.Kill() // SIGKILL: no drain, no flush
	<-in.exited

	// Corrupt one record in the middle of a middle segment.
	segs, _ := filepath.Glob(filepath.Join(bufDir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("want several segments in %s, found %d", bufDir, len(segs))
	}
	victim := segs[len(segs)/2]
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(victim, data, 0o640); err != nil {
		t.Fatal(err)
	}

	cfg2 := fmt.Sprintf(bufferedConfig, port, collector, bufDir)
	path := filepath.Join(t.TempDir(), "wharf.toml")
	os.WriteFile(path, []byte(strings.ReplaceAll(cfg2, "{{ADMIN}}", "127.0.0.1:1")), 0o644)
	out, err := exec.Command(wharfBin, "check", "-c", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 corrupt regions") {
		t.Errorf("wharf check did not report the corrupt record (err %v):\n%s", err, out)
	}

	in2 := start(t, cfg2)
	got := waitLinesWith(filepath.Join(outDir, "tcp.log"), run, n-1, 60*time.Second)
	seen := map[string]bool{}
	for _, l := range got {
		seen[l] = true
	}
	missing := 0
	for _, m := range msgs {
		if !seen[m] {
			missing++
		}
	}
	if missing != 1 {
		t.Errorf("%d messages missing after kill -9 and one corrupted record, want exactly 1", missing)
	}
	if c := in2.metric("wharf_buffer_corrupt_records_total"); c != 1 {
		t.Errorf("wharf_buffer_corrupt_records_total = %v, want 1", c)
	}
	t.Logf("%d of %d delivered after SIGKILL + restart (%d lines incl. duplicates)", len(seen), n, len(got))
	in2.stop()
}

// TestBufferPendingAcrossRestart guards against
// wharf_buffer_pending_records going negative after a restart on a
// non-empty buffer (#12): it must equal what `wharf check` counts as
// pending after the restart, and reach exactly 0, never below, once the
// collector has taken everything.
func TestBufferPendingAcrossRestart(t *testing.T) {
	collector := testenv.ClosedAddr(t)
	port := testenv.FreePort(t)
	bufDir := filepath.Join(t.TempDir(), "buf")
	cfg := fmt.Sprintf(bufferedConfig, port, collector, bufDir)
	workDir, admin := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, workDir, admin, cfg)
	const n = 5000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - seq=%d", i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if got := in.waitMetric(n, 20*time.Second, "wharf_buffer_pending_records"); got != n {
		t.Fatalf("wharf_buffer_pending_records = %v with %d messages buffered", got, n)
	}
	// Exit 0: what stays in the buffer is not dropped. And at once: the
	// collector is down, so waiting shutdown_timeout (10 s) for it gains
	// nothing while the listeners are closed (a restart during an outage;
	// the stop took 10.1 s before).
	t0 := time.Now()
	in.stop()
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("the stop took %v with the collector down: a buffered sink's records stay on disk, it need not wait out shutdown_timeout", d.Round(time.Millisecond))
	}

	out, err := exec.Command(wharfBin, "check", "-c", filepath.Join(workDir, "wharf.toml")).CombinedOutput()
	m := regexp.MustCompile(`\((\d+) pending\)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("wharf check: %v\n%s", err, out)
	}
	checked, _ := strconv.Atoi(string(m[1]))
	if checked != n {
		t.Fatalf("wharf check counts %d pending, want %d", checked, n)
	}

	in2 := startIn(t, workDir, admin, cfg)
	if got := in2.metric("wharf_buffer_pending_records"); got != float64(checked) {
		t.Fatalf("after a restart wharf_buffer_pending_records = %v, wharf check said %d", got, checked)
	}
	ln, err := net.Listen("tcp", collector)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sink := &lineSink{}
	go sink.serve(ln)
	lowest := float64(checked)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := in2.metric("wharf_buffer_pending_records")
		lowest = min(lowest, p)
		got, _, _ := ledger(sink.snapshot(), "seq=", n)
		if (got == n && p == 0) || time.Now().After(deadline) {
			t.Logf("delivered %d of %d; pending %v; lowest seen %v", got, n, p, lowest)
			if got != n || p != 0 || lowest < 0 {
				t.Fatalf("after draining: delivered %d of %d, wharf_buffer_pending_records = %v (lowest %v), want %d, 0, never below 0", got, n, p, lowest, n)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	in2.stop()
}
