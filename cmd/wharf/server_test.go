package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// backendPair is two HTTP servers on loopback answering their name; "a"
// holds a request to /slow until release is closed.
type backendPair struct {
	a, b    *httptest.Server
	release chan struct{}
	inSlow  chan struct{}
}

func newBackendPair(t *testing.T) *backendPair {
	p := &backendPair{release: make(chan struct{}), inSlow: make(chan struct{}, 1)}
	name := func(n string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				p.inSlow <- struct{}{}
				<-p.release
			}
			io.WriteString(w, n)
		}
	}
	p.a, p.b = httptest.NewServer(name("a")), httptest.NewServer(name("b"))
	t.Cleanup(p.a.Close)
	t.Cleanup(p.b.Close)
	return p
}

// startProxyGateway runs a whole gateway in-process: the admin listener
// (with token when not ""), an http frontend and backend "web" of
// servers "a" and "b". It returns the config path, the admin address and
// the frontend's address.
func startProxyGateway(t *testing.T, p *backendPair, token string) (string, string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "wharf.toml")
	tok := ""
	if token != "" {
		tok = fmt.Sprintf("token = %q\n", token)
	}
	cfgText := fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"
%s
[frontend.edge]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"
[backend.web]
check = "none"
[[backend.web.server]]
name = "a"
address = %q
[[backend.web.server]]
name = "b"
address = %q
`, tok, p.a.Listener.Addr(), p.b.Listener.Addr())
	g := runGateway(t, path, cfgText)
	return path, g.admin.Addr(), g.proxySet.Addrs("edge")[0].String()
}

// wharfServer runs `wharf server ARGS` and returns its exit code, stdout
// and stderr.
func wharfServer(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := run(append([]string{"server"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// shares sends n requests through the frontend and counts the answers.
func shares(t *testing.T, front string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		resp, err := http.Get("http://" + front + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			got[resp.Status]++
			continue
		}
		got[string(b)]++
	}
	return got
}

// Drain a server while a slow request is in flight on it: the request
// completes, new requests all go to the other server; ready again,
// traffic returns; weight shifts the share and weight 0 stops it.
func TestServerDrainReadyWeight(t *testing.T) {
	p := newBackendPair(t)
	path, adminAddr, front := startProxyGateway(t, p, "")
	admin := []string{"-c", path, "--admin", adminAddr}

	// A slow request lands on a or b; send until one is on a.
	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			resp, err := http.Get("http://" + front + "/slow")
			if err != nil {
				slow <- result{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "a" {
				slow <- result{body: string(b)}
				return
			}
		}
	}()
	select {
	case <-p.inSlow:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached server a")
	}
	if code, out, errOut := wharfServer(append(admin, "drain", "web/a")...); code != 0 || !strings.Contains(out, "web/a") || !strings.Contains(out, "drain") {
		t.Fatalf("wharf server drain web/a: exit %d\n%s%s", code, out, errOut)
	}
	if got := shares(t, front, 20); got["b"] != 20 {
		t.Errorf("a drained: answers %v, want all 20 from b", got)
	}
	code, out, _ := wharfServer(append(admin, "list")...)
	if code != 0 || !regexpLine(out, `web/a\s+\S+\s+up\s+drain\s+1\s+1$`) {
		t.Errorf("list while draining with one request in flight on a: exit %d\n%s", code, out)
	}
	close(p.release)
	if r := <-slow; r.err != nil || r.body != "a" {
		t.Fatalf("the in-flight request on the drained server: %q, %v; want it completed by a", r.body, r.err)
	}
	wg.Wait()
	testenv.Eventually(t, "a's active count back to 0", func() bool {
		_, out, _ := wharfServer(append(admin, "list")...)
		return regexpLine(out, `web/a\s+\S+\s+up\s+drain\s+1\s+0$`)
	})

	if code, out, errOut := wharfServer(append(admin, "ready", "web/a")...); code != 0 {
		t.Fatalf("wharf server ready: exit %d\n%s%s", code, out, errOut)
	}
	if got := shares(t, front, 20); got["a"] != 10 || got["b"] != 10 {
		t.Errorf("a ready again: answers %v, want 10 and 10 (round robin)", got)
	}
	if code, _, errOut := wharfServer(append(admin, "weight", "web/a", "3")...); code != 0 {
		t.Fatalf("wharf server weight web/a 3: exit %d: %s", code, errOut)
	}
	if got := shares(t, front, 40); got["a"] != 30 || got["b"] != 10 {
		t.Errorf("weights 3:1: answers %v, want 30 and 10", got)
	}
	if code, _, errOut := wharfServer(append(admin, "weight", "web/a", "0")...); code != 0 {
		t.Fatalf("wharf server weight web/a 0: exit %d: %s", code, errOut)
	}
	if got := shares(t, front, 10); got["b"] != 10 {
		t.Errorf("a at weight 0: answers %v, want all from b", got)
	}
	if code, _, errOut := wharfServer(append(admin, "maint", "web/b")...); code != 0 {
		t.Fatalf("wharf server maint web/b: exit %d: %s", code, errOut)
	}
	if got := shares(t, front, 3); got["503 Service Unavailable"] != 3 {
		t.Errorf("a at weight 0 and b in maint: answers %v, want 503s", got)
	}
	// The proxy releases a server just after the response went out, so
	// b's last request may still count as active for a moment.
	listed := testenv.Poll(testenv.EventuallyTimeout, func() bool {
		code, out, _ = wharfServer(append(admin, "list")...)
		return code == 0 && regexpLine(out, `web/a\s+\S+\s+up\s+ready\s+0 \(config 1\)\s+0$`) && regexpLine(out, `web/b\s+\S+\s+up\s+maint\s+1\s+0$`)
	})
	if !listed {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	code, out, _ = wharfServer(append(admin, "list", "--names")...)
	if code != 0 || out != "web/a\nweb/b\n" {
		t.Errorf("list --names: exit %d %q", code, out)
	}
}

// regexpLine reports whether some line of out matches re.
func regexpLine(out, re string) bool {
	return regexp.MustCompile("(?m)" + re).MatchString(out)
}

// The endpoints need the token when one is set; mistakes get a helpful
// error and change nothing.
func TestServerCommandErrors(t *testing.T) {
	p := newBackendPair(t)
	path, adminAddr, _ := startProxyGateway(t, p, "s3cret")
	f := func(wantCode int, wantErr string, args ...string) {
		t.Helper()
		code, out, errOut := wharfServer(args...)
		if code != wantCode || !strings.Contains(errOut, wantErr) {
			t.Errorf("wharf server %v: exit %d, stderr %q, stdout %q; want exit %d and %q", args, code, errOut, out, wantCode, wantErr)
		}
	}
	// Without the config, no token is sent: refused.
	f(1, "wants a bearer token", "--admin", adminAddr, "drain", "web/a")
	f(1, "wants a bearer token", "--admin", adminAddr, "list")
	// With it, accepted; flags may follow the arguments.
	f(0, "", "drain", "web/a", "-c", path, "--admin", adminAddr)
	f(1, `unknown backend "api"; running backends: web`, "-c", path, "--admin", adminAddr, "drain", "api/a")
	f(1, `backend web has no server "c"; its servers: a, b`, "-c", path, "--admin", adminAddr, "ready", "web/c")
	f(2, `want BACKEND/SERVER`, "-c", path, "--admin", adminAddr, "ready", "web")
	f(2, `want a whole number 0-256`, "-c", path, "--admin", adminAddr, "weight", "web/a", "300")
	f(2, `unknown command "disable"`, "-c", path, "disable", "web/a")
	f(2, `want BACKEND/SERVER WEIGHT`, "-c", path, "weight", "web/a")
	f(1, "cannot reach the admin listener", "--admin", "127.0.0.1:1", "list")

	// The API itself: a bad value changes nothing.
	post := func(target, body, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/api/servers/web/b", "state=maint&weight=x", "s3cret"); code != 400 || !strings.Contains(body, `weight \"x\"`) {
		t.Errorf("weight=x: %d %s", code, body)
	}
	if code, body := post("/api/servers/web/b", "state=off", "s3cret"); code != 400 || !strings.Contains(body, "not one of ready, drain, maint") {
		t.Errorf("state=off: %d %s", code, body)
	}
	if code, body := post("/api/servers/web/b", "", "s3cret"); code != 400 || !strings.Contains(body, "give state") {
		t.Errorf("no values: %d %s", code, body)
	}
	if code, _ := post("/api/servers/web/b", "state=maint", "wrong"); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, body := post("/api/servers/web/b", "state=drain&weight=5", "s3cret"); code != 200 || !strings.Contains(body, `"admin":"drain"`) || !strings.Contains(body, `"weight":5`) {
		t.Errorf("state and weight at once: %d %s", code, body)
	}
	code, out, _ := wharfServer("-c", path, "--admin", adminAddr, "list")
	if code != 0 || !regexpLine(out, `web/a\s+\S+\s+up\s+drain\s+1\s+0$`) || !regexpLine(out, `web/b\s+\S+\s+up\s+drain\s+5 \(config 1\)\s+0$`) {
		t.Errorf("list after the errors: exit %d\n%s", code, out)
	}
	// The status page shows what was set, without a token.
	resp, err := http.Get("http://" + adminAddr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`"server": "b",\s+"state": "up",\s+"admin": "drain",\s+"weight": 5,`).Match(b) {
		t.Errorf("/api/status lacks b's admin state and weight:\n%s", b)
	}
}
