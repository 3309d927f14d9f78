package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/metrics"
	"wharf/route"
)

// Regression: a RELP session that sends nothing held a whole frame's
// buffer (max_message_size + header, ~84 KiB with the window's slots):
// 20,000 idle connections pinned about 1.6 GiB without a byte sent.
func TestRELPIdleSessionsHoldNoFrameBuffer(t *testing.T) {
	const n = 300
	const maxPerSession = 24 << 10                   // was ~84 KiB, now ~8 KiB
	l, reg, _ := listen(t, "relp", &conf.Frontend{}) // max_message_size 64 KiB
	before := liveHeap()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", l.Addr(), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	testenv.Eventually(t, "sessions open", func() bool { return counter(reg, "wharf_frontend_connections", "") == n })
	time.Sleep(100 * time.Millisecond) // every reader in its first Read
	per := (liveHeap() - before) / n
	t.Logf("live heap per idle RELP session: %.1f KiB", float64(per)/1024)
	if per > maxPerSession {
		t.Errorf("an idle RELP session holds %.1f KiB of heap, want < %d KiB", float64(per)/1024, maxPerSession>>10)
	}
	// The sessions still work: one opens and delivers.
	p := &relpPeer{t: t, c: conns[n/2]}
	p.open()
	p.rsp(p.send("syslog", valid), 200)
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Regression: every RELP session closed for a protocol error wrote a
// warning: 2,000 senders of garbage wrote 2,000 lines in a second.
func TestRELPSessionErrorsLogThrottled(t *testing.T) {
	const n = 200
	var logs syncBuf
	l, reg := listenLogged(t, "relp", &conf.Frontend{}, &logs)
	start := time.Now()
	for range n {
		c, err := net.DialTimeout("tcp", l.Addr(), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	}
	testenv.Eventually(t, "sessions closed", func() bool { return counter(reg, "wharf_frontend_closed_total", "relp_frame") == n })
	lines := strings.Count(logs.String(), "RELP session closed")
	secs := time.Since(start).Seconds()
	t.Logf("%d sessions closed for errors in %.2fs: %d log lines", n, secs, lines)
	if limit := 2 + int(secs); lines > limit {
		t.Errorf("%d log lines for %d sessions closed in %.2fs, want at most %d (one a second)", lines, n, secs, limit)
	}
	if lines > 0 && !strings.Contains(logs.String(), "sessions=") {
		t.Errorf("the log line does not say how many sessions it stands for:\n%.500s", logs.String())
	}
}

// Connections refused at maxconn were counted but never logged: an
// operator whose senders were locked out found nothing in the log. Now
// one line a second, naming the limit and how many it stands for.
func TestMaxConnRefusalLogged(t *testing.T) {
	var logs syncBuf
	l, reg := listenLogged(t, "tcp", &conf.Frontend{MaxConn: 2}, &logs)
	for range 2 {
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	testenv.Eventually(t, "two open", func() bool { return counter(reg, "wharf_frontend_connections", "") == 2 })
	start := time.Now()
	for range 50 {
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	testenv.Eventually(t, "50 refused", func() bool { return counter(reg, "wharf_frontend_rejected_total", "maxconn") == 50 })
	lines := strings.Count(logs.String(), "reason=maxconn ")
	secs := time.Since(start).Seconds()
	t.Logf("50 refused at maxconn in %.2fs: %d log lines", secs, lines)
	if lines == 0 || lines > 2+int(secs) {
		t.Errorf("%d log lines naming maxconn for 50 refusals in %.2fs, want 1 to %d:\n%.500s", lines, secs, 2+int(secs), logs.String())
	}
}

// listenLogged is listen with the listener's log written to w.
func listenLogged(t *testing.T, scheme string, fe *conf.Frontend, w io.Writer) (*Listener, *metrics.Registry) {
	t.Helper()
	fe.Name, fe.Sinks = "edge", []string{"out"}
	tab, err := route.Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}, map[string]route.Target{"out": &collector{}})
	if err != nil {
		t.Fatal(err)
	}
	h := &route.Holder{}
	h.Store(tab)
	reg := metrics.NewRegistry()
	l, err := New(fe, conf.Bind{Scheme: scheme, Host: "127.0.0.1", Addr: "127.0.0.1:0"}, h, reg, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Stop(ctx)
	})
	return l, reg
}

// syncBuf is a bytes.Buffer safe for the listener's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
