package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// diskBufferConfig is a TCP + UDP frontend into a syslog sink with a disk
// buffer in dir whose max_bytes (64MiB) is far above what the filesystem
// under it holds: the disk fills up before the buffer does.
func diskBufferConfig(tcpPort, udpPort int, collector, dir string) string {
	return fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d", "udp://127.0.0.1:%d"]
sinks = ["c"]
[sink.c]
type = "syslog"
servers = ["tcp://%s"]
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
[sink.c.buffer]
dir = %q
max_bytes = "64MiB"
`, tcpPort, udpPort, collector, dir)
}

// getBody returns the status and body of a GET.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ledger counts what a lineSink received by numbering key ("seq=", "udp="):
// how many distinct numbers, how many copies beyond the first, and
// whether a number at or over limit (never sent) arrived.
func ledger(msgs []string, key string, limit int) (distinct, dups, foreign int) {
	seen := map[int]int{}
	for _, m := range msgs {
		i := strings.LastIndex(m, key)
		if i < 0 {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(m[i+len(key):]))
		if err != nil || v < 0 || v >= limit {
			foreign++
			continue
		}
		seen[v]++
	}
	for _, c := range seen {
		dups += c - 1
	}
	return len(seen), dups, foreign
}

func (s *lineSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// TestFaultDiskFull guards against a full disk under the buffer losing
// TCP input (#12): a disk buffer on a 2 MiB tmpfs, its collector down,
// a TCP sender at 20k msg/s and some UDP. The disk fills; TCP must be
// held back (nothing dropped), UDP dropped and counted (spool_error),
// /readyz 503 saying why, one log line; when the collector returns the
// buffer drains, frees its space and takes the held-back TCP input; a
// restart replays nothing (the checkpoint was written after all) and new
// traffic flows. Ledger: each message wharf read is delivered or counted
// with its reason, and nothing else arrives.
func TestFaultDiskFull(t *testing.T) {
	faultTest(t)
	bufDir := filepath.Join(testenv.Tmpfs(t, "2m"), "buf")
	collector := testenv.ClosedAddr(t)
	tcpPort, udpPort := testenv.FreePort(t), testenv.FreePort(t)
	cfg := diskBufferConfig(tcpPort, udpPort, collector, bufDir)
	workDir, admin := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, workDir, admin, cfg)

	sent := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", tcpPort), 20000, 12*time.Second)
	// The disk fills within a second or two; then TCP must stall.
	if !testenv.Poll(15*time.Second, func() bool { return in.metric("wharf_buffer_writable") == 0 }) {
		t.Fatalf("wharf_buffer_writable never went to 0 on a 2 MiB disk; received %v", in.metric("wharf_frontend_received_total"))
	}
	r1 := in.metric("wharf_frontend_received_total")
	udp, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	const nUDP = 500
	for i := range nUDP {
		fmt.Fprintf(udp, "<13>1 2026-11-25T10:00:00Z h app - - - udp=%d", i)
		time.Sleep(time.Millisecond)
	}
	udp.Close()
	time.Sleep(3 * time.Second)
	code, body := getBody(t, "http://"+admin+"/readyz")
	if code != 503 || !strings.Contains(body, "cannot be written") || !strings.Contains(body, "no space left on device") {
		t.Errorf("/readyz on a full buffer disk = %d %q, want 503 saying the buffer cannot be written (no space)", code, body)
	}
	r2 := in.metric("wharf_frontend_received_total")
	if tcpDrops := in.metric("wharf_sink_dropped_total") - in.metric("wharf_sink_dropped_total", `reason="spool_error"`); tcpDrops != 0 {
		t.Errorf("dropped %v messages for reasons other than spool_error (UDP) on a full disk", tcpDrops)
	}
	// 4 s at 20k msg/s would be 80k messages: held back, wharf reads about
	// nothing more than the UDP datagrams (and one read's worth).
	if r2-r1 > nUDP+5000 {
		t.Errorf("wharf read %v messages in 4 s while its buffer disk was full: TCP input not held back", r2-r1)
	}
	t.Logf("disk full at %v received; %v more read in the next 4 s; spool_error drops %v", r1, r2-r1, in.metric("wharf_sink_dropped_total", `reason="spool_error"`))

	// The collector comes back.
	ln, err := net.Listen("tcp", collector)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sink := &lineSink{}
	go sink.serve(ln)
	n := <-sent
	var msgs []string
	testenv.Poll(90*time.Second, func() bool {
		msgs = sink.snapshot()
		got, _, _ := ledger(msgs, "seq=", n)
		return got == n
	})
	tcpGot, tcpDups, tcpForeign := ledger(msgs, "seq=", n)
	udpGot, udpDups, udpForeign := ledger(msgs, "udp=", nUDP)
	received := in.metric("wharf_frontend_received_total")
	dropped := in.metric("wharf_sink_dropped_total")
	spoolErr := in.metric("wharf_sink_dropped_total", `reason="spool_error"`)
	t.Logf("sender wrote %d TCP + %d UDP; wharf read %v; delivered %d TCP (%d dups) + %d UDP (%d dups); dropped %v (spool_error %v)",
		n, nUDP, received, tcpGot, tcpDups, udpGot, udpDups, dropped, spoolErr)
	if tcpGot != n {
		t.Errorf("%d of %d TCP messages delivered: TCP input lost to a full disk", tcpGot, n)
	}
	if tcpForeign+udpForeign != 0 {
		t.Errorf("%d messages arrived that were never sent", tcpForeign+udpForeign)
	}
	if float64(tcpGot+udpGot)+dropped != received {
		t.Errorf("ledger: read %v != delivered %d + dropped %v", received, tcpGot+udpGot, dropped)
	}
	if dropped != spoolErr {
		t.Errorf("drops other than UDP's spool_error: %v of %v", dropped-spoolErr, dropped)
	}
	if code := httpStatus(t, "http://"+admin+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d after the disk recovered, want 200", code)
	}
	if w := in.metric("wharf_buffer_writable"); w != 1 {
		t.Errorf("wharf_buffer_writable = %v after recovery", w)
	}
	logs := in.stderr.String()
	if c := strings.Count(logs, "disk buffer cannot be written"); c != 1 {
		t.Errorf("%d 'cannot be written' log lines over one outage, want 1", c)
	}
	if c := strings.Count(logs, "disk buffer can be written again"); c != 1 {
		t.Errorf("%d 'can be written again' log lines, want 1", c)
	}
	if lines := strings.Count(logs, "\n"); lines > 40 {
		t.Errorf("%d log lines over the outage: not rate-limited\n%s", lines, logs)
	}

	// A restart replays nothing and takes new traffic.
	in.stop()
	before := len(sink.snapshot())
	in2 := startIn(t, workDir, admin, cfg)
	time.Sleep(2 * time.Second)
	if after := len(sink.snapshot()); after != before {
		t.Errorf("a restart after recovery delivered %d messages again: the checkpoint was not written", after-before)
	}
	more := make([]string, 1000)
	for i := range more {
		more[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - after=%d", i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", tcpPort), more)
	var got int
	if !testenv.Poll(20*time.Second, func() bool {
		got, _, _ = ledger(sink.snapshot(), "after=", len(more))
		return got == len(more)
	}) {
		t.Fatalf("%d of %d messages sent after the restart delivered", got, len(more))
	}
	if d := in2.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v after the restart", d)
	}
	in2.stop()
}

// TestFaultBufferReadOnly: the filesystem under a disk buffer turns
// read-only the way a failing disk makes ext4 do it (errors=remount-ro)
// while a TCP sender streams at 5k msg/s and some UDP arrives. TCP must
// be held back, UDP dropped and counted (spool_error), /readyz 503 naming
// the read-only filesystem, what was stored still delivered. An ext4 in
// emergency read-only mode only comes back by unmounting it, so wharf is
// stopped (what it read and could not store is counted, reason closed,
// and the exit status says so: 3), the disk remounted and wharf started
// again: the ledger over both runs balances.
func TestFaultBufferReadOnly(t *testing.T) {
	faultTest(t)
	mnt := testenv.Ext4(t, 32<<20)
	bufDir := filepath.Join(mnt, "buf")
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	col.up(t)
	defer col.down()
	tcpPort, udpPort := testenv.FreePort(t), testenv.FreePort(t)
	cfg := diskBufferConfig(tcpPort, udpPort, col.addr, bufDir) + "[global]\nshutdown_timeout = \"2s\"\n"
	cfg = strings.Replace(cfg, `max_bytes = "64MiB"`, "max_bytes = \"16MiB\"\nfsync = \"always\"", 1)
	workDir, admin := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, workDir, admin, cfg)

	sent := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", tcpPort), 5000, 6*time.Second)
	if got := in.waitMetric(5000, 10*time.Second, "wharf_sink_sent_total"); got < 5000 {
		t.Fatalf("only %v delivered before the fault", got)
	}
	testenv.Ext4Error(t, mnt)
	testenv.Eventually(t, "wharf_buffer_writable to go to 0 on a read-only disk", func() bool { return in.metric("wharf_buffer_writable") == 0 })
	udp, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	const nUDP = 200
	for i := range nUDP {
		fmt.Fprintf(udp, "<13>1 2026-11-25T10:00:00Z h app - - - udp=%d", i)
		time.Sleep(time.Millisecond)
	}
	udp.Close()
	r1 := in.metric("wharf_frontend_received_total")
	time.Sleep(2 * time.Second)
	code, body := getBody(t, "http://"+admin+"/readyz")
	if code != 503 || !strings.Contains(body, "read-only file system") {
		t.Errorf("/readyz on a read-only buffer disk = %d %q, want 503 naming the read-only filesystem", code, body)
	}
	var status struct {
		Sinks []struct {
			Sink   string `json:"sink"`
			Ready  bool   `json:"ready"`
			Buffer *struct {
				Dir      string `json:"dir"`
				Writable bool   `json:"writable"`
				Problem  string `json:"problem"`
				Pending  uint64 `json:"pending_records"`
			} `json:"buffer"`
		} `json:"sinks"`
	}
	_, st := getBody(t, "http://"+admin+"/api/status")
	if err := json.Unmarshal([]byte(st), &status); err != nil || len(status.Sinks) != 1 || status.Sinks[0].Ready {
		t.Errorf("/api/status sink row while its buffer disk is read-only (its collector is up): %+v %v, want not ready", status.Sinks, err)
	} else if b := status.Sinks[0].Buffer; b == nil || b.Writable || b.Dir != bufDir || !strings.Contains(b.Problem, "read-only file system") {
		t.Errorf("/api/status buffer of the sink on a read-only disk: %+v, want dir %s, not writable, the problem naming the read-only filesystem", b, bufDir)
	}
	if r2 := in.metric("wharf_frontend_received_total"); r2-r1 > 5000 {
		t.Errorf("wharf read %v messages in 2 s on a read-only buffer disk: TCP not held back", r2-r1)
	}
	if other := in.metric("wharf_sink_dropped_total") - in.metric("wharf_sink_dropped_total", `reason="spool_error"`); other != 0 {
		t.Errorf("%v drops other than spool_error (UDP) while read-only", other)
	}
	stored := in.metric("wharf_sink_sent_total")
	spoolErr := in.metric("wharf_sink_dropped_total", `reason="spool_error"`)

	// Stop: what wharf read but could not store is counted (closed).
	in.cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("wharf did not stop within 30 s")
	}
	received := in.metric0(t, "received")
	dropped := in.metric0(t, "sink_dropped")
	var ee *exec.ExitError
	if lost := in.metric0(t, "dropped_at_shutdown"); lost > 0 && (!errors.As(exitErr, &ee) || ee.ExitCode() != 3) {
		t.Errorf("stop dropped %v accepted messages but exited %v, want status 3", lost, exitErr)
	}
	n := <-sent

	testenv.Ext4Remount(t, mnt)
	in2 := startIn(t, workDir, admin, cfg)
	var msgs []string
	testenv.Poll(60*time.Second, func() bool {
		msgs = col.sink.snapshot()
		tcpGot, _, _ := ledger(msgs, "seq=", n)
		udpGot, _, _ := ledger(msgs, "udp=", nUDP)
		return float64(tcpGot+udpGot)+dropped >= received
	})
	tcpGot, tcpDups, tcpForeign := ledger(msgs, "seq=", n)
	udpGot, _, udpForeign := ledger(msgs, "udp=", nUDP)
	reasons, _ := testenv.LogAttr(in.stderr.String(), "stopped", "sink_dropped_by_reason")
	t.Logf("sender wrote %d TCP + %d UDP; first run read %v, delivered %v before the stop, dropped %v (spool_error %v, at shutdown %v; by reason %s; exit %v); after remount and restart: %d TCP (%d dups) + %d UDP delivered in all",
		n, nUDP, received, stored, dropped, spoolErr, in.metric0(t, "dropped_at_shutdown"), reasons, exitErr, tcpGot, tcpDups, udpGot)
	if atShutdown := in.metric0(t, "dropped_at_shutdown"); dropped != spoolErr+atShutdown {
		t.Errorf("dropped %v, want UDP's spool_error %v + at shutdown %v only (by reason %s)", dropped, spoolErr, atShutdown, reasons)
	}
	if float64(tcpGot+udpGot)+dropped != received || tcpForeign+udpForeign != 0 {
		t.Errorf("ledger: read %v != delivered %d + counted %v (%d never sent)", received, tcpGot+udpGot, dropped, tcpForeign+udpForeign)
	}
	in2.stop()
}

// metric0 reads a field of the "stopped" totals line of a stopped wharf.
func (in *instance) metric0(t *testing.T, field string) float64 {
	t.Helper()
	m := regexp.MustCompile(`msg=stopped .*\b` + field + `=(\d+)`).FindStringSubmatch(in.stderr.String())
	if m == nil {
		t.Fatalf("no %s in wharf's totals line:\n%s", field, in.stderr.String())
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestFaultBufferReadOnlyAtStart: wharf restarts while its buffer's
// filesystem is read-only (remounted so by an operator or a disk error
// before the restart), with a backlog in the buffer. It must start (it
// refused to, exit 2, taking every other frontend down with it), say
// why in /readyz, deliver the backlog from the read-only disk, hold TCP
// input back and count UDP input as spool_error, and carry on by itself
// once the filesystem is writable again.
func TestFaultBufferReadOnlyAtStart(t *testing.T) {
	faultTest(t)
	mnt := testenv.Ext4(t, 32<<20)
	bufDir := filepath.Join(mnt, "buf")
	col := &switchedCollector{addr: testenv.ClosedAddr(t)} // down: the messages stay buffered
	defer col.down()
	tcpPort, udpPort := testenv.FreePort(t), testenv.FreePort(t)
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort)
	cfg := diskBufferConfig(tcpPort, udpPort, col.addr, bufDir) + "[global]\nshutdown_timeout = \"2s\"\n"
	workDir, admin := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, workDir, admin, cfg)
	n := <-pacedSender(t, tcpAddr, 2000, time.Second)
	if got := in.waitMetric(float64(n), 10*time.Second, "wharf_buffer_pending_records"); got < float64(n) {
		t.Fatalf("%v of %d buffered", got, n)
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		if err != nil {
			t.Fatalf("first run exited %v, want 0 (the backlog stays in the buffer)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("wharf did not stop within 30 s")
	}

	testenv.RemountMode(t, mnt, "ro")
	in2 := startIn(t, workDir, admin, cfg) // fails the test if wharf does not start
	if code, body := getBody(t, "http://"+admin+"/readyz"); code != 503 || !strings.Contains(body, "read-only file system") {
		t.Errorf("/readyz with the buffer on a read-only filesystem = %d %q, want 503 naming it", code, body)
	}
	col.up(t)
	testenv.Eventually(t, "the backlog to be delivered from the read-only disk", func() bool {
		got, _, _ := ledger(col.sink.snapshot(), "seq=", n)
		return got == n
	})
	// New input while read-only: TCP waits, UDP is counted.
	const late, nUDP = 500, 50
	c, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	for i := range late {
		m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - late=%d", i)
		fmt.Fprintf(w, "%d %s", len(m), m)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	udp, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	for i := range nUDP {
		fmt.Fprintf(udp, "<13>1 2026-11-25T10:00:00Z h app - - - udp=%d", i)
		time.Sleep(time.Millisecond)
	}
	udp.Close()
	testenv.Eventually(t, "the UDP messages to be counted as spool_error", func() bool {
		return in2.metric("wharf_sink_dropped_total", `reason="spool_error"`) == nUDP
	})
	time.Sleep(time.Second)
	if got, _, _ := ledger(col.sink.snapshot(), "late=", late); got != 0 {
		t.Errorf("%d TCP messages delivered while the buffer could not store them (want them held back)", got)
	}

	testenv.RemountMode(t, mnt, "rw")
	testenv.Eventually(t, "the held-back TCP messages after the filesystem became writable", func() bool {
		got, _, _ := ledger(col.sink.snapshot(), "late=", late)
		return got == late
	})
	testenv.Eventually(t, "/readyz to say ready", func() bool { return httpStatus(t, "http://"+admin+"/readyz") == 200 })
	msgs := col.sink.snapshot()
	seqGot, seqDups, _ := ledger(msgs, "seq=", n)
	lateGot, lateDups, _ := ledger(msgs, "late=", late)
	udpGot, _, _ := ledger(msgs, "udp=", nUDP)
	other := in2.metric("wharf_sink_dropped_total") - in2.metric("wharf_sink_dropped_total", `reason="spool_error"`)
	t.Logf("backlog %d of %d (%d dups) from the read-only disk; held-back TCP %d of %d (%d dups) once writable; UDP %d delivered, %v spool_error; other drops %v",
		seqGot, n, seqDups, lateGot, late, lateDups, udpGot, nUDP, other)
	if udpGot != 0 || other != 0 {
		t.Errorf("UDP delivered %d (want 0: it could not be stored), other drops %v (want 0)", udpGot, other)
	}
}
