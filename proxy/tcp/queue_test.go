package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/proxy/internal/proxytest"
)

// queueRig runs frontend f over one Greeter server with maxconn 2 and
// the backend key timeout (e.g. `queue_timeout = "10s"`), holds two
// connections to it and opens a third, which finds the server full.
func queueRig(t *testing.T, timeout string) (r *rig, g *proxytest.Server, held [2]*net.TCPConn, third *net.TCPConn) {
	t.Helper()
	g = proxytest.Listen(t, proxytest.Greeter("g"))
	r = start(t, fmt.Sprintf(`
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
%s
[[backend.b.server]]
address = %q
maxconn = 2
`, timeout, g.Addr))
	for i := range held {
		c := dial(t, r.addr())
		if l, err := bufio.NewReader(c).ReadString('\n'); l != "g\n" {
			t.Fatalf("held connection %d: %q, %v", i, l, err)
		}
		held[i] = c
	}
	third = dial(t, r.addr())
	testenv.EventuallyWithin(t, 2*time.Second, "third connection queued", func() bool {
		return r.metric("wharf_proxy_backend_queued", "backend", "b") == 1
	})
	return r, g, held, third
}

// Regression: a server at maxconn made wharf reset a new connection at
// once, where HAProxy queues it until a slot frees (the migrating
// guide's maxconn translation). The third connection must wait, then be
// served when a held one closes.
func TestMaxConnQueueServedWhenSlotFrees(t *testing.T) {
	r, g, held, c := queueRig(t, `queue_timeout = "10s"`)
	third := bufio.NewReader(c)
	// Queued, not refused: nothing arrives, the connection stays open.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection while the server is full: %v, want it to wait (queued)", err)
	}
	if n := g.Accepted.Load(); n != 2 {
		t.Fatalf("server accepted %d connections beyond its maxconn 2", n)
	}
	start := time.Now()
	held[0].Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if l, err := third.ReadString('\n'); l != "g\n" {
		t.Fatalf("third connection after a slot freed: %q, %v; want served", l, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("third connection served %v after the slot freed", d)
	}
	if q, rej := r.metric("wharf_proxy_backend_queued", "backend", "b"), r.metric("wharf_proxy_frontend_rejected_total"); q != 0 || rej != 0 {
		t.Errorf("queued = %v, rejected = %v after serving; want 0, 0", q, rej)
	}
	held[1].Close()
}

// The queue is bounded in time: with no slot freeing, the third
// connection is refused after queue_timeout and counted, and no
// goroutine is left behind. Without queue_timeout the bound is
// connect_timeout, as HAProxy's timeout queue defaults to timeout
// connect (docs/migrating.md).
func TestMaxConnQueueTimeout(t *testing.T) {
	for _, timeout := range []string{`queue_timeout = "600ms"`, `connect_timeout = "600ms"`} {
		t.Run(timeout[:strings.IndexByte(timeout, ' ')], func(t *testing.T) { testQueueTimeout(t, timeout) })
	}
}

func testQueueTimeout(t *testing.T, timeout string) {
	base := runtime.NumGoroutine()
	r, g, held, c := queueRig(t, timeout)
	queuedAt := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	waited := time.Since(queuedAt)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection: %v, want it closed after queue_timeout", err)
	}
	// 600 ms with room for a loaded machine, below 4 x 600 ms (a default
	// other than connect_timeout itself fails).
	if waited < 400*time.Millisecond || waited > 2*time.Second {
		t.Errorf("third connection closed after %v, want about queue_timeout 600ms", waited)
	}
	testenv.EventuallyWithin(t, time.Second, "queue_timeout counted", func() bool {
		return r.metric("wharf_proxy_frontend_rejected_total", "reason", "queue_timeout") == 1 &&
			r.metric("wharf_proxy_backend_no_server_total", "backend", "b") == 1 &&
			r.metric("wharf_proxy_backend_queued", "backend", "b") == 0
	})
	if n := g.Accepted.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2 (maxconn)", n)
	}
	proxytest.CheckStats(t, r.reg, r.f.Stats(), r.bs)
	for _, c := range held {
		c.Close()
	}
	c.Close()
	testenv.EventuallyWithin(t, 2*time.Second, "held connections ended", func() bool {
		return r.f.Stats().Active == 0
	})
	proxytest.SettleGoroutines(t, base, 12)
}
