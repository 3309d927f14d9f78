package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
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

// TestShutdownLosesNothingAccepted sends 100k messages over TCP while
// SIGTERM arrives, then checks that every message wharf reports as
// received reached the file sink, in order, with no gap and no duplicate.
func TestShutdownLosesNothingAccepted(t *testing.T) {
	in := start(t, `
[admin]
listen = "{{ADMIN}}"
[global]
shutdown_timeout = "20s"
[frontend.edge]
bind = ["tcp://127.0.0.1:0"]
format = "rfc5424"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
`)
	const n = 100000
	c, err := net.Dial("tcp", in.bind("edge", "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan int, 1)
	go func() {
		w := bufio.NewWriterSize(c, 32<<10)
		i := 0
		for ; i < n; i++ {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - seq=%d", i)
			if _, err := fmt.Fprintf(w, "%d %s", len(m), m); err != nil {
				break
			}
		}
		w.Flush()
		sent <- i
	}()
	// Let part of the stream through, then ask wharf to stop mid-flow.
	in.waitMetric(n/4, 20*time.Second, "wharf_frontend_received_total")
	logs := in.stop()
	c.Close()
	<-sent

	m := regexp.MustCompile(`msg=stopped received=(\d+) sent=(\d+) sink_dropped=(\d+)`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("no totals line in wharf's log:\n%s", logs)
	}
	received, _ := strconv.Atoi(m[1])
	dropped, _ := strconv.Atoi(m[3])
	if received < n/4 {
		t.Fatalf("received %d, want at least %d", received, n/4)
	}
	if dropped != 0 {
		t.Errorf("sinks dropped %d messages during a clean shutdown", dropped)
	}
	lines := readLines(t, filepath.Join(in.dir, "out.log"), received, time.Second)
	if len(lines) != received {
		t.Fatalf("file has %d messages, wharf received %d", len(lines), received)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - seq=%d", i); l != want {
			t.Fatalf("line %d = %q, want %q (gap, reorder or duplicate)", i, l, want)
		}
	}
	t.Logf("received and delivered %d of %d before shutdown", received, n)
}

// TestShutdownWithLossExitsNonZero guards against a lossy stop looking
// clean: SIGTERM with the sink down drops what is queued once
// shutdown_timeout passes, and wharf must exit 3 (not 0), with every
// message it read either delivered or counted with its reason.
func TestShutdownWithLossExitsNonZero(t *testing.T) {
	in := start(t, tcpEdge(0, "down")+fmt.Sprintf(`
[global]
shutdown_timeout = "1s"
[sink.down]
type = "syslog"
servers = ["tcp://%s"]
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "100ms"
`, testenv.ClosedAddr(t)))
	const n = 1000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - seq=%d", i)
	}
	sendTCP(t, in.bind("edge", "tcp"), msgs)
	if got := in.waitMetric(n, 20*time.Second, "wharf_frontend_received_total"); got != n {
		t.Fatalf("received %v of %d", got, n)
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("wharf did not exit within 30s of SIGTERM")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit after dropping queued messages at shutdown: %v, want exit status 3\n%s", err, in.stderr.String())
	}
	logs := in.stderr.String()
	m := regexp.MustCompile(`msg=stopped received=(\d+) sent=(\d+) sink_dropped=(\d+)`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("no totals line in wharf's log:\n%s", logs)
	}
	received, _ := strconv.Atoi(m[1])
	sent, _ := strconv.Atoi(m[2])
	dropped, _ := strconv.Atoi(m[3])
	if received != n || sent+dropped != received {
		t.Fatalf("ledger: received %d, sent %d + dropped %d; want %d = sent + dropped", received, sent, dropped, n)
	}
	if !strings.Contains(logs, "dropped_at_shutdown=") {
		t.Errorf("no dropped_at_shutdown in the log:\n%s", logs)
	}
}
