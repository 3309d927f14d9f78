package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// TestProxyAccessLog: HTTP and TCP proxy frontends with access_log log
// one syslog message per request and per connection into a sink (a JSON
// file here), as HAProxy's option httplog / tcplog do. curl makes four
// requests (200, a server's 404, a 10,000-byte body, one to a frontend
// whose only server is down: 503 from wharf, one over HTTP/2 and TLS) and
// a TCP client one echoed connection. Each line is checked field by field: status,
// backend/server, bytes, method and target, severity (err for the 503),
// the times, and the structured data a route or JSON sink can use.
func TestProxyAccessLog(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	echo := echoServer(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/big":
			io.WriteString(w, strings.Repeat("x", 10000))
		default:
			io.WriteString(w, "hello")
		}
	}))
	defer web.Close()
	tcpPort, httpPort, deadPort, h2Port := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	_, certFile, keyFile := testpki.NewCA(t, "access log test CA").ServerCert(t, "localhost")
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.echo]
mode = "tcp"
bind = ["tcp://127.0.0.1:%d"]
backend = "echo"
access_log = ["alog"]
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
backend = "web"
access_log = ["alog"]
[frontend.secure]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
backend = "web"
tls_cert = %q
tls_key = %q
access_log = ["alog"]
[frontend.dead]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
backend = "dead"
access_log = ["alog"]
[backend.echo]
server = [{ address = "%s", name = "e1" }]
[backend.web]
server = [{ address = "%s", name = "w1" }]
[backend.dead]
check = "none"
server = [{ address = "%s", name = "d1" }]
[sink.alog]
type = "file"
path = "{{DIR}}/access.jsonl"
encoding = "json"
`, tcpPort, httpPort, h2Port, certFile, keyFile, deadPort, echo.Addr(), strings.TrimPrefix(web.URL, "http://"), testenv.ClosedAddr(t)))

	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/", httpPort),
		fmt.Sprintf("http://127.0.0.1:%d/missing?q=1", httpPort),
		fmt.Sprintf("http://127.0.0.1:%d/big", httpPort),
		fmt.Sprintf("http://127.0.0.1:%d/x", deadPort),
		fmt.Sprintf("https://127.0.0.1:%d/big", h2Port),
	} {
		// One request per curl, in order: the lines come in this order.
		if out, err := exec.Command(curl, "-sS", "-k", "--http2", "-o", "/dev/null", "--max-time", "5", u).CombinedOutput(); err != nil {
			t.Fatalf("curl %s: %v %s", u, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping through wharf")
	buf := make([]byte, 18)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.Close()

	lines := readLines(t, filepath.Join(in.dir, "access.jsonl"), 6, 10*time.Second)
	t.Logf("access log:\n%s", strings.Join(lines, "\n"))
	if len(lines) != 6 {
		t.Fatalf("%d access log lines, want 6:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	web1 := regexp.QuoteMeta
	want := []struct {
		msgid, severity, msg string // msg: a regexp over the message text
		sd                   []string
	}{
		{"http", "info", `^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] web web/w1 \d+/\d+/\d+ 200 5 "GET / HTTP/1\.1"$`,
			[]string{`frontend="web"`, `backend="web"`, `server="w1"`, `status="200"`, `bytes="5"`}},
		{"http", "info", `^127\.0\.0\.1:\d+ \[[^]]+\] web web/w1 \d+/\d+/\d+ 404 \d+ ` + web1(`"GET /missing?q=1 HTTP/1.1"`) + `$`,
			[]string{`status="404"`}},
		{"http", "info", `^127\.0\.0\.1:\d+ \[[^]]+\] web web/w1 \d+/\d+/\d+ 200 10000 "GET /big HTTP/1\.1"$`,
			[]string{`bytes="10000"`}},
		{"http", "err", `^127\.0\.0\.1:\d+ \[[^]]+\] dead dead/- -1/-1/\d+ 503 \d+ "GET /x HTTP/1\.1"$`,
			[]string{`frontend="dead"`, `server=""`, `status="503"`, `tc="-1"`}},
		{"http", "info", `^127\.0\.0\.1:\d+ \[[^]]+\] secure web/w1 \d+/\d+/\d+ 200 10000 "GET /big HTTP/2\.0"$`,
			[]string{`frontend="secure"`, `bytes="10000"`}},
		{"tcp", "info", `^127\.0\.0\.1:\d+ \[[^]]+\] echo echo/e1 \d+/\d+ 18 18$`,
			[]string{`bytes_in="18"`, `bytes_out="18"`, `server="e1"`}},
	}
	for i, w := range want {
		rec := jsonRecord(t, lines[i])
		msg, _ := rec["message"].(string)
		sd, _ := rec["structured_data"].(string)
		if rec["msgid"] != w.msgid || rec["app_name"] != "wharf" || rec["severity_name"] != w.severity || rec["facility_name"] != "local0" {
			t.Errorf("line %d: msgid %v app %v severity %v facility %v, want %s wharf %s local0\n%s",
				i, rec["msgid"], rec["app_name"], rec["severity_name"], rec["facility_name"], w.msgid, w.severity, lines[i])
		}
		if !regexp.MustCompile(w.msg).MatchString(msg) {
			t.Errorf("line %d: message %q does not match %s", i, msg, w.msg)
		}
		for _, p := range w.sd {
			if !strings.Contains(sd, p) {
				t.Errorf("line %d: structured data %q lacks %s", i, sd, p)
			}
		}
	}
	in.stop()
}

// TestProxyTapWithoutAccessLog: `wharf tap --frontend NAME` on a proxy
// frontend streams its request lines live, as `tail -f` of an access log
// would, even when the frontend has no access_log: the lines are built
// only while someone taps.
func TestProxyTapWithoutAccessLog(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	in, httpPort := startWebProxy(t, "", "")
	tap := exec.Command(wharfBin, "tap", "-admin", in.admin, "--frontend", "web", "--raw")
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
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- l
	}()
	if out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "--max-time", "5", fmt.Sprintf("http://127.0.0.1:%d/tapped", httpPort)).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	select {
	case l := <-lines:
		if !strings.Contains(l, ` web web/w1 `) || !strings.Contains(l, ` 200 5 "GET /tapped HTTP/1.1"`) || !strings.Contains(l, "wharf") {
			t.Fatalf("tapped %q, want the request's access log line", l)
		}
	case <-time.After(testenv.EventuallyTimeout):
		t.Fatalf("nothing tapped; tap stderr: %s", stderr.String())
	}
	in.stop()
}

// TestProxyAccessLogByReload: access_log added to a running http frontend
// by reload applies to the next request, on the keep-alive connection
// already open too: the frontend is not rebuilt for it (which would
// close that connection after its next answer).
func TestProxyAccessLogByReload(t *testing.T) {
	in, httpPort := startWebProxy(t, "", `
[sink.alog]
type = "file"
path = "{{DIR}}/access.log"
encoding = "raw"
`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func(path string) bool {
		t.Helper()
		reused := false
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", httpPort, path), nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("%s: status %d, connection closed after it: %v", path, resp.StatusCode, resp.Close)
		}
		return reused
	}
	get("/before")
	cfgPath := filepath.Join(in.dir, "wharf.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), `backend = "web"`, `backend = "web"`+"\naccess_log = [\"alog\"]", 1))
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, in.admin); code != 200 {
		t.Fatalf("reload adding access_log: %d %s", code, body)
	}
	if !get("/after") {
		t.Error("the keep-alive connection from before the reload was not reused")
	}
	lines := readLines(t, filepath.Join(in.dir, "access.log"), 1, 10*time.Second)
	if len(lines) != 1 || !strings.Contains(lines[0], `"GET /after HTTP/1.1"`) {
		t.Fatalf("access log after the reload: %q, want the one line of GET /after", lines)
	}
	in.stop()
}

// TestProxyAccessLogNeverHoldsBack: the access log's sink is a syslog
// collector that is down, with a queue of 50 messages. 1,000 requests
// through the proxy all succeed; the lines that do not fit are dropped
// and counted (queue_full), and none of that slows the requests down
// enough to matter (each well under a second).
func TestProxyAccessLogNeverHoldsBack(t *testing.T) {
	in, httpPort := startWebProxy(t, `access_log = ["down"]`, fmt.Sprintf(`
[global]
shutdown_timeout = "1s"
[sink.down]
type = "syslog"
servers = ["tcp://%s"]
queue_size = 50
batch_size = 10
dial_timeout = "200ms"
`, testenv.ClosedAddr(t)))
	client := &http.Client{Timeout: 5 * time.Second}
	const n = 1000
	var slowest time.Duration
	took := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/r%d", httpPort, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		took = append(took, time.Since(t0))
		slowest = max(slowest, took[i])
	}
	slices.Sort(took)
	p99 := took[n*99/100]
	dropped := in.waitMetric(1, 5*time.Second, "wharf_sink_dropped_total", `sink="down"`, `reason="queue_full"`)
	t.Logf("%d requests, p99 %v, slowest %v; %v access log lines dropped (queue_full) at the down sink", n, p99, slowest, dropped)
	if dropped < n-100 {
		t.Errorf("only %v lines counted dropped for %d requests with a 50-message queue and the sink down", dropped, n)
	}
	// A line that waited for the down sink (its 200 ms dial_timeout, or
	// queue room) would show in every request; a loaded CI machine's
	// scheduling does not reach 100 ms at p99.
	if p99 > 100*time.Millisecond || slowest > time.Second {
		t.Errorf("p99 %v, slowest %v: the access log held the proxy back", p99, slowest)
	}
	// The lines still queued for the down sink are dropped at the stop,
	// which wharf reports as a lossy stop: exit status 3.
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("exit %v, want status 3 (queued lines dropped at the stop)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("wharf did not exit within 30s of SIGTERM")
	}
}

// startWebProxy runs a Go backend that answers "hello" and wharf with an
// http frontend "web" (server w1) in front of it on a free port;
// frontendExtra goes into the frontend's table, extra after the rest.
func startWebProxy(t *testing.T, frontendExtra, extra string) (*instance, int) {
	t.Helper()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	t.Cleanup(web.Close)
	port := testenv.FreePort(t)
	return start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
backend = "web"
%s
[backend.web]
server = [{ address = "%s", name = "w1" }]
%s`, port, frontendExtra, strings.TrimPrefix(web.URL, "http://"), extra)), port
}
