package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestReloadRetiredSinkLossIsLogged guards against a reload silently
// dropping a removed sink's queue: the sink's collector is down with
// 1,000 messages queued, a reload replaces the sink by another name, and
// after shutdown_timeout the 1,000 are counted as dropped and one warning
// names the sink and the count (before: counted, but no log line).
func TestReloadRetiredSinkLossIsLogged(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // a collector that is down: connection refused
	head := "[admin]\nlisten = \"{{ADMIN}}\"\n[global]\nshutdown_timeout = \"1s\"\n[frontend.edge]\nbind = [\"tcp://127.0.0.1:0\"]\n"
	cfgA := head + fmt.Sprintf("sinks = [\"fwd\"]\n[sink.fwd]\ntype = \"syslog\"\nservers = [\"tcp://%s\"]\n", deadAddr)
	in := start(t, cfgA)
	addr := in.bind("edge", "tcp")
	msgs := make([]string, 1000)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-12-06T08:00:00Z h app - - - seq=%d", i)
	}
	sendTCP(t, addr, msgs)
	testenv.Eventually(t, "1,000 read", func() bool { return in.metric("wharf_frontend_received_total") == 1000 })

	cfgB := strings.ReplaceAll(head, "{{ADMIN}}", "127.0.0.1:0") + fmt.Sprintf("sinks = [\"out\"]\n[sink.out]\ntype = \"file\"\npath = %q\n", filepath.Join(in.dir, "out.log"))
	if err := os.WriteFile(filepath.Join(in.dir, "wharf.toml"), []byte(cfgB), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, "http://"+in.admin+"/reload"); code != 200 {
		t.Fatalf("POST /reload = %d: %s", code, body)
	}
	if got := in.waitMetric(1000, 5*time.Second, "wharf_sink_dropped_total", `sink="fwd"`); got != 1000 {
		t.Fatalf("retired sink's dropped = %v, want 1000", got)
	}
	if !in.waitLog(`retired sink did not drain in time`, 3*time.Second) {
		t.Fatalf("1,000 dropped by the retired sink, but no warning in the log:\n%s", in.stderr.String())
	}
	if !strings.Contains(in.stderr.String(), "dropped=1000") {
		t.Fatalf("the warning does not say how many were dropped:\n%s", in.stderr.String())
	}
	in.cmd.Process.Kill()
}
