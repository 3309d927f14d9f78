package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// startGateway runs a whole gateway in-process on loopback: admin and a
// UDP bind on free ports, messages to a file sink. It returns the config
// path, the admin address and the UDP address.
func startGateway(t *testing.T) (string, string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "wharf.toml")
	// A fixed admin port: wharf tap reads it from the config.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	cfgText := `
[admin]
listen = "` + adminAddr + `"
[frontend.edge]
bind = ["udp://127.0.0.1:0"]
sinks = ["archive"]
[sink.archive]
type = "file"
path = "` + filepath.Join(dir, "archive.jsonl") + `"
`
	g := runGateway(t, path, cfgText)
	var udp string
	for _, l := range g.live().Binds {
		udp = l.Addr
	}
	return path, g.admin.Addr(), udp
}

func TestTapCommand(t *testing.T) {
	path, adminAddr, udpAddr := startGateway(t)
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := []string{
		"<14>1 2026-11-25T10:00:00Z web1 nginx - - - GET /",
		"<11>1 2026-11-25T10:00:01Z fw1 sshd 7 - - auth failed",
		"<10>Nov 25 10:00:02 fw2 kernel: link down",
	}

	// f runs `wharf tap ARGS` against the running gateway, sends msgs once
	// the stream is up, and checks stdout holds want (in order) and
	// nothing else.
	f := func(args []string, want []string) {
		t.Helper()
		var out, errOut testenv.SyncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() { done <- tapRun(ctx, args, &out, &errOut) }()
		testenv.Eventually(t, "the tapping notice on stderr", func() bool { return strings.Contains(errOut.String(), "wharf tap: tapping ") })
		for _, m := range msgs {
			if _, err := c.Write([]byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Eventually(t, "the tapped lines", func() bool { return strings.Count(out.String(), "\n") >= len(want) })
		time.Sleep(100 * time.Millisecond) // nothing more may arrive
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%v: stdout %q, want %d lines", args, out.String(), len(want))
		}
		for i, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Fatalf("%v: line %d %q, want it to contain %q", args, i, lines[i], w)
			}
			if !strings.Contains(strings.Join(args, " "), "--raw") {
				var obj map[string]any
				if err := json.Unmarshal([]byte(lines[i]), &obj); err != nil {
					t.Fatalf("%v: line %q is not JSON: %v", args, lines[i], err)
				}
			}
		}
	}
	f([]string{"-c", path, "--frontend", "edge"}, []string{`"hostname":"web1"`, `"hostname":"fw1"`, `"hostname":"fw2"`})
	f([]string{"-c", path, "--frontend", "edge", "--severity", "err..emerg"}, []string{`"message":"auth failed"`, `"message":"link down"`})
	f([]string{"-admin", adminAddr, "--port", udpAddr[strings.LastIndexByte(udpAddr, ':')+1:], "--host", "fw*", "--raw"}, []string{msgs[1], msgs[2]})
	f([]string{"-c", path, "--frontend", "edge", "--app", "ngin?"}, []string{`"app_name":"nginx"`})
}

func TestTapCommandErrors(t *testing.T) {
	path, _, _ := startGateway(t)
	f := func(args []string, wantCode int, wantErr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if code := tapRun(ctx, args, &out, &errOut); code != wantCode || !strings.Contains(errOut.String(), wantErr) {
			t.Fatalf("%v: exit %d stderr %q, want %d containing %q", args, code, errOut.String(), wantCode, wantErr)
		}
	}
	f([]string{"-c", path}, 2, "exactly one of --frontend NAME or --port N")
	f([]string{"-c", path, "--frontend", "edge", "--port", "514"}, 2, "exactly one of")
	f([]string{"-c", path, "--frontend", "edge", "--severity", "loud"}, 2, "unknown severity")
	f([]string{"-c", path, "--port", "70000"}, 2, "out of range")
	f([]string{"-c", path, "--frontend", "core"}, 1, `no frontend "core" (running: edge)`)
	f([]string{"-c", path, "--port", "9"}, 1, "no syslog bind listens on port 9")
	f([]string{"-c", filepath.Join(t.TempDir(), "missing.toml"), "--frontend", "edge"}, 2, "invalid")
	f([]string{"-admin", "127.0.0.1:1", "--frontend", "edge"}, 1, "cannot reach the admin listener")
}

func TestDialable(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := dialable(in); got != want {
			t.Fatalf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
	f("127.0.0.1:9600", "127.0.0.1:9600")
	f("0.0.0.0:9600", "127.0.0.1:9600")
	f(":9600", "127.0.0.1:9600")
	f("[::]:9600", "[::1]:9600")
	f("admin.example:9600", "admin.example:9600")
}

// Regression: a sender could forge wharf tap's notices in --raw output (a
// message with a line feed, or one starting with the notice prefix, went
// to stderr) and so hide its own message.
func TestTapRawCannotForgeNotices(t *testing.T) {
	path, _, udpAddr := startGateway(t)
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := []string{
		"<14>1 2026-11-25T10:00:00Z web1 app - - - hidden\n# wharf tap: lost 4242 lines",
		"# wharf tap: end (wharf is shutting down)",
		"<14>1 2026-11-25T10:00:01Z web1 app - - - bell\a nul\x00 cr\r tab\t del\x7f #043 done",
	}
	want := []string{
		"<14>1 2026-11-25T10:00:00Z web1 app - - - hidden#012# wharf tap: lost 4242 lines",
		"#043 wharf tap: end (wharf is shutting down)",
		"<14>1 2026-11-25T10:00:01Z web1 app - - - bell#007 nul#000 cr#015 tab#011 del#177 #043 done",
	}
	var out, errOut testenv.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- tapRun(ctx, []string{"-c", path, "--frontend", "edge", "--raw"}, &out, &errOut) }()
	testenv.Eventually(t, "the tapping notice on stderr", func() bool { return strings.Contains(errOut.String(), "wharf tap: tapping ") })
	notice := errOut.String()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "the tapped lines", func() bool { return strings.Count(out.String(), "\n") >= len(want) })
	time.Sleep(100 * time.Millisecond) // nothing more may arrive
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if extra := strings.TrimPrefix(errOut.String(), notice); extra != "" {
		t.Fatalf("stderr after the tapping notice: %q, want nothing", extra)
	}
}

// Regression: the rest of a line longer than the client's 64 KiB buffer
// was checked for the notice prefix, so a long message could forge one.
func TestStreamTapLongLineIsNotANotice(t *testing.T) {
	long := "{" + strings.Repeat("a", 64<<10-1) + "# wharf tap: lost 4242 lines\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# wharf tap: tapping frontend edge, json\n"+long+"# wharf tap: end (wharf is shutting down)\n")
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	ac := &adminClient{base: srv.URL, client: srv.Client()}
	if code := streamTap(context.Background(), ac, "/api/tap", &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if out.String() != long {
		t.Fatalf("stdout has %d bytes, want the %d-byte line whole", out.Len(), len(long))
	}
	if want := "wharf tap: tapping frontend edge, json\nwharf tap: end (wharf is shutting down)\n"; errOut.String() != want {
		t.Fatalf("stderr %q, want %q", errOut.String(), want)
	}
}
