package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestFaultKillUnderLoad kills wharf with SIGKILL while one TCP sender
// streams into a disk-buffered sink to a real syslog-ng, then starts it
// again on the same buffer. TCP delivers in order and the buffer appends
// in order, so everything wharf accepted before the kill is a prefix of
// the stream: the collector must end up with sequence numbers 0..K with
// no gap (duplicates allowed), K at least what had arrived before the kill.
func TestFaultKillUnderLoad(t *testing.T) {
	faultTest(t)
	collector := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	outDir := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	port := testenv.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := tcpEdge(port, "fwd") + fmt.Sprintf(`
[sink.fwd]
type = "syslog"
servers = ["tcp://%s"]
[sink.fwd.buffer]
dir = "{{DIR}}/buf"
fsync = "never"
`, collector)
	in := startIn(t, dir, admin, cfg)
	run := fmt.Sprintf("kill9-%d", time.Now().UnixNano())
	stopped := make(chan int, 1)
	go func() {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			stopped <- 0
			return
		}
		defer c.Close()
		w := bufio.NewWriter(c)
		seq := 0
		for ; seq < 2_000_000; seq++ {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s seq=%d", run, seq)
			if _, err := fmt.Fprintf(w, "%d %s", len(m), m); err != nil {
				break
			}
			if seq%200 == 0 {
				if w.Flush() != nil {
					break
				}
				time.Sleep(10 * time.Millisecond) // ~20k msg/s
			}
		}
		stopped <- seq
	}()
	time.Sleep(2 * time.Second)
	before := collected(t, outDir, run)
	in.cmd.Process.Kill()
	<-in.exited
	attempted := <-stopped
	t.Logf("killed wharf with %d messages at the collector; the sender had written up to seq %d", len(before), attempted)

	in2 := startIn(t, dir, admin, cfg)
	var got map[int]int
	last, stable := -1, 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && stable < 10; {
		got = collected(t, outDir, run)
		if len(got) == last {
			stable++
		} else {
			last, stable = len(got), 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	maxSeq, dups := -1, 0
	for s, n := range got {
		maxSeq = max(maxSeq, s)
		dups += n - 1
	}
	gaps := 0
	for s := 0; s <= maxSeq; s++ {
		if got[s] == 0 {
			gaps++
		}
	}
	t.Logf("after restart: seq 0..%d at the collector, %d gaps, %d duplicates", maxSeq, gaps, dups)
	if gaps > 0 {
		t.Fatalf("%d messages lost across kill -9 (gaps in 0..%d)", gaps, maxSeq)
	}
	if len(got) < len(before) {
		t.Fatalf("fewer messages after the restart (%d) than before the kill (%d)", len(got), len(before))
	}
	in2.stop()
}

// collected reads the collector's file and counts each seq of run.
func collected(t *testing.T, outDir, run string) map[int]int {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(outDir, "tcp.log"))
	got := map[int]int{}
	for _, l := range splitLines(data) {
		if !strings.Contains(l, run) {
			continue
		}
		if n, err := strconv.Atoi(l[strings.LastIndex(l, "seq=")+4:]); err == nil {
			got[n]++
		}
	}
	return got
}
