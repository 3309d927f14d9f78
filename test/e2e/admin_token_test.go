package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

const tokenConfig = `
[admin]
listen = "{{ADMIN}}"
token_file = "{{DIR}}/admin.token"
[frontend.edge]
bind = ["udp://127.0.0.1:%d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/messages.jsonl"
`

// TestAdminToken runs wharf with [admin] token_file: POST /reload and the
// tap need the bearer token, the read-only endpoints do not, and `wharf
// tap -c CONFIG` sends the token from the config.
func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("e2e-t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	in := startIn(t, dir, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf(tokenConfig, port))
	f := func(method, path, token string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+in.admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s with token %q: %d, want %d", method, path, token, resp.StatusCode, want)
		}
	}
	f("GET", "/metrics", "", 200)
	f("GET", "/healthz", "", 200)
	f("GET", "/readyz", "", 200)
	f("GET", "/api/status", "", 200)
	f("GET", "/", "", 200)
	f("POST", "/reload", "", 401)
	f("POST", "/reload", "wrong", 401)
	f("POST", "/reload", "e2e-t0ken", 200)
	f("GET", "/debug/pprof/", "", 401)
	f("GET", "/api/tap?frontend=edge", "", 401)

	// wharf tap -c CONFIG streams (it sends the token); wharf tap -admin
	// ADDR without the config is refused with a hint.
	cfg := filepath.Join(dir, "wharf.toml")
	out, err := exec.Command(wharfBin, "tap", "-admin", in.admin, "--frontend", "edge").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "401") || !strings.Contains(string(out), "bearer token") {
		t.Fatalf("tap without the token: %v\n%s", err, out)
	}
	tap := exec.Command(wharfBin, "tap", "-c", cfg, "--frontend", "edge", "--raw")
	stdout, _ := tap.StdoutPipe()
	var stderr testenv.SyncBuffer
	tap.Stderr = &stderr
	if err := tap.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tap.Process.Kill(); tap.Wait() }()
	if !testenv.Poll(testenv.EventuallyTimeout, func() bool { return strings.Contains(stderr.String(), "tapping") }) {
		t.Fatalf("wharf tap did not start: %s", stderr.String())
	}
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const msg = "<13>1 2026-11-25T10:00:00Z h app - - - tapped with a token"
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- l
	}()
	deadline := time.Now().Add(testenv.EventuallyTimeout)
	for { // resend: a datagram sent before the tap subscribed is not tapped
		c.Write([]byte(msg))
		select {
		case l := <-lines:
			if strings.TrimSpace(l) != msg {
				t.Fatalf("tapped %q, want %q", l, msg)
			}
			in.stop()
			return
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("nothing tapped; tap stderr: %s", stderr.String())
			}
		}
	}
}
