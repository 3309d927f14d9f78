package accesslog

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/message"
	"wharf/route"
)

// collect is a route.Target that keeps what it is given.
type collect struct {
	mu sync.Mutex
	ms []*message.Message
}

func (c *collect) Enqueue(m *message.Message, block bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ms = append(c.ms, m)
	return true
}

func (c *collect) EnqueueBatch(ms []*message.Message, block bool) int {
	for _, m := range ms {
		c.Enqueue(m, block)
	}
	return len(ms)
}

func logger(t *testing.T, sinks ...string) (*Logger, map[string]*collect) {
	t.Helper()
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{
		"web":  {Mode: "http", AccessLog: sinks},
		"mute": {Mode: "http"},
	}}
	cs := map[string]*collect{}
	targets := map[string]route.Target{}
	for _, s := range sinks {
		cs[s] = &collect{}
		targets[s] = cs[s]
	}
	tab, err := route.Compile(cfg, targets)
	if err != nil {
		t.Fatal(err)
	}
	var h route.Holder
	h.Store(tab)
	return New("web", &h, nil), cs
}

// TestHTTPLine: the line is an RFC 5424 message as documented, parsed
// like a received one; a request target with a quote and a non-ASCII
// byte stays one field; no answer is status -1 at severity err; each
// sink gets the message (one reference each).
func TestHTTPLine(t *testing.T) {
	l, cs := logger(t, "a", "b")
	start := time.Date(2026, 12, 5, 19, 10, 0, 123e6, time.UTC)
	var r Request
	r.Begin(start, netip.MustParseAddrPort("10.0.0.7:51234"), []byte("GET"), []byte("/a\"b\xff?x=1"), "HTTP/1.1")
	r.Backend, r.Server, r.Connect, r.Response, r.Bytes = "be", "b1", 0, 2*time.Millisecond, 1234
	r.Status = 200
	l.HTTP(&r)
	r.Status = 0
	l.HTTP(&r)
	for _, name := range []string{"a", "b"} {
		ms := cs[name].ms
		if len(ms) != 2 {
			t.Fatalf("sink %s got %d messages, want 2", name, len(ms))
		}
		m := ms[0]
		if m.Format != message.FormatRFC5424 || string(m.Field(m.AppName)) != "wharf" || string(m.Field(m.MsgID)) != "http" || m.Facility() != 16 || m.Severity() != 6 {
			t.Errorf("header: format %v app %q msgid %q facility %d severity %d", m.Format, m.Field(m.AppName), m.Field(m.MsgID), m.Facility(), m.Severity())
		}
		sd := string(m.Field(m.StructuredData))
		for _, p := range []string{`[http@32473 client="10.0.0.7:51234"`, `frontend="web"`, `backend="be"`, `server="b1"`, `status="200"`, `bytes="1234"`, `tc="0"`, `tr="2"`} {
			if !strings.Contains(sd, p) {
				t.Errorf("structured data %q lacks %s", sd, p)
			}
		}
		msg := string(m.Field(m.Msg))
		wantPrefix := "10.0.0.7:51234 [05/Dec/2026:19:10:00.123] web be/b1 0/2/"
		wantSuffix := ` 200 1234 "GET /a%22b%FF?x=1 HTTP/1.1"`
		if !strings.HasPrefix(msg, wantPrefix) || !strings.HasSuffix(msg, wantSuffix) {
			t.Errorf("MSG %q, want %q...%q", msg, wantPrefix, wantSuffix)
		}
		gone := ms[1]
		if gone.Severity() != 3 || !strings.Contains(string(gone.Field(gone.Msg)), ` -1 1234 "GET`) {
			t.Errorf("no answer: severity %d, MSG %q; want err and status -1", gone.Severity(), gone.Field(gone.Msg))
		}
	}
	if refs := cs["a"].ms[0].Refs(); refs != 2 {
		t.Errorf("message shared by two sinks has %d references, want 2", refs)
	}
}

// TestTCPLineAndNoSinks: a TCP connection's line; a frontend without
// access_log, and a nil Logger, log nothing (and do not crash).
func TestTCPLineAndNoSinks(t *testing.T) {
	l, cs := logger(t, "a")
	l.TCP(&Conn{Start: time.Now(), Client: netip.MustParseAddrPort("[::1]:4000"), Backend: "pg", Server: "p1", BytesIn: 512, BytesOut: 20480, Connect: time.Millisecond})
	m := cs["a"].ms[0]
	if got := string(m.Field(m.Msg)); !strings.Contains(got, "[::1]:4000 [") || !strings.HasSuffix(got, " 512 20480") || !strings.Contains(got, " web pg/p1 1/") {
		t.Errorf("tcp MSG %q", got)
	}
	if sd := string(m.Field(m.StructuredData)); !strings.Contains(sd, `bytes_in="512"`) || !strings.Contains(sd, `bytes_out="20480"`) {
		t.Errorf("tcp structured data %q", sd)
	}
	mute := New("mute", l.routes, nil)
	mute.HTTP(&Request{})
	var none *Logger
	none.TCP(&Conn{})
	none.HTTP(&Request{})
	if len(cs["a"].ms) != 1 {
		t.Errorf("%d messages, want only the tcp line", len(cs["a"].ms))
	}
}

// discard releases what it is given.
type discard struct{}

func (discard) Enqueue(m *message.Message, block bool) bool { m.Release(); return true }
func (discard) EnqueueBatch(ms []*message.Message, block bool) int {
	for _, m := range ms {
		m.Release()
	}
	return len(ms)
}

// benchLogger is an HTTP access logger whose lines go to a sink that
// releases them, and a finished request to log.
func benchLogger(tb testing.TB) (*Logger, *Request) {
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{"web": {Mode: "http", AccessLog: []string{"d"}}}}
	tab, err := route.Compile(cfg, map[string]route.Target{"d": discard{}})
	if err != nil {
		tb.Fatal(err)
	}
	var h route.Holder
	h.Store(tab)
	l := New("web", &h, nil)
	var r Request
	r.Begin(time.Now(), netip.MustParseAddrPort("[2001:db8::7]:51234"), []byte("GET"), []byte("/index.html?user=42"), "HTTP/1.1")
	r.Backend, r.Server, r.Status, r.Bytes = "be", "b1", 200, 1234
	return l, &r
}

// BenchmarkHTTP: the cost of one access log line, from the record to the
// message offered to a sink.
func BenchmarkHTTP(b *testing.B) {
	l, r := benchLogger(b)
	b.ReportAllocs()
	for b.Loop() {
		l.HTTP(r)
	}
}

// TestHTTPLineAllocatesNothing holds the README's "allocates nothing"
// for an access log line (pooled message, no formatting allocations).
func TestHTTPLineAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled messages at random")
	}
	l, r := benchLogger(t)
	l.HTTP(r) // the first line may fill pools
	if n := testing.AllocsPerRun(1000, func() { l.HTTP(r) }); n != 0 {
		t.Errorf("an access log line allocates %.1f times, want 0", n)
	}
}
