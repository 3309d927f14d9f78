package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownSenderThatNeverStops guards the bound on the drain: a
// sender that keeps writing after SIGTERM must not hold the stop beyond
// half of shutdown_timeout. wharf reads it for that long, then closes its
// connection, logs a warning naming the bind, and exits; every message it
// read is delivered or counted as dropped.
func TestShutdownSenderThatNeverStops(t *testing.T) {
	const sig = syscall.SIGTERM
	const timeout = 4 * time.Second // shutdown_timeout: the drain gets half
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[global]
shutdown_timeout = "%s"
[frontend.edge]
bind = ["tcp://127.0.0.1:0"]
format = "rfc5424"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
`, timeout))
	addr := in.bind("edge", "tcp")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// wharf never writes to a syslog connection: a read returns only
	// when wharf closes it.
	closed := make(chan time.Time, 1)
	go func() {
		c.Read(make([]byte, 1))
		closed <- time.Now()
	}()
	// The sender: 20 messages every 2 ms (about 10k msg/s, never quiet
	// for drainQuiet), until its write fails, at most 200k messages or
	// 15 s.
	type result struct {
		wrote int
		err   error
	}
	sent := make(chan result, 1)
	go func() {
		w := bufio.NewWriterSize(c, 4<<10)
		deadline := time.Now().Add(15 * time.Second)
		i := 0
		var err error
		for i < 200000 && time.Now().Before(deadline) {
			for range 20 {
				m := fmt.Sprintf("<13>1 2026-12-06T00:00:00Z host app - - - seq=%d", i)
				fmt.Fprintf(w, "%d %s", len(m), m)
				i++
			}
			if err = w.Flush(); err != nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		sent <- result{i, err}
	}()
	in.waitMetric(2000, 10*time.Second, "wharf_frontend_received_total")
	signalled := time.Now()
	in.cmd.Process.Signal(sig)

	var closedAfter time.Duration
	select {
	case at := <-closed:
		closedAfter = at.Sub(signalled)
	case <-time.After(10 * time.Second):
		t.Fatalf("wharf did not close the sender's connection within 10 s of %v:\n%s", sig, in.stderr.String())
	}
	var exitErr error
	select {
	case exitErr = <-in.exited:
	case <-time.After(2 * timeout):
		t.Fatalf("wharf did not exit within %v of %v:\n%s", 2*timeout, sig, in.stderr.String())
	}
	exitedAfter := time.Since(signalled)
	r := <-sent
	logs := in.stderr.String()
	t.Logf("%v: connection closed %v after the signal, wharf exited %v after it (%v); the sender wrote %d (%v)",
		sig, closedAfter.Round(time.Millisecond), exitedAfter.Round(time.Millisecond), exitErr, r.wrote, r.err)

	// The drain's budget is timeout/2 = 2 s; closing the connection takes
	// milliseconds after it.
	if lo, hi := timeout/2-100*time.Millisecond, timeout/2+time.Second; closedAfter < lo || closedAfter > hi {
		t.Errorf("connection closed %v after %v, want within [%v, %v] (half of shutdown_timeout %v)", closedAfter, sig, lo, hi, timeout)
	}
	if r.err == nil {
		t.Errorf("the sender wrote all %d messages without an error: wharf never closed it", r.wrote)
	}
	if exitErr != nil {
		t.Errorf("wharf exited %v, want 0 (the file sink took everything read)", exitErr)
	}
	warn := ""
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "connections still sending when the drain ended") {
			warn = l
		}
	}
	if warn == "" || !strings.Contains(warn, "bind=tcp://"+addr) {
		t.Errorf("no warning naming bind tcp://%s:\n%s", addr, logs)
	}

	m := stoppedLine.FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("no totals line in wharf's log:\n%s", logs)
	}
	received, _ := strconv.Atoi(m[1])
	delivered, _ := strconv.Atoi(m[2])
	dropped, _ := strconv.Atoi(m[3])
	if received == 0 || received != delivered+dropped {
		t.Errorf("ledger: received %d, want = sent %d + dropped %d", received, delivered, dropped)
	}
	if received > r.wrote {
		t.Errorf("received %d, more than the %d written", received, r.wrote)
	}
	if lines := readLines(t, filepath.Join(in.dir, "out.log"), delivered, time.Second); len(lines) != delivered {
		t.Errorf("file has %d lines, wharf counted %d sent", len(lines), delivered)
	}
	var ne net.Error
	if errors.As(r.err, &ne) && ne.Timeout() {
		t.Errorf("the sender's write timed out instead of failing on a closed connection: %v", r.err)
	}
	t.Logf("received %d = sent %d + dropped %d; %d written, %d never read", received, delivered, dropped, r.wrote, r.wrote-received)
}
