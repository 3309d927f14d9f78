package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"wharf/internal/testenv"
)

// TestServerRuntimeControl drives `wharf server` against a real `wharf
// run` with an admin token: drain takes a server out of an http
// backend's traffic, a reload keeps the state, ready brings it back,
// weight shifts the share, and the metrics count it (issue #17.2).
func TestServerRuntimeControl(t *testing.T) {
	name := func(n string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, n) }))
		t.Cleanup(s.Close)
		return s
	}
	a, b := name("a"), name("b")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("srv-t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
token_file = "{{DIR}}/admin.token"
[frontend.logs]
bind = ["udp://127.0.0.1:0"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/messages.jsonl"
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"
[backend.web]
check = "http"
check_interval = "200ms"
server = [{ address = %q, name = "a" }, { address = %q, name = "b" }]
`, a.Listener.Addr(), b.Listener.Addr()))
	bind, ok := testenv.LogAttr(in.stderr.String(), "proxy listening", "bind")
	if !ok {
		t.Fatalf("no proxy bind in wharf's log:\n%s", in.stderr.String())
	}
	front := "http://" + strings.TrimPrefix(bind, "tcp://") + "/"
	cfg := filepath.Join(dir, "wharf.toml")
	wharf := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(wharfBin, append([]string{"server", "-c", cfg, "--admin", in.admin}, args...)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("wharf server %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	shares := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			resp, err := http.Get(front)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(body)]++
		}
		return got
	}

	// The token is required: without -c none is sent.
	out, err := exec.Command(wharfBin, "server", "--admin", in.admin, "drain", "web/a").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bearer token") {
		t.Fatalf("wharf server without the token: %v\n%s", err, out)
	}
	if out := wharf(false, "drain", "web/zz"); !strings.Contains(out, `backend web has no server "zz"; its servers: a, b`) {
		t.Errorf("unknown server: %s", out)
	}
	if got := shares(10); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("before: answers %v, want 5 and 5", got)
	}

	wharf(true, "drain", "web/a")
	if got := shares(10); got["b"] != 10 {
		t.Errorf("a drained: answers %v, want all 10 from b", got)
	}
	if v := in.metric("wharf_proxy_server_admin_state", `server="a"`, `state="drain"`); v != 1 {
		t.Errorf("wharf_proxy_server_admin_state{server=a,state=drain} = %v, want 1", v)
	}

	// A reload (SIGHUP) keeps the state: proxy backends are not rebuilt.
	in.cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, "the reload", func() bool {
		return in.metric("wharf_config_reloads_total", `result="ok"`) >= 1
	})
	if out := wharf(true, "list"); !regexpLine(out, `web/a\s+\S+\s+up\s+drain\s+1\s+0`) {
		t.Errorf("after the reload a is no longer drained:\n%s", out)
	}
	if got := shares(10); got["b"] != 10 {
		t.Errorf("a drained, after the reload: answers %v, want all 10 from b", got)
	}

	wharf(true, "ready", "web/a")
	wharf(true, "weight", "web/b", "3")
	if got := shares(40); got["a"] != 10 || got["b"] != 30 {
		t.Errorf("ready, weights 1:3: answers %v, want 10 and 30", got)
	}
	if v := in.metric("wharf_proxy_server_weight", `server="b"`); v != 3 {
		t.Errorf("wharf_proxy_server_weight{server=b} = %v, want 3", v)
	}
	if v := in.metric("wharf_proxy_server_admin_state", `server="a"`, `state="ready"`); v != 1 {
		t.Errorf("wharf_proxy_server_admin_state{server=a,state=ready} = %v, want 1", v)
	}
	in.stop()
}

// regexpLine reports whether some line of out matches re.
func regexpLine(out, re string) bool {
	return regexp.MustCompile("(?m)" + re).MatchString(out)
}
