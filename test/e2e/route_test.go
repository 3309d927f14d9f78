package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestRouteDropAndContent: logger's messages over UDP and TCP meet routes
// that drop (rsyslog's stop), match MSG text and a regexp, and match
// severity lists, on a frontend whose sinks alone would parse headers
// only (raw encoding). Guards against a content route that sees no MSG
// and against a drop that is not counted.
func TestRouteDropAndContent(t *testing.T) {
	logger := testenv.Tool(t, "logger")
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.logs]
bind = ["udp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[1]d"]
dead_letter = "{{DIR}}/dead.jsonl"
sinks = ["all"]

[[frontend.logs.route]]
app_name = "haproxy"
msg_contains = "GET /healthz"
action = "drop"

[[frontend.logs.route]]
msg_regex = '\b(DENY|REJECT)\b'
severity = ["emerg..err", "warning"]
sinks = ["firewall"]

[sink.all]
type = "file"
path = "{{DIR}}/all.log"
encoding = "raw"
batch_timeout = "5ms"

[sink.firewall]
type = "file"
path = "{{DIR}}/firewall.log"
encoding = "raw"
batch_timeout = "5ms"
`, port))
	send := func(tag, prio, transport, text string) {
		t.Helper()
		args := []string{"-n", "127.0.0.1", "-P", fmt.Sprint(port), "-t", tag, "-p", prio, "--rfc5424", transport, text}
		if out, err := exec.Command(logger, args...).CombinedOutput(); err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	send("haproxy", "local0.info", "-d", `10.0.0.9:5120 "GET /healthz HTTP/1.1" 200`)
	send("haproxy", "local0.info", "-T", `10.0.0.9:5120 "GET /healthz HTTP/1.1" 200`)
	send("haproxy", "local0.info", "-d", `10.0.0.9:5121 "GET /cart HTTP/1.1" 200`)
	send("fw", "local1.warning", "-d", "DENY tcp 192.0.2.1 -> 10.0.0.1:22")
	send("fw", "local1.notice", "-T", "DENY tcp notice is not in the list")
	send("fw", "local1.err", "-T", "REJECT udp 192.0.2.7")

	all := readLines(t, filepath.Join(in.dir, "all.log"), 2, 5*time.Second)
	fw := readLines(t, filepath.Join(in.dir, "firewall.log"), 2, 5*time.Second)
	wantIn := func(name string, lines []string, want ...string) {
		t.Helper()
		if len(lines) != len(want) {
			t.Fatalf("%s has %d lines, want %d:\n%s", name, len(lines), len(want), strings.Join(lines, "\n"))
		}
		// UDP and TCP messages may be written in either order.
		for _, w := range want {
			found := false
			for _, l := range lines {
				found = found || strings.HasSuffix(l, w)
			}
			if !found {
				t.Errorf("%s lacks a line ending in %q:\n%s", name, w, strings.Join(lines, "\n"))
			}
		}
	}
	wantIn("all.log", all, `"GET /cart HTTP/1.1" 200`, "DENY tcp notice is not in the list")
	wantIn("firewall.log", fw, "DENY tcp 192.0.2.1 -> 10.0.0.1:22", "REJECT udp 192.0.2.7")
	if n := in.metric("wharf_frontend_dropped_total", `reason="route_drop"`); n != 2 {
		t.Errorf("dropped{reason=route_drop} = %v, want 2", n)
	}
	in.stop()
	// A drop route is the operator's choice, not a refusal: no dead letters.
	if dead := readLines(t, filepath.Join(in.dir, "dead.jsonl"), 0, 0); len(dead) != 0 {
		t.Errorf("dead letters for route drops: %v", dead)
	}
}

// TestPerHostFiles: logger messages over UDP and TCP land in
// /DIR/remote/{hostname}/{app_name}-{year}.log, rsyslog's dynaFile, as
// RFC3164 lines; with max_open_files = 2 a third app closes a file,
// counted. (util-linux logger always sends this machine's host name, so
// the apps vary.)
func TestPerHostFiles(t *testing.T) {
	logger := testenv.Tool(t, "logger")
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.logs]
bind = ["udp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[1]d"]
sinks = ["remote"]

[sink.remote]
type = "file"
path = "{{DIR}}/remote/{hostname}/{app_name}-{year}.log"
encoding = "rfc3164"
max_open_files = 2
batch_timeout = "5ms"
`, port))
	year := fmt.Sprint(time.Now().Year())
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	want := map[string][]string{}
	for i, app := range []string{"app-a", "app-b", "app-c", "app-a"} {
		transport := []string{"-d", "-T"}[i%2]
		text := fmt.Sprintf("message %d for %s", i, app)
		args := []string{"-n", "127.0.0.1", "-P", fmt.Sprint(port), "-t", app, "--rfc5424", transport, text}
		if out, err := exec.Command(logger, args...).CombinedOutput(); err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
		// One at a time, so the sink's LRU sees the apps in this order.
		matches := func() []string {
			m, _ := filepath.Glob(filepath.Join(in.dir, "remote", "*", app+"-"+year+".log"))
			return m
		}
		testenv.Poll(testenv.EventuallyTimeout, func() bool {
			m := matches()
			return len(m) > 0 && strings.Contains(readFile(m[0]), text)
		})
		m := matches()
		if len(m) != 1 {
			t.Fatalf("%s: files %v, want one remote/HOST/%s-%s.log", app, m, app, year)
		}
		if dir := filepath.Base(filepath.Dir(m[0])); !strings.HasPrefix(dir, host) {
			t.Errorf("%s is in directory %q, want this host's name %q", app, dir, host)
		}
		want[m[0]] = append(want[m[0]], " "+app+": "+text+"\n")
	}
	for path, lines := range want {
		got := readFile(path)
		for _, l := range lines {
			if !strings.Contains(got, l) || !strings.HasPrefix(got, "<13>") {
				t.Errorf("%s lacks %q (rfc3164 line \"<PRI>Mmm dd hh:mm:ss HOST app: MSG\"):\n%s", path, l, got)
			}
		}
	}
	if n := in.metric("wharf_sink_file_closes_total", `reason="lru"`); n != 2 {
		t.Errorf("file_closes_total{reason=lru} = %v, want 2 (a b | c closes a | a closes b)", n)
	}
	if n := in.metric("wharf_sink_open_files"); n != 2 {
		t.Errorf("open_files = %v, want 2", n)
	}
	in.stop()
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}
