package admin

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"wharf/metrics"
)

// Regression: a keep-alive connection left idle after a request was held
// for ever (no IdleTimeout): 3,000 such connections from one local
// process held 3,000 descriptors and goroutines until wharf restarted.
func TestIdleKeepAliveConnectionClosed(t *testing.T) {
	s := New(metrics.NewRegistry(), func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.idleTimeout = 300 * time.Millisecond
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("idle keep-alive connection still open after %v (err %v), want closed after about %v", time.Since(start).Round(time.Millisecond), err, s.idleTimeout)
	}
	t.Logf("idle keep-alive connection closed after %v", time.Since(start).Round(time.Millisecond))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// The default applies to a server made by New.
func TestIdleTimeoutDefault(t *testing.T) {
	s := New(metrics.NewRegistry(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if s.idleTimeout != adminIdleTimeout || adminIdleTimeout <= 0 {
		t.Fatalf("idleTimeout %v, want %v", s.idleTimeout, adminIdleTimeout)
	}
}
