package e2e

import (
	"bufio"
	"crypto/tls"
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
	"wharf/internal/testpki"
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
// message it read either delivered or counted with its reason: all 1000
// as dropped_at_shutdown, reason shutdown. SIGINT must stop wharf the
// same way as SIGTERM.
func TestShutdownWithLossExitsNonZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { shutdownWithLossExitsNonZero(t, sig) })
	}
}

func shutdownWithLossExitsNonZero(t *testing.T, sig syscall.Signal) {
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
	in.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("wharf did not exit within 30s of %v", sig)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit after dropping queued messages at shutdown (%v): %v, want exit status 3\n%s", sig, err, in.stderr.String())
	}
	logs := in.stderr.String()
	if want := fmt.Sprintf("msg=\"shutting down\" signal=%s", sig); !strings.Contains(logs, want) {
		t.Errorf("no %q in the log:\n%s", want, logs)
	}
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
	// The collector never accepts, so nothing is sent: all n are dropped
	// when shutdown_timeout passes, every one with reason shutdown, and
	// the stop says so (README: "1000 counted as shutdown, exit 3").
	if sent != 0 {
		t.Errorf("sent %d to a closed port", sent)
	}
	if want := fmt.Sprintf(`dropped_at_shutdown=%d sink_dropped_by_reason="shutdown=%d"`, n, n); !strings.Contains(logs, want) {
		t.Errorf("the stopped line does not say %s:\n%s", want, logs)
	}
}

// TestShutdownReadsWhatSendersWrote guards against SIGTERM discarding
// what senders had written to their sockets but wharf had not read yet
// (plain TCP has no acknowledgements: the sender counts it as sent). The
// collector is down, so a small queue fills and the sender's bytes wait
// in the kernel (TCP held back); SIGTERM arrives, then the collector comes
// up within shutdown_timeout. wharf must read what was written before it
// closes the connections (Listener.Drain): every message the sender wrote
// arrives, and the exit status is 0. Before the drain, 4,290 of 20,000
// arrived over tcp:// and wharf still exited 0.
// startHeldBack starts wharf with one syslog frontend on scheme
// (frontendKeys: more keys of it, e.g. TLS) sending to the switched
// collector col, which is down: its small queue (1000) fills and the
// event loops wait in it, so what senders write stays in the kernel.
func startHeldBack(t *testing.T, scheme, frontendKeys string, col *switchedCollector) *instance {
	return start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[global]
shutdown_timeout = "20s"
[frontend.edge]
bind = ["%s://127.0.0.1:0"]
format = "rfc5424"
sinks = ["c"]
%s
[sink.c]
type = "syslog"
servers = ["tcp://%s"]
queue_size = 1000
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
`, scheme, frontendKeys, col.addr))
}

// collectAfterStop brings col up under a wharf that was sent SIGTERM,
// waits for wharf to exit (at most 40 s) and for the collector to hold
// messages seq=0..n-1 (at most 5 s more), and returns how many of them
// it holds, the duplicates, and wharf's exit error.
func collectAfterStop(t *testing.T, in *instance, col *switchedCollector, n int) (got, dups int, exitErr error) {
	t.Helper()
	col.up(t)
	select {
	case exitErr = <-in.exited:
	case <-time.After(40 * time.Second):
		t.Fatal("wharf did not stop within 40 s")
	}
	testenv.Poll(5*time.Second, func() bool {
		got, dups, _ = ledger(col.sink.snapshot(), "seq=", n)
		return got == n
	})
	return got, dups, exitErr
}

func TestShutdownReadsWhatSendersWrote(t *testing.T) {
	for _, scheme := range []string{"tcp", "tls"} {
		t.Run(scheme, func(t *testing.T) { shutdownReadsWhatSendersWrote(t, scheme) })
	}
}

func shutdownReadsWhatSendersWrote(t *testing.T, scheme string) {
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	defer col.down()
	tlsKeys := ""
	ca := testpki.NewCA(t, "drain-ca")
	if scheme == "tls" {
		certFile, keyFile := ca.Issue(t, "wharf", true)
		tlsKeys = fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", certFile, keyFile)
	}
	in := startHeldBack(t, scheme, tlsKeys, col)
	const n = 20000
	var c net.Conn
	var err error
	if scheme == "tls" {
		c, err = tls.Dial("tcp", in.bind("edge", scheme), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	} else {
		c, err = net.Dial("tcp", in.bind("edge", scheme))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for i := range n {
		m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - seq=%d", i)
		fmt.Fprintf(w, "%d %s", len(m), m)
	}
	// All of it is in the kernel's buffers (about 1.2 MB) once Flush
	// returns; the connection stays open, as a sender's would.
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := w.Flush(); err != nil {
		t.Fatalf("writing %d messages: %v", n, err)
	}
	read := in.metric("wharf_frontend_received_total")
	in.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the stop has begun
	got, dups, exitErr := collectAfterStop(t, in, col, n)
	t.Logf("%s: wrote %d; wharf had read %v at SIGTERM; the collector got %d (%d dups); exit %v", scheme, n, read, got, dups, exitErr)
	if got != n {
		t.Errorf("%d of %d messages the sender wrote before SIGTERM arrived: wharf closed the connection with the rest unread", got, n)
	}
	if exitErr != nil {
		t.Errorf("wharf exited %v, want 0 (nothing dropped)", exitErr)
	}
}

// TestShutdownServesConnectionsOpenedUnderBackpressure: two senders fill
// a sink's queue while its collector is down, so both event loops wait
// in the queue (TCP held back); a third sender connects and writes 100
// messages: the kernel and the accept loop accepted it, but no event loop has
// seen it yet. SIGTERM, then the collector comes up. That connection was
// open before the stop began, and what its sender wrote must be read
// like the others', not refused as a new connection.
func TestShutdownServesConnectionsOpenedUnderBackpressure(t *testing.T) {
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	defer col.down()
	in := startHeldBack(t, "tcp", "", col)
	const each, late = 10000, 100
	send := func(from, n int) net.Conn {
		c, err := net.Dial("tcp", in.bind("edge", "tcp"))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(c, 64<<10)
		for i := from; i < from+n; i++ {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - seq=%d", i)
			fmt.Fprintf(w, "%d %s", len(m), m)
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := w.Flush(); err != nil {
			t.Fatalf("writing messages %d..%d: %v", from, from+n-1, err)
		}
		return c
	}
	a := send(0, each)
	defer a.Close()
	b := send(each, each)
	defer b.Close()
	// Both event loops are held back once the queue stays full.
	var read float64
	testenv.Eventually(t, "the queue to fill and reading to stop", func() bool {
		r := in.metric("wharf_frontend_received_total")
		q := in.metric(`wharf_sink_queue_messages{sink="c"}`)
		stable := r == read && q >= 1000
		read = r
		time.Sleep(100 * time.Millisecond)
		return stable
	})
	c := send(2*each, late)
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // accepted by the kernel and gnet
	in.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the stop has begun
	// A connection made after the stop began is refused (the socket is
	// closed), not read: the drain would otherwise never end under
	// senders that reconnect.
	if d, err := net.Dial("tcp", in.bind("edge", "tcp")); err == nil {
		defer d.Close()
		for i := range 10 {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - after-stop=%d", i)
			fmt.Fprintf(d, "%d %s", len(m), m)
		}
	}
	// A load balancer learns of the stop at once (the stop holds the
	// gateway's lock throughout: /readyz must not wait for it).
	if code, body := getBody(t, "http://"+in.admin+"/readyz"); code != 503 || !strings.Contains(body, "stopping") {
		t.Errorf("/readyz during the stop = %d %q, want 503 saying it is stopping", code, body)
	}
	total := 2*each + late
	got, dups, exitErr := collectAfterStop(t, in, col, total)
	n := 0
	for _, m := range col.sink.snapshot() {
		if i := strings.LastIndex(m, "seq="); i >= 0 {
			if v, err := strconv.Atoi(m[i+4:]); err == nil && v >= 2*each {
				n++
			}
		}
	}
	t.Logf("wrote %d (the last %d on a connection opened while the loops were held back); wharf had read %v at SIGTERM; the collector got %d (%d dups), %d of the last %d; exit %v", total, late, read, got, dups, n, late, exitErr)
	if got != total {
		t.Errorf("%d of %d messages arrived", got, total)
	}
	if exitErr != nil {
		t.Errorf("wharf exited %v, want 0", exitErr)
	}
	for _, m := range col.sink.snapshot() {
		if strings.Contains(m, "after-stop=") {
			t.Errorf("a message from a connection made after SIGTERM was read: %q", m)
			break
		}
	}
}
