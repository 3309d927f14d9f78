package e2e

import (
	"fmt"
	"testing"
	"time"

	"wharf/bench/gen"
	"wharf/bench/recv"
	"wharf/internal/testenv"
)

// syslogFailoverSink is a syslog sink to servers a then b with short
// timeouts, so faults show within a test's time.
func syslogFailoverSink(port int, a, b string) string {
	return tcpEdge(port, "fwd") + fmt.Sprintf(`
[sink.fwd]
type = "syslog"
servers = ["tcp://%s", "tcp://%s"]
dial_timeout = "500ms"
write_timeout = "1s"
retry_backoff = "50ms"
retry_max_backoff = "500ms"
batch_size = 500
`, a, b)
}

// TestFaultCollectorStall: the first collector accepts and then stops
// reading (a hung collector: its process alive, its sockets open) for 5 s
// while a sender streams 10k msg/s. wharf's write times out (1 s), it
// fails over to the second collector, and fails back to the first one
// after the 30 s failback interval once it reads again. The ledger must
// balance: every message wharf read is at one of the two collectors.
// What the stalled collector's kernel had accepted before wharf's write
// blocked reaches it only because it resumes; the test reports how much
// that was (a collector that never resumes loses it: plain TCP syslog has
// no acknowledgement).
func TestFaultCollectorStall(t *testing.T) {
	faultTest(t)
	run := gen.NewRunID()
	tr := recv.NewTracker()
	a := newFakeCollector(t, tr, run, 0)
	b := newFakeCollector(t, tr, run, 0)
	port := testenv.FreePort(t)
	in := start(t, syslogFailoverSink(port, a.addr(), b.addr()))
	s := startSender(t, run, 0, []string{fmt.Sprintf("127.0.0.1:%d", port)}, 10000)

	time.Sleep(3 * time.Second)
	a.stalled.Store(true)
	stalledAt := time.Now()
	aBytes := a.bytes.Load()
	deadline := time.Now().Add(20 * time.Second)
	for in.metric("wharf_sink_failovers_total", `sink="fwd"`) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no failover to the second collector 20 s into the stall")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("failover %v after the stall", time.Since(stalledAt).Round(10*time.Millisecond))
	time.Sleep(5*time.Second - time.Since(stalledAt))
	bBytes := b.bytes.Load()
	a.stalled.Store(false)
	time.Sleep(2 * time.Second)
	backlog := a.bytes.Load() - aBytes
	t.Logf("the stalled collector read %d bytes (~%d messages) of backlog from its kernel after it resumed; the second collector had %d bytes",
		backlog, backlog/205, bBytes)
	if bBytes == 0 {
		t.Fatal("nothing reached the second collector during the stall")
	}
	// Failback: FailbackInterval (30 s) after the failover.
	deadline = stalledAt.Add(45 * time.Second)
	for in.metric("wharf_sink_failovers_total", `sink="fwd"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failback to the first collector within 45 s of the stall")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("failed back %v after the stall; the first collector accepted %d connections", time.Since(stalledAt).Round(100*time.Millisecond), a.accepted.Load())
	aAfter := a.bytes.Load()
	time.Sleep(time.Second)
	if a.bytes.Load() == aAfter {
		t.Error("nothing reached the first collector after the failback")
	}
	ledgerCheck(t, []*instance{in}, "fwd", s, 0, tr)
	in.stop()
}

// TestFaultCollectorReset: the collector resets every connection (RST,
// as a crashing process does) after reading 2 MiB of it, mid-batch,
// while a sender streams 20k msg/s for 8 s; wharf reconnects each time
// (one server: a failover would move the traffic away from the resets).
// What the collector had received but not read is discarded by its
// kernel, so wharf must write its last batches (1 MiB, see sinks/syslog
// replayBytes) again on the new connection. The ledger must balance.
func TestFaultCollectorReset(t *testing.T) {
	faultTest(t)
	run := gen.NewRunID()
	tr := recv.NewTracker()
	a := newFakeCollector(t, tr, run, 2<<20)
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "fwd")+fmt.Sprintf(`
[sink.fwd]
type = "syslog"
servers = ["tcp://%s"]
write_timeout = "1s"
retry_backoff = "50ms"
retry_max_backoff = "500ms"
batch_size = 500
`, a.addr()))
	s := startSender(t, run, 0, []string{fmt.Sprintf("127.0.0.1:%d", port)}, 20000)
	time.Sleep(8 * time.Second)
	l, rep := ledgerCheck(t, []*instance{in}, "fwd", s, 0, tr)
	t.Logf("%d resets, %d connections; %d duplicates, %d read",
		a.resets.Load(), a.accepted.Load(), rep.Dups, l.Read)
	if a.resets.Load() < 5 {
		t.Errorf("only %d resets: the test did not exercise what it is for", a.resets.Load())
	}
	in.stop()
}
