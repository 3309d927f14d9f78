package admin

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/metrics"
)

// Regression: the admin listener took connections until wharf ran out of
// file descriptors: 50,000 idle connections from one local process took
// the descriptors syslog ingest needed too. Beyond maxConns a connection
// is closed at once and counted; the ones it holds are still served.
func TestAdminConnectionsBounded(t *testing.T) {
	reg := metrics.NewRegistry()
	var logs syncBuffer
	s := New(reg, func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(&logs, nil)))
	s.maxConns = 4
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	held := make([]net.Conn, s.maxConns)
	for i := range held {
		held[i] = dial()
	}
	// The extra ones are closed at once, without an answer.
	for range 3 {
		c := dial()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 64)); err == nil || isTimeout(err) {
			t.Fatalf("connection %d with %d open: read %d bytes, err %v; want it closed at once", s.maxConns+1, s.maxConns, n, err)
		}
	}
	// One of those held still gets /metrics, which counts the refusals.
	c := held[0]
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET /metrics on a connection opened before the limit: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	if want := `wharf_admin_rejected_total{reason="maxconn"} 3`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics has no %s:\n%s", want, grepLines(string(body), "wharf_admin"))
	}
	if want := `wharf_admin_connections 4`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics has no %s:\n%s", want, grepLines(string(body), "wharf_admin"))
	}
	// One warning for the three (throttled to one a second).
	if n := strings.Count(logs.String(), "admin: connection refused"); n != 1 {
		t.Errorf("%d warnings for 3 refusals within a second, want 1:\n%s", n, logs.String())
	}
	// A held connection closed frees its place.
	held[1].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c := dial()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no place freed after a held connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The default applies to a server made by New.
func TestMaxConnsDefault(t *testing.T) {
	s := New(metrics.NewRegistry(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if s.maxConns != adminMaxConns || adminMaxConns <= 0 {
		t.Fatalf("maxConns %v, want %v", s.maxConns, adminMaxConns)
	}
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Regression (review): a request that announces a body and sends less,
// on a public path, held its connection until the client let go:
// net/http reads and discards an unread body after the handler without a
// deadline. maxConns such connections refused everyone else for good.
// Now the body gets bodyTimeout, and the slots come back.
func TestAdminStalledBodyFreesItsSlot(t *testing.T) {
	s := New(metrics.NewRegistry(), func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.maxConns = 2
	s.bodyTimeout = 300 * time.Millisecond
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	for range s.maxConns {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nab")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// The answer, then the server's close once the body times out.
		if _, err := io.ReadAll(c); isTimeout(err) {
			t.Fatalf("a connection stalled in its body still open after 5 s (body timeout %v)", s.bodyTimeout)
		}
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz after %d stalled bodies: %v", s.maxConns, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}
}
