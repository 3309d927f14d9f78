package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/proxy/internal/proxytest"
)

// evRig is a frontend with engine = "event-loop" in front of srv.
func evRig(t *testing.T, addr, backendExtra string) *rig {
	t.Helper()
	toml := strings.Replace(proxytest.OneServer("http", addr), `backend = "b"`, "backend = \"b\"\nengine = \"event-loop\"", 1)
	toml = strings.Replace(toml, `check = "none"`, "check = \"none\"\n"+backendExtra, 1)
	return start(t, toml)
}

func (r *rig) evCount(outcome string) float64 {
	return r.metric("wharf_proxy_http_event_loop_total", "outcome", outcome)
}

// TestEventLoopEngine: what engine = "event-loop" serves on its loops
// (counted served) and what it hands to the goroutine code (handoff
// before a request went out, resume with a response under way), each
// answered as the goroutine code answers it, on one kept-alive client
// connection where HTTP/1.1 allows.
func TestEventLoopEngine(t *testing.T) {
	var srvConns atomic.Int64
	big := strings.Repeat("x", evMaxBody+1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			io.WriteString(w, "first,")
			http.NewResponseController(w).Flush()
			io.WriteString(w, "second")
		case "/big":
			io.WriteString(w, big)
		case "/empty":
			w.WriteHeader(204)
		case "/post":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %q", b)
		default:
			fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
		}
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			srvConns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	r := evRig(t, hostPort(s), "")

	t.Run("plain GETs on the loop, one server connection", func(t *testing.T) {
		c := dialRaw(t, r)
		before, conns := r.evCount("served"), srvConns.Load()
		for i := range 50 {
			c.send(fmt.Sprintf("GET /n/%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
			resp, body := c.read("GET")
			if resp.StatusCode != 200 || body != fmt.Sprintf("GET /n/%d", i) {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if got := r.evCount("served") - before; got != 50 {
			t.Errorf("served by the loop: %v, want 50", got)
		}
		if n := srvConns.Load() - conns; n > 1 {
			t.Errorf("the server saw %d new connections for 50 requests, want at most 1 (kept alive)", n)
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		c := dialRaw(t, r)
		var b strings.Builder
		for i := range 10 {
			fmt.Fprintf(&b, "GET /p/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
		b.WriteString("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\n")
		c.send(b.String())
		for i := range 10 {
			if resp, body := c.read("GET"); resp.StatusCode != 200 || body != fmt.Sprintf("GET /p/%d", i) {
				t.Fatalf("pipelined %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if resp, body := c.read("HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("HEAD /h")) {
			t.Errorf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
		}
		if resp, body := c.read("GET"); resp.StatusCode != 204 || body != "" {
			t.Errorf("204: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("a body is handed to the goroutine code", func(t *testing.T) {
		c := dialRaw(t, r)
		before := r.evCount("handoff")
		c.send("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		if resp, body := c.read("POST"); resp.StatusCode != 200 || body != `got "hello"` {
			t.Fatalf("POST: %d %q", resp.StatusCode, body)
		}
		c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "GET /after" {
			t.Fatalf("after the handoff: %d %q", resp.StatusCode, body)
		}
		if got := r.evCount("handoff") - before; got != 1 {
			t.Errorf("handoffs %v, want 1", got)
		}
	})
	for _, tc := range []struct{ path, want string }{{"/chunked", "first,second"}, {"/big", big}} {
		t.Run("response "+tc.path+" is resumed by the goroutine code", func(t *testing.T) {
			c := dialRaw(t, r)
			before := r.evCount("resume")
			// The second request is already buffered when the first is
			// handed over: it must be served after it, not lost.
			c.send("GET " + tc.path + " HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != 200 || body != tc.want {
				t.Fatalf("%s: %d, %d bytes", tc.path, resp.StatusCode, len(body))
			}
			if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "GET /next" {
				t.Fatalf("the request after it: %d %q", resp.StatusCode, body)
			}
			if got := r.evCount("resume") - before; got != 1 {
				t.Errorf("resumed %v, want 1", got)
			}
		})
	}
	t.Run("HTTP/1.0 and Connection: close", func(t *testing.T) {
		for _, req := range []string{"GET /ten HTTP/1.0\r\n\r\n", "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"} {
			c := dialRaw(t, r)
			c.send(req)
			if resp, _ := c.read("GET"); resp.StatusCode != 200 {
				t.Fatalf("%q: %d", req, resp.StatusCode)
			}
			if !c.closed() {
				t.Errorf("%q: the connection stayed open", req)
			}
		}
	})
}

// TestEventLoopServerFaults: a server that does not answer in time
// (504), one that closes a kept-alive connection between requests (the
// request is sent again on a new one), one that sends garbage (502), and
// a client that leaves while its request is in flight.
func TestEventLoopServerFaults(t *testing.T) {
	// A raw server: it answers each connection's first request and
	// closes it, answers /slow after 2 s, and /garbage with garbage.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				switch req.URL.Path {
				case "/slow":
					time.Sleep(2 * time.Second)
				case "/garbage":
					io.WriteString(c, "NOT HTTP AT ALL\r\n\r\n")
					return
				case "/slowbody": // the head at once, 100 KiB of body over 0.6 s
					const n = 100 << 10
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n)
					for range 6 {
						time.Sleep(100 * time.Millisecond)
						io.WriteString(c, strings.Repeat("z", n/6))
					}
					io.WriteString(c, strings.Repeat("z", n-6*(n/6)))
					return
				}
				body := req.Method + " " + req.URL.Path
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				time.Sleep(50 * time.Millisecond) // then close: the kept-alive connection goes stale
			}()
		}
	}()
	r := evRig(t, ln.Addr().String(), `server_timeout = "300ms"`)
	c := dialRaw(t, r)
	for i := range 3 {
		c.send(fmt.Sprintf("GET /s/%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != fmt.Sprintf("GET /s/%d", i) {
			t.Fatalf("request %d over a server that closes after each: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond) // the server has closed the pooled connection
	}
	c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != 504 {
		t.Errorf("a server silent past server_timeout: %d %q, want 504", resp.StatusCode, body)
	}
	// server_timeout bounds the wait for the head, not a body that keeps
	// coming (the goroutine code streams it, as with that engine).
	cs := dialRaw(t, r)
	cs.send("GET /slowbody HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := cs.read("GET"); resp.StatusCode != 200 || len(body) != 100<<10 {
		t.Errorf("a slow body after a head in time: %d, %d bytes, want 200 and 102400", resp.StatusCode, len(body))
	}
	c2 := dialRaw(t, r)
	c2.send("GET /garbage HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c2.read("GET"); resp.StatusCode != 502 {
		t.Errorf("a server answering garbage: %d %q, want 502", resp.StatusCode, body)
	}
	// A client that half-closes after its request still gets the answer
	// (gnet closes on EOF: the goroutine code takes the connection).
	c3 := dialRaw(t, r)
	c3.send("GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
	c3.c.(*net.TCPConn).CloseWrite()
	if resp, body := c3.read("GET"); resp.StatusCode != 200 || body != "GET /half" {
		t.Errorf("a client that half-closed: %d %q", resp.StatusCode, body)
	}
	// A client that leaves while its request waits: the exchange ends as
	// with the goroutine engine (here server_timeout comes first: 504),
	// and nothing else is disturbed.
	fiveBefore := r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "5xx")
	c5 := dialRaw(t, r)
	c5.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	c5.c.Close()
	testenv.EventuallyWithin(t, 3*time.Second, "the abandoned request counted", func() bool {
		return r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "4xx")+
			r.metric("wharf_proxy_http_requests_total", "backend", "b", "code", "5xx") > fiveBefore
	})
	c4 := dialRaw(t, r)
	c4.send("GET /still HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c4.read("GET"); resp.StatusCode != 200 || body != "GET /still" {
		t.Errorf("after the faults: %d %q", resp.StatusCode, body)
	}
	if r.evCount("served") < 4 {
		t.Errorf("served by the loop: %v, want at least 4 (handoff %v, resume %v)", r.evCount("served"), r.evCount("handoff"), r.evCount("resume"))
	}
}

// TestEventLoopHandoffKeepsEveryByte: a request body larger than what gnet
// reads at once, sent in one go, reaches the server whole after the
// handoff (the loop must not read the socket once the goroutine has it),
// as do the bytes pipelined behind a response the goroutine code resumes.
func TestEventLoopHandoffKeepsEveryByte(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d %v", len(b), err)
	}))
	t.Cleanup(s.Close)
	r := evRig(t, hostPort(s), "")
	for _, n := range []int{30 << 10, 70 << 10, 300 << 10, 300 << 10, 300 << 10} {
		c := dialRaw(t, r)
		go io.WriteString(c.c, fmt.Sprintf("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, strings.Repeat("y", n)))
		if resp, body := c.read("POST"); resp.StatusCode != 200 || body != fmt.Sprintf("got %d <nil>", n) {
			t.Errorf("a %d-byte body: %d %q", n, resp.StatusCode, body)
		}
	}
}

// TestEventLoopPipelinedOrder: 200 pipelined requests for 32 KiB answers
// and a chunked one behind them, from a client that starts reading late:
// the loop serves answers until the client's socket does not take one
// whole, then hands the connection, with the rest of that answer, to
// the goroutine code, which writes it before serving the next request.
// So answers never overtake each other, and a client that does not read
// holds one answer in wharf at most.
func TestEventLoopPipelinedOrder(t *testing.T) {
	big := strings.Repeat("b", evMaxBody-100)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			io.WriteString(w, "first,")
			http.NewResponseController(w).Flush()
			io.WriteString(w, "second")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(big))) // not chunked
		io.WriteString(w, big)
	}))
	t.Cleanup(s.Close)
	r := evRig(t, hostPort(s), "")
	c := dialRaw(t, r)
	c.c.(*net.TCPConn).SetReadBuffer(64 << 10)
	const n = 200 // 6 MiB: more than the sockets hold
	c.send(strings.Repeat("GET /big HTTP/1.1\r\nHost: x\r\n\r\n", n) + "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(500 * time.Millisecond) // the client reads late
	for i := 0; i <= n; i++ {
		want := big
		if i == n {
			want = "first,second"
		}
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != want {
			t.Fatalf("answer %d: %d, %d bytes (HTTP/1.1 at %d)", i, resp.StatusCode, len(body), strings.Index(body, "HTTP/1.1"))
		}
	}
	if served := r.evCount("served"); served < 1 || served >= n || r.evCount("handoff") != 1 {
		t.Errorf("the loop served %v and handed off %v, want 1 to %d and 1", served, r.evCount("handoff"), n-1)
	}
}

// TestEventLoopClientResets: clients that reset their connection about
// when the answer is written (the write fails: evWriter keeps the error,
// done closes the connection) for 3 s: the proxy stays up and serves.
func TestEventLoopClientResets(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		io.WriteString(w, "0123456789")
	}))
	t.Cleanup(s.Close)
	r := evRig(t, hostPort(s), "")
	addr := r.f.Addrs()[0].String()
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					continue
				}
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				time.Sleep(time.Duration(800+(g*97+i*31)%800) * time.Microsecond)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	wg.Wait()
	c := dialRaw(t, r)
	c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "0123456789" {
		t.Errorf("after the resets: %d %q", resp.StatusCode, body)
	}
	t.Logf("served %v while clients reset", r.evCount("served"))
}
