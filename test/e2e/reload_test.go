package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

const reloadConfig = `
[admin]
listen = "%s"
[frontend.edge]
bind = [%s]
sinks = ["%s"]
[sink.a]
type = "file"
path = "%s/a.log"
encoding = "raw"
batch_timeout = "2ms"
[sink.b]
type = "file"
path = "%s/b.log"
encoding = "raw"
batch_timeout = "2ms"
`

// TestReloadUnderLoad changes the route of a busy TCP bind and adds a
// bind, by POST /reload and by SIGHUP, while one TCP connection keeps
// sending: the connection survives, nothing is lost, messages after the
// reload go to the new sink, and an invalid config is refused with the
// old one still running.
func TestReloadUnderLoad(t *testing.T) {
	port, port2 := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	write := func(binds, sink string) {
		t.Helper()
		cfg := fmt.Sprintf(reloadConfig, admin, binds, sink, dir, dir)
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bind1 := fmt.Sprintf(`"tcp://127.0.0.1:%d"`, port)
	write(bind1, "a")
	data, _ := os.ReadFile(filepath.Join(dir, "wharf.toml"))
	in := startIn(t, dir, admin, string(data))

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	seq := 0
	send := func(k int) {
		t.Helper()
		for range k {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - seq=%d", seq)
			fmt.Fprintf(w, "%d %s", len(m), m)
			seq++
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("send after %d messages: %v (connection reset by the reload?)", seq, err)
		}
	}
	send(5000)
	in.waitMetric(5000, 10*time.Second, "wharf_sink_sent_total", `sink="a"`)

	// Reload 1 (POST /reload): route to b, add a UDP bind on port2.
	write(bind1+fmt.Sprintf(`, "udp://127.0.0.1:%d"`, port2), "b")
	if code, body := post(t, "http://"+admin+"/reload"); code != 200 {
		t.Fatalf("POST /reload = %d: %s", code, body)
	}
	send(5000)
	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port2))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(u, "<13>1 2026-11-25T10:00:00Z h app - - - via-new-udp-bind")
	u.Close()
	in.waitMetric(5001, 10*time.Second, "wharf_sink_sent_total", `sink="b"`)

	// An invalid config is refused; the running one stays.
	os.WriteFile(filepath.Join(in.dir, "wharf.toml"), []byte("[frontend.edge]\nbind = [\"tcp://127.0.0.1:99999\"]\n"), 0o644)
	if code, body := post(t, "http://"+admin+"/reload"); code != http.StatusBadRequest || !strings.Contains(body, "99999") {
		t.Fatalf("invalid reload = %d %q, want 400 naming the bad port", code, body)
	}
	send(1000)
	in.waitMetric(6001, 10*time.Second, "wharf_sink_sent_total", `sink="b"`)

	// Reload 2 (SIGHUP): back to a, drop the UDP bind.
	write(bind1, "a")
	in.cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, "the SIGHUP reload", func() bool { return in.metric("wharf_config_reloads_total", `result="ok"`) >= 2 })
	send(2000)
	in.waitMetric(7000, 10*time.Second, "wharf_sink_sent_total", `sink="a"`)
	c.Close()
	in.stop()

	a := readLines(t, filepath.Join(dir, "a.log"), 0, 0)
	b := readLines(t, filepath.Join(dir, "b.log"), 0, 0)
	if len(a)+len(b) != seq+1 {
		t.Fatalf("a.log %d + b.log %d lines, sent %d over TCP + 1 over UDP", len(a), len(b), seq)
	}
	// Every TCP message exactly once, across the two files.
	seen := make([]bool, seq)
	for _, l := range append(a, b...) {
		var n int
		if _, err := fmt.Sscanf(l[strings.LastIndex(l, " ")+1:], "seq=%d", &n); err != nil {
			if strings.HasSuffix(l, "via-new-udp-bind") {
				continue
			}
			t.Fatalf("unexpected line %q", l)
		}
		if seen[n] {
			t.Fatalf("seq %d twice", n)
		}
		seen[n] = true
	}
	if len(a) < 7000 || len(b) < 6000 {
		t.Errorf("a.log has %d, b.log %d: the route change did not apply at the reloads", len(a), len(b))
	}
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
