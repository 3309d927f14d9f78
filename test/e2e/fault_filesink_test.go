package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestFaultFileSinkDiskFull: the disk under a file sink (the classic
// /var/log/remote) fills up while a TCP sender streams at 5k msg/s.
// Writes fail with ENOSPC: the sink must say so (/readyz 503), hold TCP
// back instead of dropping, and when space is freed (here: a filler file
// deleted, as an operator would) write everything it read exactly once,
// with no torn or repeated lines from the writes that failed halfway.
func TestFaultFileSinkDiskFull(t *testing.T) {
	faultTest(t)
	dir := testenv.Tmpfs(t, "8m")
	filler := filepath.Join(dir, "filler")
	// Leave about 256 KiB free: full after ~4,000 messages.
	if err := os.WriteFile(filler, make([]byte, 8<<20-256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.log")
	port := testenv.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, t.TempDir(), admin, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
format = "rfc5424"
sinks = ["f"]
[sink.f]
type = "file"
path = %q
encoding = "raw"
queue_size = 2000
retry_backoff = "50ms"
retry_max_backoff = "200ms"
`, port, out))
	sent := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", port), 5000, 6*time.Second)
	testenv.Eventually(t, "the file sink to fail on the full disk (/readyz 503)", func() bool {
		return httpStatus(t, "http://"+admin+"/readyz") == 503
	})
	r1 := in.metric("wharf_frontend_received_total")
	time.Sleep(2 * time.Second)
	r2 := in.metric("wharf_frontend_received_total")
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v messages on a full disk, want TCP held back", d)
	}
	t.Logf("disk full at %v read; %v more read in the next 2 s", r1, r2-r1)
	if r2-r1 > 2000+4096 { // the queue, plus one read's worth

		t.Errorf("wharf read %v messages in 2 s while the file sink could not write: not held back", r2-r1)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	n := <-sent
	var lines []string
	testenv.Poll(30*time.Second, func() bool {
		b, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return len(lines) >= n
	})
	received := in.metric("wharf_frontend_received_total")
	seen := map[int]int{}
	bad := 0
	for _, l := range lines {
		i := strings.LastIndex(l, "seq=")
		v, err := strconv.Atoi(l[i+4:])
		if i < 0 || err != nil || !bytes.HasPrefix([]byte(l), []byte("<13>1 ")) {
			bad++
			continue
		}
		seen[v]++
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("sender wrote %d; wharf read %v; file: %d lines, %d distinct, %d repeated, %d torn", n, received, len(lines), len(seen), dups, bad)
	if len(seen) != n || float64(n) != received {
		t.Errorf("%d distinct messages in the file, sender wrote %d, wharf read %v", len(seen), n, received)
	}
	if bad != 0 || dups != 0 {
		t.Errorf("%d torn and %d repeated lines: a write that failed halfway left its part in the file", bad, dups)
	}
	if code := httpStatus(t, "http://"+admin+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d after space was freed", code)
	}
}
