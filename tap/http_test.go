package tap

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/ingest"
	"wharf/metrics"
	"wharf/route"
)

// startListener runs a real UDP syslog bind of frontend "edge" on a free
// loopback port, tapped by h, and returns its port.
func startListener(t *testing.T, h *Hub) int {
	t.Helper()
	fe := &conf.Frontend{Name: "edge"}
	b := conf.Bind{Scheme: "udp", Host: "127.0.0.1", Port: 0, Addr: "127.0.0.1:0"}
	var routes route.Holder // no table: messages are tapped, then dropped as no_route
	l, err := ingest.New(fe, b, &routes, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l.SetTap(h.For("edge"))
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Stop(ctx)
	})
	_, p, _ := net.SplitHostPort(l.Addr())
	port, _ := strconv.Atoi(p)
	return port
}

func TestHandlerStreamsFilteredMessages(t *testing.T) {
	h := NewHub()
	port := startListener(t, h)
	srv := httptest.NewServer(Handler(h, func(p uint16) bool { return int(p) == port }, nil))
	defer srv.Close()

	f := func(query string, send []string, want []string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/tap?"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %s %s", query, resp.Status, b)
		}
		rd := bufio.NewReader(resp.Body)
		first, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(first, NoticePrefix+"tapping ") {
			t.Fatalf("%s: first line %q, %v; want the tapping notice", query, first, err)
		}
		c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, s := range send {
			if _, err := c.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		for _, w := range want {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: reading a line: %v (want %q)", query, err, w)
			}
			if !strings.Contains(line, w) {
				t.Fatalf("%s: line %q, want it to contain %q", query, line, w)
			}
		}
	}
	msgs := []string{
		"<14>1 2026-11-25T10:00:00Z web1 nginx - - - GET /index",
		"<11>1 2026-11-25T10:00:01Z fw1 sshd 7 - - auth failed",
		"<10>Nov 25 10:00:02 fw2 kernel: link down",
		"<11>1 2026-11-25T10:00:03Z web2 app - - - boom",
	}
	// UDP on loopback keeps order for one socket; the filtered lines come in send order.
	f("frontend=edge", msgs, []string{`"message":"GET /index"`, `"message":"auth failed"`, `"message":"link down"`, `"message":"boom"`})
	f("port="+strconv.Itoa(port)+"&severity=err..emerg", msgs, []string{`"hostname":"fw1"`, `"hostname":"fw2"`, `"hostname":"web2"`})
	f("frontend=edge&host=fw*&raw=1", msgs, []string{msgs[1] + "\n", msgs[2] + "\n"})
	f("frontend=edge&app=kern*", msgs, []string{`"app_name":"kernel"`})
}

func TestHandlerRejectsBadQueries(t *testing.T) {
	h := NewHub()
	h.For("edge")
	srv := httptest.NewServer(Handler(h, func(p uint16) bool { return p == 514 }, nil))
	defer srv.Close()
	f := func(query string, code int, want string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/tap?" + query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %q, want %d containing %q", query, resp.StatusCode, b, code, want)
		}
	}
	f("", 400, "exactly one of frontend=NAME or port=N")
	f("frontend=edge&port=514", 400, "exactly one of")
	f("port=70000", 400, "not a port number")
	f("port=515", 404, "no syslog bind listens on port 515")
	f("frontend=core", 404, `no frontend "core"`)
	f("frontend=edge&severity=loud", 400, "unknown severity")
	f("frontend=edge&buffer=0", 400, "buffer")
	f("frontend=edge&buffer=65537", 400, `buffer="65537" is not a line count 1..65536`)
	f("frontend=edge&buffer=1048576", 400, "1..65536")
}

func TestHandlerEndsOnHubClose(t *testing.T) {
	h := NewHub()
	h.For("edge")
	srv := httptest.NewServer(Handler(h, nil, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/tap?frontend=edge")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	h.Close()
	rest, err := io.ReadAll(rd)
	if err != nil || !strings.Contains(string(rest), "end (wharf is shutting down)") {
		t.Fatalf("after Hub.Close: %q, %v; want the end notice and EOF", rest, err)
	}
}

func TestHandlerLimitsTaps(t *testing.T) {
	h := NewHub()
	h.For("edge")
	srv := httptest.NewServer(Handler(h, nil, nil))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	get := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/tap?frontend=edge", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var open []*http.Response
	for i := 0; i < 8; i++ {
		resp := get()
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("tap %d: %s", i+1, resp.Status)
		}
		open = append(open, resp)
	}
	resp := get()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "limit of 8 taps") {
		t.Fatalf("9th tap: %s %q, want 503 naming the limit of 8 taps", resp.Status, b)
	}
	open[0].Body.Close() // a closed tap frees its place
	var code int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp := get()
		code = resp.StatusCode
		resp.Body.Close()
		if code == 200 {
			return
		}
	}
	t.Fatalf("a tap after one closed: %d, want 200", code)
}

// Regression: a client that stopped reading (or a dead peer) kept its
// tap for good, so 8 of them locked every other operator out with 503.
func TestStalledClientsLoseTheirTaps(t *testing.T) {
	const stall = time.Second
	h := NewHubLimits(Limits{Stall: stall})
	p := h.For("edge")
	var logs lockedBuffer
	srv := httptest.NewServer(Handler(h, nil, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close() // waits for the handlers: after the clients below close

	get := func() (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/tap?frontend=edge", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		return 200, ""
	}
	// Eight clients on real sockets that send their request and never read.
	for i := 0; i < 8; i++ {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4 << 10) // fill up sooner
		if _, err := io.WriteString(c, "GET /api/tap?frontend=edge&raw=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for all eight to be subscribed before asking for a ninth: a
	// probe that got in first would hold a place until the server saw it
	// go, and a stalled client refused meanwhile left seven (CI, loaded,
	// failed this way).
	open := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.subs)
	}
	for deadline := time.Now().Add(10 * time.Second); open() < 8 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if n := open(); n != 8 {
		t.Fatalf("%d of the 8 stalled clients' taps open after 10 s, want 8", n)
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "limit of 8 taps") {
		t.Fatalf("with 8 taps open: %d %q, want 503 naming the limit", code, body)
	}

	// Traffic: far more than the taps and the sockets' buffers hold.
	msg := testMessage(t, "<14>1 2026-11-25T10:00:00Z web1 app - - - "+strings.Repeat("x", 16<<10), 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 64; i++ {
				p.Publish(msg)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer wg.Wait()
	defer close(stop)

	var code int
	var body string
	start := time.Now()
	for deadline := start.Add(stall + 10*time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body = get(); code == 200 {
			break
		}
	}
	if code != 200 {
		t.Fatalf("%v after the traffic began, with 8 stalled clients: %d %q; want 200 once the stall limit (%v) ended a stalled stream", time.Since(start).Round(time.Millisecond), code, body, stall)
	}
	t.Logf("a new tap got 200 %v after the traffic began (stall limit %v)", time.Since(start).Round(time.Millisecond), stall)
	if h.Stalled() == 0 {
		t.Errorf("Hub.Stalled() = 0, want the ended streams counted")
	}
	if n := strings.Count(logs.String(), "tap: ended a stream whose client took nothing"); n == 0 || uint64(n) != h.Stalled() {
		t.Errorf("%d log lines for %d stalled streams, want one each:\n%s", n, h.Stalled(), logs.String())
	}
}

// lockedBuffer is a log destination for concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
