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

const fileConfig = `
[admin]
listen = "{{ADMIN}}"
[frontend.logs]
bind = ["udp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[1]d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/messages.jsonl"
encoding = "json"
batch_timeout = "5ms"
`

// TestLoggerToFile sends with util-linux logger in each format over each
// transport and checks the file sink's JSON record field by field.
func TestLoggerToFile(t *testing.T) {
	logger := testenv.Tool(t, "logger")
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(fileConfig, port))
	out := filepath.Join(in.dir, "messages.jsonl")
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")

	cases := []struct {
		name      string
		args      []string
		transport string
		want      map[string]any
	}{
		{"udp-rfc5424", []string{"-d", "--rfc5424", "--msgid", "ID47", "--sd-id", "ex@32473", "--sd-param", `iut="3"`}, "udp",
			map[string]any{"format": "rfc5424", "msgid": "ID47", "structured_data": `[timeQuality tzKnown="1" isSynced="0"][ex@32473 iut="3"]`}},
		{"udp-rfc3164", []string{"-d", "--rfc3164"}, "udp", map[string]any{"format": "rfc3164"}},
		{"tcp-octet-rfc5424", []string{"-T", "--octet-count", "--rfc5424", "--msgid", "ID48"}, "tcp",
			map[string]any{"format": "rfc5424", "msgid": "ID48"}},
		{"tcp-lf-rfc5424", []string{"-T", "--rfc5424"}, "tcp", map[string]any{"format": "rfc5424"}},
		{"tcp-octet-rfc3164", []string{"-T", "--octet-count", "--rfc3164"}, "tcp", map[string]any{"format": "rfc3164"}},
	}
	for i, c := range cases {
		text := fmt.Sprintf("hello from %s number %d", c.name, i)
		args := append([]string{"-n", "127.0.0.1", "-P", fmt.Sprint(port), "-t", "myapp", "-p", "local3.warning"}, c.args...)
		args = append(args, text)
		if out, err := exec.Command(logger, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: logger %v: %v\n%s", c.name, args, err, out)
		}
		lines := readLines(t, out, i+1, 5*time.Second)
		if len(lines) != i+1 {
			t.Fatalf("%s: file sink has %d lines, want %d:\n%s", c.name, len(lines), i+1, strings.Join(lines, "\n"))
		}
		rec := jsonRecord(t, lines[i])
		want := map[string]any{
			"frontend": "logs", "port": float64(port), "transport": c.transport,
			"priority": float64(19*8 + 4), "facility": float64(19), "severity": float64(4),
			"hostname": host, "app_name": "myapp", "message": text,
		}
		for k, v := range c.want {
			want[k] = v
		}
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("%s: field %s = %#v, want %#v\nrecord: %s", c.name, k, rec[k], v, lines[i])
			}
		}
		if ts, _ := rec["timestamp"].(string); ts == "" {
			t.Errorf("%s: no timestamp in %s", c.name, lines[i])
		}
		if peer, _ := rec["peer"].(string); !strings.HasPrefix(peer, "127.0.0.1:") {
			t.Errorf("%s: peer = %q, want 127.0.0.1:port", c.name, peer)
		}
	}
	if got := in.metric("wharf_frontend_received_total", `frontend="logs"`); got != float64(len(cases)) {
		t.Errorf("wharf_frontend_received_total = %v, want %d", got, len(cases))
	}
	in.stop()
}

// TestNoPriForwardedByDefault guards against the old default on_error =
// "drop": a line without <PRI> (old devices send them) is counted as
// malformed and forwarded, and the JSON record says user.notice was assumed.
func TestNoPriForwardedByDefault(t *testing.T) {
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(fileConfig, port))
	out := filepath.Join(in.dir, "messages.jsonl")
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("%ASA-4-106023: Deny tcp src outside:192.0.2.9/5555")); err != nil {
		t.Fatal(err)
	}
	sendRaw(t, fmt.Sprintf("127.0.0.1:%d", port), "plain line over tcp\n")
	lines := readLines(t, out, 2, 5*time.Second)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want both lines without PRI:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	raws := map[any]bool{}
	for _, l := range lines {
		rec := jsonRecord(t, l)
		raws[rec["raw"]] = true
		if rec["format"] != "raw" || rec["priority"] != float64(13) || rec["facility_name"] != "user" ||
			rec["severity_name"] != "notice" || rec["priority_assumed"] != true {
			t.Errorf("record %s: want format raw, priority 13 user.notice, priority_assumed true", l)
		}
	}
	if !raws["%ASA-4-106023: Deny tcp src outside:192.0.2.9/5555"] || !raws["plain line over tcp"] {
		t.Errorf("raw lines not kept: %v", lines)
	}
	if n := in.metric("wharf_frontend_malformed_total", `reason="no_pri"`); n != 2 {
		t.Errorf("malformed{reason=no_pri} = %v, want 2", n)
	}
	if n := in.metric("wharf_frontend_dropped_total", `reason="parse_error"`); n != 0 {
		t.Errorf("dropped{reason=parse_error} = %v, want 0", n)
	}
	in.stop()
}

// TestMalformedKeepsConnection sends garbage, a bad octet count and an
// oversize frame on one TCP connection between valid messages: the valid
// ones arrive, the bad ones are counted by reason, the connection survives.
func TestMalformedKeepsConnection(t *testing.T) {
	port := testenv.FreePort(t)
	cfg := strings.Replace(fmt.Sprintf(fileConfig, port), `sinks = ["out"]`, "sinks = [\"out\"]\non_error = \"drop\"\nmax_message_size = \"1KiB\"\noversize = \"drop\"\ndead_letter = \"{{DIR}}/dead.jsonl\"", 1)
	in := start(t, cfg)
	out := filepath.Join(in.dir, "messages.jsonl")
	valid := func(n int) string { return fmt.Sprintf("<13>1 2026-11-25T10:00:00Z host app - - - valid %d", n) }
	big := "<13>1 2026-11-25T10:00:00Z host app - - - " + strings.Repeat("x", 2000)
	stream := ""
	stream += fmt.Sprintf("%d %s", len(valid(1)), valid(1))
	stream += "garbage without any framing at all\n" // auto: not a digit, not '<'
	stream += fmt.Sprintf("%d %s", len(valid(2)), valid(2))
	stream += fmt.Sprintf("%d %s", len(big), big) // oversize, dropped
	stream += fmt.Sprintf("%d %s", len(valid(3)), valid(3))
	stream += "<13>1 not-a-timestamp host app - - - bad header\n" // parse error, dropped
	stream += fmt.Sprintf("%d %s", len(valid(4)), valid(4))
	sendRaw(t, fmt.Sprintf("127.0.0.1:%d", port), stream)
	lines := readLines(t, out, 4, 5*time.Second)
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want the 4 valid messages:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		if msg := jsonRecord(t, l)["message"]; msg != fmt.Sprintf("valid %d", i+1) {
			t.Errorf("line %d message = %v, want valid %d", i, msg, i+1)
		}
	}
	if n := in.metric("wharf_frontend_malformed_total", `reason="oversize"`); n != 1 {
		t.Errorf("oversize count = %v, want 1", n)
	}
	// The garbage line and the bad header are dropped, as framing or parse
	// errors depending on how auto framing classifies the garbage.
	pe := in.metric("wharf_frontend_dropped_total", `reason="parse_error"`)
	fe := in.metric("wharf_frontend_dropped_total", `reason="framing_error"`)
	if pe+fe != 2 || pe < 1 {
		t.Errorf("parse_error drops = %v, framing_error drops = %v; want 2 in all, at least the bad header a parse error", pe, fe)
	}
	in.stop()
	// The dead-letter file holds each dropped message's bytes and reason.
	dead := readLines(t, filepath.Join(in.dir, "dead.jsonl"), 3, time.Second)
	reasons := map[string]string{}
	for _, l := range dead {
		rec := jsonRecord(t, l)
		raw, _ := rec["raw"].(string)
		reasons[rec["reason"].(string)] += raw
	}
	if !strings.Contains(reasons["parse_error"], "not-a-timestamp") {
		t.Errorf("dead letters lack the bad header: %v", dead)
	}
	if !strings.Contains(reasons["oversize"], "xxxxxxxx") {
		t.Errorf("dead letters lack the oversize frame: %v", dead)
	}
	if !strings.Contains(reasons["parse_error"]+reasons["framing_error"], "garbage without any framing") {
		t.Errorf("dead letters lack the garbage line: %v", dead)
	}
}
