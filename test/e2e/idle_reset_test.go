package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestIdleCollectorResetReplayed: 300 messages written to a collector
// that reads none of them and then resets its connection (a crash), with
// no more traffic after. Before, wharf noticed only at the next message
// (the replay of the last batches waited for it), so nothing reached the
// collector started again in its place (audit, with a disk buffer and a
// wharf restart: 0 of 300). Now the idle sink probes its connection every
// 5 s, reconnects and writes the replay: all 300 arrive without another
// message, within 7 s of the reset (the probe interval and a margin).
func TestIdleCollectorResetReplayed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := ln.Addr().String()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`%s
[sink.c]
type = "syslog"
servers = ["tcp://%s"]
dial_timeout = "200ms"
`, tcpEdge(port, "c"), collector))
	var msgs []string
	for i := range 300 {
		msgs = append(msgs, fmt.Sprintf("<13>1 2026-12-06T00:00:00Z h app - - - %s seq=%d", strings.Repeat("x", 100), i))
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	in.waitMetric(300, 10*time.Second, "wharf_sink_sent_total")
	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("wharf never connected to the collector")
	}
	time.Sleep(200 * time.Millisecond) // the batches reach its kernel
	ln.Close()
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // RST: the 300 unread are discarded
	reset := time.Now()

	ln2, err := net.Listen("tcp", collector)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	sink := &lineSink{}
	go sink.serve(ln2)
	// The idle sink probes its connection every checkInterval (5 s), so
	// the replay starts at most 5 s after the reset; within is that plus
	// a margin for the reconnect and the write on a busy machine. The
	// README states the same figure. Polling goes on past it so a late
	// replay is measured, not only failed.
	const within = 7 * time.Second
	var got int
	var took time.Duration
	testenv.Poll(15*time.Second, func() bool {
		got, _, _ = ledger(sink.snapshot(), "seq=", 300)
		took = time.Since(reset)
		return got == 300
	})
	t.Logf("%d of 300 at the collector started again %v after the reset, with no message after it; replays %v",
		got, took.Round(10*time.Millisecond), in.metric("wharf_sink_replays_total"))
	if got != 300 {
		t.Errorf("%d of 300 delivered within %v of the idle collector's reset", got, took.Round(10*time.Millisecond))
	} else if took > within {
		t.Errorf("300 of 300 delivered %v after the idle collector's reset, want within %v", took.Round(10*time.Millisecond), within)
	}
	if r := in.metric("wharf_sink_replays_total", `sink="c"`); r != 1 {
		t.Errorf("wharf_sink_replays_total = %v, want 1", r)
	}
	in.stop()
}
