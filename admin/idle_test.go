package admin

import (
	"bufio"
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

// Regression: the admin listener took net/http's default of 1 MiB of
// request header per connection: 1,000 connections each sending ~1 MB of
// header lines took wharf to 1.1 GiB RSS before ReadHeaderTimeout cut
// them. A header over adminMaxHeaderBytes is refused with 431.
func TestAdminHeaderBytesBounded(t *testing.T) {
	s := New(metrics.NewRegistry(), func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	f := func(pad int, want int) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/healthz", nil)
		req.Header.Set("X-Pad", strings.Repeat("a", pad))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /healthz with a %d-byte header: %d, want %d", pad, resp.StatusCode, want)
		}
	}
	f(16<<10, http.StatusOK) // a browser with many localhost cookies
	f(256<<10, http.StatusRequestHeaderFieldsTooLarge)
}

// Regression: /metrics served any number of scrapes at once, each
// gathering every series into memory: 1,000 concurrent scrapers took
// wharf to 271 MiB RSS and 4,500 goroutines. Beyond
// adminMaxScrapesInFlight a scrape gets 503 at once.
func TestMetricsScrapesInFlightBounded(t *testing.T) {
	reg := metrics.NewRegistry()
	release := make(chan struct{})
	reg.GaugeFunc("wharf_test_slow", "Blocks a scrape until released.", func() float64 { <-release; return 0 })
	s := New(reg, func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	url := "http://" + s.Addr() + "/metrics"
	for range adminMaxScrapesInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(url); err == nil {
				resp.Body.Close()
			}
		}()
	}
	// One more, once the others are in flight, gets 503 at once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := http.Client{Timeout: 500 * time.Millisecond}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape %d with %d in flight: %v %v, want 503 at once", adminMaxScrapesInFlight+1, adminMaxScrapesInFlight, resp, err)
		}
	}
}

// TestListenIPv4WildcardIsIPv4Only: listen = "0.0.0.0:P" opens an IPv4
// socket (internal/netfamily), not Go's default dual-stack [::], so the
// admin API is not reachable over IPv6 when the operator wrote IPv4.
func TestListenIPv4WildcardIsIPv4Only(t *testing.T) {
	s := New(metrics.NewRegistry(), func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start("0.0.0.0:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if a := s.Addr(); !strings.HasPrefix(a, "0.0.0.0:") {
		t.Errorf("admin listen 0.0.0.0:0 listens on %s, want 0.0.0.0 (IPv4 only)", a)
	}
}
