package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestReloadProbesTCPBindOnUDPAddress: a reload adds tcp://ADDR beside the
// running udp://ADDR while another process holds TCP ADDR. The probe took
// every address of the running config for wharf's own, whatever the
// protocol, so it skipped the new TCP bind, the reload applied and the
// bind failed after it ("partial", the new config running without it)
// instead of failing the whole reload with the old config running, as the
// README says of an address another socket holds.
func TestReloadProbesTCPBindOnUDPAddress(t *testing.T) {
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir := t.TempDir()
	cfg := func(binds string) string {
		return fmt.Sprintf("[admin]\nlisten = \"{{ADMIN}}\"\n[frontend.edge]\nbind = [%s]\nsinks = [\"out\"]\n[sink.out]\ntype = \"file\"\npath = %q\nencoding = \"raw\"\nbatch_timeout = \"5ms\"\n",
			binds, filepath.Join(dir, "out.log"))
	}
	in := startIn(t, dir, "127.0.0.1:0", cfg(fmt.Sprintf("%q", "udp://"+addr)))
	other, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	write := func(s string) {
		t.Helper()
		s = strings.ReplaceAll(s, "{{ADMIN}}", in.admin)
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg(fmt.Sprintf("%q, %q", "udp://"+addr, "tcp://"+addr)))
	code, body := post(t, "http://"+in.admin+"/reload")
	failed := in.metric("wharf_config_reloads_total", `result="failed"`)
	partial := in.metric("wharf_config_reloads_total", `result="partial"`)
	t.Logf("POST /reload = %d, failed %v, partial %v: %s", code, failed, partial, strings.SplitN(body, "\n", 2)[0])
	if code != 400 || !strings.Contains(body, "previous config keeps running") || !strings.Contains(body, addr) {
		t.Errorf("POST /reload = %d %q, want 400 saying the previous config keeps running and naming %s", code, body, addr)
	}
	if failed != 1 || partial != 0 {
		t.Errorf("reloads failed = %v, partial = %v; want 1 and 0", failed, partial)
	}

	// Once the other process lets go, the same reload applies.
	other.Close()
	if code, body := post(t, "http://"+in.admin+"/reload"); code != 200 {
		t.Fatalf("POST /reload after the port was freed = %d: %s", code, body)
	}
	sendTCP(t, addr, []string{"<13>1 2026-12-06T10:00:00Z h app - - - over the new tcp bind"})
	if lines := readLines(t, filepath.Join(dir, "out.log"), 1, 5*time.Second); len(lines) != 1 {
		t.Errorf("out.log = %q, want the message sent to the new TCP bind", lines)
	}
	in.stop()
}

// TestReloadPartialCounted provokes a "partial" reload at will: a new
// frontend's bind passes the probe but does not start, because its
// dead-letter file (checked by the config's validation, opened only when
// the bind starts) cannot be opened (immutable, chattr +i). The rest of
// the new config runs: POST /reload says so and
// wharf_config_reloads_total{result="partial"} counts it.
func TestReloadPartialCounted(t *testing.T) {
	chattr := testenv.Tool(t, "chattr")
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead.jsonl")
	if err := os.WriteFile(dead, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(chattr, "+i", dead).CombinedOutput(); err != nil {
		t.Skipf("cannot make %s immutable (needs root and a filesystem with attributes): %v %s", dead, err, out)
	}
	t.Cleanup(func() { exec.Command(chattr, "-i", dead).Run() })
	if f, err := os.OpenFile(dead, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.Close()
		t.Skipf("%s is immutable but opens for writing", dead)
	}
	port, newPort, morePort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	base := fmt.Sprintf("[admin]\nlisten = \"{{ADMIN}}\"\n[frontend.edge]\nbind = [\"tcp://127.0.0.1:%d\"]\nsinks = [\"out\"]\n[sink.out]\ntype = \"file\"\npath = %q\nencoding = \"raw\"\n",
		port, filepath.Join(dir, "out.log"))
	in := startIn(t, dir, "127.0.0.1:0", base)
	next := strings.ReplaceAll(base, "{{ADMIN}}", in.admin) + fmt.Sprintf(`
[frontend.late]
bind = ["tcp://127.0.0.1:%d"]
dead_letter = %q
sinks = ["out"]
[frontend.more]
bind = ["udp://127.0.0.1:%d"]
sinks = ["out"]
`, newPort, dead, morePort)
	if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := post(t, "http://"+in.admin+"/reload")
	partial := in.metric("wharf_config_reloads_total", `result="partial"`)
	t.Logf("POST /reload = %d, partial %v: %s", code, partial, strings.SplitN(body, "\n", 2)[0])
	if code != 400 || !strings.Contains(body, "reload applied, but not all of it") || !strings.Contains(body, "dead.jsonl") {
		t.Errorf("POST /reload = %d %q, want 400 saying the reload applied but not all of it, naming the dead-letter file", code, body)
	}
	if partial != 1 {
		t.Errorf("wharf_config_reloads_total{result=\"partial\"} = %v, want 1", partial)
	}
	if !in.waitLog(fmt.Sprintf("bind=udp://127.0.0.1:%d", morePort), 5*time.Second) {
		t.Errorf("the rest of the new config is not running: frontend more's bind did not open")
	}
	in.stop()
}
