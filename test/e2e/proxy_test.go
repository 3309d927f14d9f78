package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestProxyFrontendsBesideSyslog runs one wharf with a syslog frontend, a
// TCP proxy frontend and an HTTP proxy frontend, and checks each through
// real clients: a TCP echo round trip, curl through the HTTP frontend
// (with X-Forwarded-For set by wharf), and the proxy metrics.
func TestProxyFrontendsBesideSyslog(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	echo := echoServer(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s xff=%s", r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer web.Close()

	sysPort, tcpPort, httpPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.logs]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
[frontend.echo]
mode = "tcp"
bind = ["tcp://127.0.0.1:%d"]
backend = "echo"
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
backend = "web"
[backend.echo]
server = [{ address = "%s", name = "e1" }]
[backend.web]
server = [{ address = "%s", name = "w1" }]
`, sysPort, tcpPort, httpPort, echo.Addr(), strings.TrimPrefix(web.URL, "http://")))

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "ping through wharf")
	buf := make([]byte, 18)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping through wharf" {
		t.Fatalf("TCP proxy echo = %q, %v", buf, err)
	}
	c.Close()

	out, err := exec.Command(curl, "-sS", "--max-time", "5", "-H", "X-Forwarded-For: 6.6.6.6", fmt.Sprintf("http://127.0.0.1:%d/hello", httpPort)).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if got := string(out); got != "path=/hello xff=127.0.0.1" {
		t.Errorf("through the HTTP frontend: %q, want the path and X-Forwarded-For 127.0.0.1 (the client's spoofed value stripped)", got)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", sysPort), []string{"<13>1 2026-11-25T10:00:00Z h app - - - beside the proxies"})
	if in.waitMetric(1, 5*time.Second, "wharf_sink_sent_total", `sink="out"`) != 1 {
		t.Error("the syslog frontend beside the proxies did not deliver")
	}
	body := metricsText(t, in.admin)
	for _, want := range []string{`frontend="echo"`, `frontend="web"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks proxy series for %s", want)
		}
	}
	in.stop()
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// echoServer is a TCP server on loopback that sends back what it reads,
// closed when the test ends.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln
}

// TestProxyRedirectOnlyFrontend: a port-80 frontend with redirect_https
// and no backend (as HAProxy's "redirect scheme https" frontend): curl
// gets 301 to the https URL.
func TestProxyRedirectOnlyFrontend(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.www]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
redirect_https = true
`, port))
	out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--max-time", "5",
		"-H", "Host: www.example.com:80", fmt.Sprintf("http://127.0.0.1:%d/shop?id=7", port)).CombinedOutput()
	if err != nil || string(out) != "301 https://www.example.com/shop?id=7" {
		t.Fatalf("curl: %v %q, want 301 https://www.example.com/shop?id=7", err, out)
	}
	in.stop()
}
