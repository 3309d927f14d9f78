package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestRsyslogOctetCountedForward: rsyslog forwarding to wharf as most
// sites configure it (omfwd, TCP, TCP_Framing="octet-counted",
// RSYSLOG_SyslogProtocol23Format, whose template ends in a LF that goes
// inside the octet count). Before, that LF stayed in every message: the
// JSON "message" ended in "\n" and a file sink wrote a blank line after
// each (audit). It is trimmed now, as rsyslog does and as wharf did for
// UDP.
func TestRsyslogOctetCountedForward(t *testing.T) {
	rsPort, port := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.jsonl"
encoding = "json"
`, port))
	startRsyslog(t, fmt.Sprintf(`module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
`, rsPort, port), fmt.Sprintf("127.0.0.1:%d", rsPort))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", rsPort))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		fmt.Fprintf(c, "<14>Dec  6 05:10:11 h1 app[7]: via rsyslog %d\n", i)
	}
	c.Close()
	path := filepath.Join(dir, "out.jsonl")
	var lines []string
	testenv.Poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return len(lines) >= 3 && lines[0] != ""
	})
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, no blank ones, got %d: %q", len(lines), lines)
	}
	for i, l := range lines {
		var m struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		// rsyslog's msg keeps the space after "app[7]:", and its template
		// writes it after the structured data's own separator.
		if want := fmt.Sprintf(" via rsyslog %d", i); m.Message != want {
			t.Errorf("message %q, want %q", m.Message, want)
		}
	}
	in.stop()
}
