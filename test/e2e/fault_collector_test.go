package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// collectorScript runs test/collector/syslog-ng.sh, keeping the ports the
// running collector has (so wharf's config stays right across a restart).
func collectorScript(t *testing.T, arg string) {
	t.Helper()
	env := os.Environ()
	for _, k := range []string{"TCP", "UDP", "TCP_LF", "TLS", "MTLS"} {
		if v := os.Getenv("WHARF_COLLECTOR_" + k); v != "" {
			_, port, _ := net.SplitHostPort(v)
			name := k
			if k == "TCP_LF" {
				name = "LF"
			}
			env = append(env, "WHARF_COLLECTOR_PORT_"+name+"="+port)
		}
	}
	cmd := exec.Command("bash", "../collector/syslog-ng.sh", arg)
	cmd.Dir = "."
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("syslog-ng.sh %s: %v\n%s", arg, err, out)
	}
}

// lineSink is a second downstream collector: a plain TCP syslog receiver
// (octet counting) that keeps every message.
type lineSink struct {
	mu   sync.Mutex
	msgs []string
}

func (s *lineSink) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReaderSize(c, 64<<10)
			for {
				var n int
				if _, err := fmt.Fscanf(r, "%d ", &n); err != nil {
					return
				}
				b := make([]byte, n)
				if _, err := io.ReadFull(r, b); err != nil {
					return
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, string(b))
				s.mu.Unlock()
			}
		}()
	}
}

// TestFaultCollectorRestart restarts the real syslog-ng collector while
// messages flow over TCP through a disk-buffered syslog sink whose second
// server is another collector: wharf fails over and back, and the two
// collectors together must hold every message (duplicates allowed).
// Plain TCP syslog has no acknowledgements, so what was written into the
// dying collector's socket but never read by it is the one window where a
// loss can happen: the test reports it and allows at most one batch.
func TestFaultCollectorRestart(t *testing.T) {
	faultTest(t)
	primary := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	outDir := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	second := &lineSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go second.serve(ln)

	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "fwd")+fmt.Sprintf(`
[sink.fwd]
type = "syslog"
servers = ["tcp://%s", "tcp://%s"]
dial_timeout = "500ms"
retry_backoff = "50ms"
retry_max_backoff = "500ms"
batch_size = 200
[sink.fwd.buffer]
dir = "{{DIR}}/buf"
`, primary, ln.Addr()))

	run := fmt.Sprintf("restart%d", time.Now().UnixNano())
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	sent := 0
	send := func(k int) {
		for range k {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s seq=%d", run, sent)
			fmt.Fprintf(w, "%d %s", len(m), m)
			sent++
		}
		w.Flush()
	}
	// 20k msg/s in 10 ms steps; the collector is stopped after 2 s and
	// started again 3 s later.
	step := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			send(200)
			time.Sleep(10 * time.Millisecond)
		}
	}
	step(2 * time.Second)
	collectorScript(t, "stop")
	step(3 * time.Second)
	collectorScript(t, "start")
	step(2 * time.Second)
	t.Logf("sent %d", sent)
	in.waitMetric(float64(sent), 30*time.Second, "wharf_sink_sent_total")

	got := map[string]int{}
	testenv.Poll(20*time.Second, func() bool {
		clear(got)
		data, _ := os.ReadFile(filepath.Join(outDir, "tcp.log"))
		for _, l := range splitLines(data) {
			if strings.Contains(l, run) {
				got[l]++
			}
		}
		second.mu.Lock()
		for _, l := range second.msgs {
			got[l]++
		}
		second.mu.Unlock()
		return len(got) >= sent
	})
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	missing := sent - len(got)
	failovers := in.metric("wharf_sink_failovers_total", `sink="fwd"`)
	t.Logf("collectors hold %d of %d distinct messages (%d at the second collector), %d duplicates, %d missing; wharf_sink_failovers_total %v",
		len(got), sent, len(second.msgs), dups, missing, failovers)
	if len(second.msgs) == 0 || failovers < 1 {
		t.Errorf("no failover to the second collector during the outage (failovers %v)", failovers)
	}
	if missing > 200 {
		t.Fatalf("%d messages lost across the collector restart (more than one in-flight batch)", missing)
	}
	in.stop()
}
