package admin

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/metrics"
)

// startOpen runs an admin server without a token on listen, with a
// /reload that counts its calls.
func startOpen(t *testing.T, listen string, reloads *atomic.Int64, hosts ...string) string {
	t.Helper()
	s := New(metrics.NewRegistry(), func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Handle("POST /reload", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reloads.Add(1); io.WriteString(w, "reloaded") }))
	s.Handle("GET /api/tap", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "tap") }))
	s.AllowHosts(hosts...)
	if err := s.Start(listen); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s.Addr()
}

// Regression: without a token the admin listener answered any Host and
// any Origin, so a web page could POST /reload (a "simple" text/plain
// request) and, by rebinding its own name to 127.0.0.1, read /api/tap.
func TestAdminRefusesWebPages(t *testing.T) {
	var reloads atomic.Int64 // the handler runs on the server's goroutine
	addr := startOpen(t, "127.0.0.1:0", &reloads, "wharf1.example.com")
	_, port, _ := net.SplitHostPort(addr)
	f := func(method, path, host string, hdr map[string]string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader("x"))
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s Host %q %v: %d, want %d", method, path, host, hdr, resp.StatusCode, want)
		}
	}
	textPlain := map[string]string{"Content-Type": "text/plain"}
	// Names of this listener.
	for _, h := range []string{addr, "127.0.0.1", "127.9.9.9:" + port, "[::1]:" + port, "localhost:" + port, "LOCALHOST.", "wharf1.example.com:" + port, ""} {
		f("GET", "/api/tap", h, nil, 200)
	}
	// DNS rebinding: the page's own name now resolves to 127.0.0.1.
	f("GET", "/api/tap", "evil.example:"+port, nil, 421)
	f("GET", "/metrics", "evil.example", nil, 421)
	f("POST", "/reload", "evil.example:"+port, textPlain, 421)
	f("GET", "/api/tap", "192.0.2.1:"+port, nil, 421) // not the listen address
	// Cross-origin POST from a page, new and old browsers.
	f("POST", "/reload", addr, map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403)
	f("POST", "/reload", addr, map[string]string{"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "same-site"}, 403)
	f("POST", "/reload", addr, map[string]string{"Origin": "null"}, 403)
	if n := reloads.Load(); n != 0 {
		t.Fatalf("%d refused requests reached /reload", n)
	}
	// Same origin (the status page's own script), and curl or a script
	// (no Origin) still work.
	f("POST", "/reload", addr, map[string]string{"Origin": "http://" + addr, "Sec-Fetch-Site": "same-origin"}, 200)
	f("POST", "/reload", addr, nil, 200)
	if n := reloads.Load(); n != 2 {
		t.Fatalf("reloads = %d, want 2", n)
	}

	// The same with curl, as a user on the host types it.
	curl := testenv.Tool(t, "curl")
	c := func(want string, args ...string) {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"}, args...)...).Output()
		if err != nil || string(out) != want {
			t.Errorf("curl %v: %q (%v), want %s", args, out, err, want)
		}
	}
	c("200", "-X", "POST", "http://"+addr+"/reload")
	c("403", "-X", "POST", "-H", "Origin: http://evil.example", "-H", "Content-Type: text/plain", "--data", "x", "http://"+addr+"/reload")
	c("421", "--resolve", "evil.example:"+port+":127.0.0.1", "http://evil.example:"+port+"/api/tap")
	c("200", "--resolve", "wharf1.example.com:"+port+":127.0.0.1", "http://wharf1.example.com:"+port+"/api/tap")
}

// With a wildcard listen address any IP literal names the listener (an
// address cannot be DNS-rebound); names still must be known. (Checked
// without binding a wildcard socket: tests stay on loopback.)
func TestAdminWildcardHosts(t *testing.T) {
	s := &Server{listenAny: true}
	s.AllowHosts("Wharf1.Example.com.")
	for host, want := range map[string]bool{
		"192.0.2.1:9600": true, "[2001:db8::1]:9600": true, "127.0.0.1": true,
		"wharf1.example.com:9600": true, "evil.example:9600": false, "evil.example": false,
	} {
		if got := s.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

// A reload's allowed_hosts replace the old ones while serving; the
// listen address's own name stays allowed.
func TestAdminAllowedHostsReplaced(t *testing.T) {
	s := &Server{listenName: "wharf-admin.internal"}
	s.AllowHosts("old.example")
	s.SetAllowedHosts([]string{"New.Example."})
	for host, want := range map[string]bool{
		"new.example:9600": true, "old.example:9600": false,
		"wharf-admin.internal:9600": true, "localhost": true,
	} {
		if got := s.hostAllowed(host); got != want {
			t.Errorf("after SetAllowedHosts: hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}
