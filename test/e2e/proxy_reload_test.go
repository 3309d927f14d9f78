package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// counted is a loopback server (HTTP or TCP) that counts what it served.
type counted struct {
	name string
	addr string
	n    atomic.Int64
}

// httpBackend answers every request with its name.
func httpBackend(t *testing.T, name string) *counted {
	c := &counted{name: name}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != "wharf-check" { // health checks are not traffic
			c.n.Add(1)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	c.addr = strings.TrimPrefix(s.URL, "http://")
	return c
}

// tcpBackend writes its name and a newline to every connection, then
// closes it.
func tcpBackend(t *testing.T, name string) *counted {
	c := &counted{name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c.addr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			go func() {
				defer conn.Close()
				io.WriteString(conn, name+"\n")
			}()
		}
	}()
	return c
}

// backendTOML is a [backend.name] table with extra settings and servers
// (weight 1 unless given as "name=weight").
func backendTOML(name, extra string, servers map[string]*counted, members ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[backend.%s]\n%s\n", name, extra)
	for _, m := range members {
		srv, weight := m, "1"
		if i := strings.IndexByte(m, '='); i >= 0 {
			srv, weight = m[:i], m[i+1:]
		}
		fmt.Fprintf(&b, "[[backend.%s.server]]\nname = %q\naddress = %q\nweight = %s\n", name, srv, servers[srv].addr, weight)
	}
	return b.String()
}

// proxyBind returns the address a proxy frontend's first bind listens on,
// as wharf logged it.
func proxyBind(t *testing.T, in *instance, frontend string) string {
	t.Helper()
	for _, line := range strings.Split(in.stderr.String(), "\n") {
		if f, ok := testenv.LogAttr(line, "proxy listening", "frontend"); ok && f == frontend {
			b, _ := testenv.LogAttr(line, "proxy listening", "bind")
			return strings.TrimPrefix(b, "tcp://")
		}
	}
	t.Fatalf("no proxy bind of %s in wharf's log:\n%s", frontend, in.stderr.String())
	return ""
}

// TestProxyReloadUnderLoad reloads an http and a tcp proxy frontend a
// dozen times, by POST /reload and SIGHUP, while wrk keeps 8 keep-alive
// connections busy on the first and two client loops connect to the
// second: servers are added, weights and the balance policy and health
// checks change, each frontend moves to another backend and the old one
// is removed, a bind is added and removed, the http frontend's own
// settings change twice (it is rebuilt on its sockets), and a reload
// onto a busy address is refused. Not one request or connection fails; every added
// server gets traffic; a server no longer routed to gets none beyond
// what was in flight at the reload (issue #17.1).
func TestProxyReloadUnderLoad(t *testing.T) {
	for _, engine := range []string{"goroutines", "event-loop"} {
		t.Run(engine, func(t *testing.T) { proxyReloadUnderLoad(t, engine) })
	}
}

func proxyReloadUnderLoad(t *testing.T, engine string) {
	wrkBin := testenv.Tool(t, "wrk")
	servers := map[string]*counted{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		servers[n] = httpBackend(t, n)
	}
	for _, n := range []string{"ta", "tb", "tc", "td"} {
		servers[n] = tcpBackend(t, n)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	const head = `
[admin]
listen = "{{ADMIN}}"
[frontend.logs]
bind = ["udp://127.0.0.1:0"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
[frontend.web]
mode = "http"
bind = [%s]
backend = "%s"
%s
[frontend.raw]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "%s"
`
	type step struct {
		what        string
		webBinds    string
		webExtra    string // more settings of web: a change rebuilds it
		web, raw    string
		backends    []string
		expect      []string // servers that must get traffic after it
		retire      []string // servers that must get none after it
		sighup, bad bool
	}
	one := func(members ...string) string { return backendTOML("one", "check = \"none\"", servers, members...) }
	two := func(extra string, members ...string) string { return backendTOML("two", extra, servers, members...) }
	three := backendTOML("three", "check = \"tcp\"\ncheck_interval = \"200ms\"", servers, "e")
	tone := func(members ...string) string { return backendTOML("tone", "check = \"none\"", servers, members...) }
	ttwo := func(members ...string) string { return backendTOML("ttwo", "check = \"none\"", servers, members...) }
	bind0 := `"tcp://127.0.0.1:0"`
	steps := []step{
		{what: "start", web: "one", raw: "tone", backends: []string{one("a"), tone("ta")}, expect: []string{"a", "ta"}},
		{what: "add b and tb", web: "one", raw: "tone", backends: []string{one("a", "b"), tone("ta", "tb")}, expect: []string{"a", "b", "ta", "tb"}},
		{what: "weights 1:4", web: "one", raw: "tone", backends: []string{one("a=1", "b=4"), tone("ta=1", "tb=4")}, expect: []string{"b", "tb"}, sighup: true},
		{what: "move to two and ttwo", web: "two", raw: "ttwo", backends: []string{one("a=1", "b=4"), tone("ta=1", "tb=4"), two(`check = "none"`, "c"), ttwo("tc")},
			expect: []string{"c", "tc"}, retire: []string{"a", "b", "ta", "tb"}},
		{what: "remove one and tone", web: "two", raw: "ttwo", backends: []string{two(`check = "none"`, "c"), ttwo("tc")}, expect: []string{"c", "tc"}},
		{what: "add d and td", web: "two", raw: "ttwo", backends: []string{two(`check = "none"`, "c", "d"), ttwo("tc", "td")}, expect: []string{"c", "d", "tc", "td"}, sighup: true},
		{what: "weights 3:1", web: "two", raw: "ttwo", backends: []string{two(`check = "none"`, "c=3", "d=1"), ttwo("tc=3", "td=1")}, expect: []string{"c", "d", "tc", "td"}},
		{what: "a bind onto a busy address", bad: true, webBinds: bind0 + `, "tcp://` + busy.Addr().String() + `"`, web: "three", raw: "tone",
			backends: []string{two(`check = "none"`, "c=3", "d=1"), ttwo("tc=3", "td=1"), three, tone("ta")}},
		{what: "leastconn, http health checks", web: "two", raw: "ttwo", backends: []string{two("balance = \"leastconn\"\ncheck = \"http\"\ncheck_path = \"/\"\ncheck_interval = \"200ms\"", "c", "d"), ttwo("tc", "td")},
			expect: []string{"c", "d", "tc", "td"}},
		{what: "a second bind", webBinds: bind0 + ", " + bind0, web: "two", raw: "ttwo", backends: []string{two("balance = \"leastconn\"\ncheck = \"http\"\ncheck_path = \"/\"\ncheck_interval = \"200ms\"", "c", "d"), ttwo("tc", "td")},
			expect: []string{"c", "d"}, sighup: true},
		{what: "web's client_timeout (web rebuilt on its sockets)", webBinds: bind0 + ", " + bind0, webExtra: `client_timeout = "20s"`, web: "two", raw: "ttwo",
			backends: []string{two("balance = \"leastconn\"\ncheck = \"http\"\ncheck_path = \"/\"\ncheck_interval = \"200ms\"", "c", "d"), ttwo("tc", "td")}, expect: []string{"c", "d"}},
		{what: "move web to three", webBinds: bind0 + ", " + bind0, web: "three", raw: "ttwo", backends: []string{two(`check = "none"`, "c", "d"), ttwo("tc", "td"), three},
			expect: []string{"e"}, retire: []string{"c", "d"}},
		{what: "remove two and the second bind", web: "three", raw: "ttwo", backends: []string{ttwo("tc", "td"), three}, expect: []string{"e", "tc", "td"}},
		{what: "move raw back to a new tone", web: "three", raw: "tone", backends: []string{tone("ta"), three}, expect: []string{"e", "ta"}, retire: []string{"tc", "td"}, sighup: true},
	}
	render := func(s step) string {
		binds := s.webBinds
		if binds == "" {
			binds = bind0
		}
		extra := s.webExtra + "\nengine = \"" + engine + "\""
		return fmt.Sprintf(head, binds, s.web, extra, s.raw) + strings.Join(s.backends, "\n")
	}
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", render(steps[0]))
	web, raw := proxyBind(t, in, "web"), proxyBind(t, in, "raw")

	// wrk on web until told to stop (SIGINT: it prints its summary).
	var wrkOut strings.Builder
	wrk := exec.Command(wrkBin, "-t2", "-c8", "-d120s", "--timeout", "10s", "http://"+web+"/")
	wrk.Stdout, wrk.Stderr = &wrkOut, &wrkOut
	if err := wrk.Start(); err != nil {
		t.Fatal(err)
	}
	wrkDone := make(chan error, 1)
	go func() { wrkDone <- wrk.Wait() }()
	defer func() {
		if wrk.ProcessState == nil {
			wrk.Process.Kill()
			<-wrkDone
		}
	}()
	// Two loops of TCP connections on raw, each reading one greeting.
	var tcpFailed []string
	var tcpOK atomic.Int64
	var mu sync.Mutex
	stop := make(chan struct{})
	var loops sync.WaitGroup
	for range 2 {
		loops.Add(1)
		go func() {
			defer loops.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				line, err := greetOnce(raw)
				if err != nil || line == "" {
					mu.Lock()
					tcpFailed = append(tcpFailed, fmt.Sprintf("%q %v", line, err))
					mu.Unlock()
				} else {
					tcpOK.Add(1)
				}
			}
		}()
	}

	// When a server leaves the routing, each wrk connection (8) can have
	// one request in flight to it. More can come from the frontend or
	// backend the reload retires: the old backend's http health checks
	// (every 200 ms from step 9) run until it is closed, and a frontend
	// rebuilt by the previous step answers each of its keep-alive
	// connections' next request with its old routing. 16 bounds both;
	// each tcp loop (2) has at most one connection in flight.
	retired := map[string]int64{} // server -> count when it left the routing
	checkRetired := func(when string) {
		t.Helper()
		for n, at := range retired {
			slack := int64(16)
			if strings.HasPrefix(n, "t") {
				slack = 2
			}
			if now := servers[n].n.Load(); now > at+slack {
				t.Errorf("%s: server %s got %d requests or connections after it left the routing (%d could have been in flight)", when, n, now-at, slack)
			}
		}
	}
	oks := 0
	for i, s := range steps {
		checkRetired(fmt.Sprintf("before step %d (%s)", i, s.what))
		if i > 0 {
			if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(strings.NewReplacer("{{DIR}}", dir, "{{ADMIN}}", "127.0.0.1:0").Replace(render(s))), 0o644); err != nil {
				t.Fatal(err)
			}
			switch {
			case s.bad:
				code, body := post(t, "http://"+in.admin+"/reload")
				if code != http.StatusBadRequest || !strings.Contains(body, busy.Addr().String()) {
					t.Fatalf("step %d (%s): POST /reload = %d %q, want 400 naming the busy address", i, s.what, code, body)
				}
				continue
			case s.sighup:
				in.cmd.Process.Signal(syscall.SIGHUP)
				oks++
				testenv.Eventually(t, "the SIGHUP reload of step "+s.what, func() bool {
					return in.metric("wharf_config_reloads_total", `result="ok"`) >= float64(oks)
				})
			default:
				oks++
				if code, body := post(t, "http://"+in.admin+"/reload"); code != 200 {
					t.Fatalf("step %d (%s): POST /reload = %d: %s", i, s.what, code, body)
				}
			}
		}
		for _, n := range s.retire {
			retired[n] = servers[n].n.Load()
		}
		for _, n := range s.expect {
			delete(retired, n) // back in the routing
		}
		for _, n := range s.expect {
			from := servers[n].n.Load()
			testenv.Eventually(t, fmt.Sprintf("step %d (%s): traffic to %s", i, s.what, n), func() bool {
				return servers[n].n.Load() >= from+200 || strings.HasPrefix(n, "t") && servers[n].n.Load() >= from+20
			})
		}
	}
	if got := in.metric("wharf_config_reloads_total", `result="failed"`); got != 1 {
		t.Errorf("wharf_config_reloads_total{result=\"failed\"} = %v, want 1 (the busy address)", got)
	}
	close(stop)
	loops.Wait()
	wrk.Process.Signal(os.Interrupt)
	select {
	case <-wrkDone:
	case <-time.After(20 * time.Second):
		t.Fatal("wrk did not stop within 20s of SIGINT")
	}
	out := wrkOut.String()
	t.Logf("wrk:\n%s", out)
	t.Logf("tcp: %d connections greeted; http served: a %d b %d c %d d %d e %d", tcpOK.Load(),
		servers["a"].n.Load(), servers["b"].n.Load(), servers["c"].n.Load(), servers["d"].n.Load(), servers["e"].n.Load())
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("wrk made no requests")
	}
	for _, bad := range []string{"Non-2xx or 3xx responses", "Socket errors"} {
		if strings.Contains(out, bad) {
			t.Errorf("wrk saw failed requests across the reloads: %s", lineWith(out, bad))
		}
	}
	for _, f := range tcpFailed {
		t.Errorf("tcp connection failed across the reloads: %s", f)
	}
	checkRetired("at the end")
	// Removed backends' series are gone from /metrics, the running ones'
	// are there.
	body := metricsText(t, in.admin)
	for _, gone := range []string{`backend="one"`, `backend="two"`, `backend="ttwo"`} {
		if strings.Contains(body, gone) {
			t.Errorf("/metrics still has series of the removed %s: %s", gone, lineWith(body, gone))
		}
	}
	for _, there := range []string{`wharf_proxy_server_up{backend="three",server="e"} 1`, `wharf_proxy_server_up{backend="tone",server="ta"} 1`} {
		if !strings.Contains(body, there) {
			t.Errorf("/metrics lacks %s", there)
		}
	}
	testenv.Poll(5*time.Second, func() bool { return strings.Count(in.stderr.String(), "frontends_replaced_or_removed=[web]") >= 2 })
	if n := strings.Count(in.stderr.String(), "frontends_replaced_or_removed=[web]"); n != 2 {
		t.Errorf("web was rebuilt %d times, want 2 (client_timeout set, then unset)", n)
	}
	in.stop()
}

// greetOnce connects to addr and reads one line.
func greetOnce(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// lineWith returns the first line of s containing sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
