package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
	"wharf/metrics"
	"wharf/route"
	"wharf/sinks"
)

// collector is a route target that keeps the message texts.
type collector struct {
	mu    sync.Mutex
	msgs  []string
	peers []netip.AddrPort
}

func (c *collector) Enqueue(m *message.Message, _ bool) bool {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(m.Field(m.Msg)))
	c.peers = append(c.peers, m.Peer)
	c.mu.Unlock()
	m.Release()
	return true
}

func (c *collector) EnqueueBatch(ms []*message.Message, block bool) int {
	for _, m := range ms {
		c.Enqueue(m, block)
	}
	return len(ms)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// listen starts a real listener on 127.0.0.1:0 for fe and returns it with
// its registry and target; it is stopped when the test ends.
func listen(t *testing.T, scheme string, fe *conf.Frontend) (*Listener, *metrics.Registry, *collector) {
	t.Helper()
	return listenTo(t, scheme, fe, nil)
}

// listenTo is listen with a sink section for the target (nil: none, which
// routing treats as a sink that needs every field parsed).
func listenTo(t *testing.T, scheme string, fe *conf.Frontend, sink *conf.Sink) (*Listener, *metrics.Registry, *collector) {
	t.Helper()
	tgt := &collector{}
	l, reg := listenRoute(t, scheme, fe, sink, tgt)
	return l, reg, tgt
}

// listenWith is listen with the given target.
func listenWith(t *testing.T, scheme string, fe *conf.Frontend, tgt route.Target) (*Listener, *metrics.Registry) {
	t.Helper()
	return listenRoute(t, scheme, fe, nil, tgt)
}

func listenRoute(t *testing.T, scheme string, fe *conf.Frontend, sink *conf.Sink, tgt route.Target) (*Listener, *metrics.Registry) {
	t.Helper()
	fe.Name = "edge"
	fe.Sinks = []string{"out"}
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}
	if sink != nil {
		cfg.Sinks = map[string]*conf.Sink{"out": sink}
	}
	tab, err := route.Compile(cfg, map[string]route.Target{"out": tgt})
	if err != nil {
		t.Fatal(err)
	}
	h := &route.Holder{}
	h.Store(tab)
	reg := metrics.NewRegistry()
	l, err := New(fe, conf.Bind{Scheme: scheme, Host: "127.0.0.1", Addr: "127.0.0.1:0"}, h, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

func counter(reg *metrics.Registry, name, reason string) float64 {
	var v float64
	reg.Each(func(s metrics.Sample) {
		if s.Name == name && (reason == "" || s.Label("reason") == reason) {
			v += s.Value
		}
	})
	return v
}

const valid = "<13>1 2026-11-25T10:00:00Z h app - - - hello"

func octet(s string) string { return fmt.Sprintf("%d %s", len(s), s) }

func TestACLRefusesBeforeReading(t *testing.T) {
	for _, scheme := range []string{"tcp", "udp"} {
		t.Run(scheme, func(t *testing.T) {
			l, reg, tgt := listen(t, scheme, &conf.Frontend{Deny: []string{"127.0.0.0/8"}})
			c, err := net.Dial(scheme, l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(octet(valid)))
			testenv.Eventually(t, "an acl rejection", func() bool { return counter(reg, "wharf_frontend_rejected_total", "acl") >= 1 })
			time.Sleep(50 * time.Millisecond)
			if n := tgt.count(); n != 0 {
				t.Fatalf("%d messages got through a deny list", n)
			}
			if n := counter(reg, "wharf_frontend_received_total", ""); n != 0 {
				t.Fatalf("received %v bytes' worth from a denied peer", n)
			}
		})
	}
}

func TestMaxConn(t *testing.T) {
	l, reg, tgt := listen(t, "tcp", &conf.Frontend{MaxConn: 2})
	var conns []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(octet(fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - conn%d", i))))
		conns = append(conns, c)
	}
	testenv.Eventually(t, "two messages", func() bool { return tgt.count() == 2 })
	extra, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection was not closed")
	}
	if n := counter(reg, "wharf_frontend_rejected_total", "maxconn"); n != 1 {
		t.Fatalf("maxconn rejections = %v, want 1", n)
	}
	// A slot frees when a connection closes.
	conns[0].Close()
	testenv.Eventually(t, "the gauge to drop", func() bool { return counter(reg, "wharf_frontend_connections", "") == 1 })
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(octet(valid)))
	testenv.Eventually(t, "a message on the freed slot", func() bool { return tgt.count() == 3 })
}

func TestIdleAndFrameTimeouts(t *testing.T) {
	l, reg, tgt := listen(t, "tcp", &conf.Frontend{
		ClientTimeout: conf.Duration{Duration: 300 * time.Millisecond},
		FrameTimeout:  conf.Duration{Duration: 300 * time.Millisecond},
	})
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		ne, ok := err.(net.Error)
		return err != nil && !(ok && ne.Timeout())
	}
	// Idle: says nothing at all.
	idle, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// Slowloris: a header, then one byte every 100 ms, never a whole frame;
	// it is never idle, so only the frame timeout can catch it.
	slow, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// Busy: a whole message every 100 ms; neither timeout may fire.
	busy, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	slow.Write([]byte("500 <13>1 "))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			slow.Write([]byte("x"))
			busy.Write([]byte(octet(valid)))
		}
	}()
	if !closedWithin(idle, 3*time.Second) {
		t.Error("idle connection not closed")
	}
	if !closedWithin(slow, 3*time.Second) {
		t.Error("slow sender not closed")
	}
	close(stop)
	wg.Wait()
	busy.Write([]byte(octet(valid)))
	if closedWithin(busy, 100*time.Millisecond) {
		t.Error("busy connection was closed")
	}
	if n := counter(reg, "wharf_frontend_closed_total", "idle_timeout"); n != 1 {
		t.Errorf("idle_timeout closes = %v, want 1", n)
	}
	if n := counter(reg, "wharf_frontend_closed_total", "frame_timeout"); n != 1 {
		t.Errorf("frame_timeout closes = %v, want 1", n)
	}
	if tgt.count() < 3 {
		t.Errorf("busy connection delivered %d messages", tgt.count())
	}
}

func TestUDPOversizeAndEmpty(t *testing.T) {
	l, reg, tgt := listen(t, "udp", &conf.Frontend{MaxMessageSize: 100, Oversize: "drop"})
	c, err := net.Dial("udp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(valid + " " + string(make([]byte, 200))))
	c.Write([]byte("\n"))
	c.Write([]byte(valid + "\n"))
	testenv.Eventually(t, "the valid datagram", func() bool { return tgt.count() == 1 })
	if tgt.msgs[0] != "hello" {
		t.Errorf("message %q, want hello (trailing LF trimmed)", tgt.msgs[0])
	}
	testenv.Eventually(t, "counts", func() bool {
		return counter(reg, "wharf_frontend_dropped_total", "oversize") == 1 && counter(reg, "wharf_frontend_malformed_total", "empty") == 1
	})
}

// TestBindErrorNamesTheCause guards against gnet's keepalive option
// masking a failed bind ("bad file descriptor" instead of the reason).
func TestBindErrorNamesTheCause(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	fe := &conf.Frontend{Name: "edge", Sinks: []string{"out"}}
	l, err := New(fe, conf.Bind{Scheme: "tcp", Host: "127.0.0.1", Addr: taken.Addr().String()}, &route.Holder{}, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = l.Start()
	if err == nil {
		t.Fatal("second bind on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("bind error %q does not say the address is in use", err)
	}
}

// TestUDPBurstBatchedReads sends a burst of datagrams from two sockets (one
// IPv4, one IPv6) so most arrive through the recvmmsg drain, and checks
// every one arrives once with its sender's address, and that a datagram
// longer than the batch slot is cut and counted.
func TestUDPBurstBatchedReads(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			fe := &conf.Frontend{Name: "edge", Sinks: []string{"out"}, MaxMessageSize: 1000}
			cfg := &conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}
			tgt := &collector{}
			tab, _ := route.Compile(cfg, map[string]route.Target{"out": tgt})
			h := &route.Holder{}
			h.Store(tab)
			reg := metrics.NewRegistry()
			addr := net.JoinHostPort(host, "0")
			l, err := New(fe, conf.Bind{Scheme: "udp", Host: host, Addr: addr}, h, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Start(); err != nil {
				t.Skipf("no %s here: %v", host, err)
			}
			defer l.Stop(context.Background())
			c, err := net.Dial("udp", l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const n = 3000
			for i := range n {
				fmt.Fprintf(c, "<13>1 2026-11-25T10:00:00Z h app - - - d%d", i)
			}
			c.Write([]byte("<13>1 2026-11-25T10:00:00Z h app - - - " + strings.Repeat("y", 3000)))
			testenv.Eventually(t, "all datagrams", func() bool { return tgt.count() == n+1 })
			want := c.LocalAddr().(*net.UDPAddr).AddrPort()
			seen := map[string]bool{}
			tgt.mu.Lock()
			defer tgt.mu.Unlock()
			for i, m := range tgt.msgs {
				if tgt.peers[i] != want {
					t.Fatalf("datagram %d from %v, want %v", i, tgt.peers[i], want)
				}
				if seen[m] {
					t.Fatalf("%q twice", m)
				}
				seen[m] = true
			}
			if got := tgt.msgs[n]; len(got) != 1000-len("<13>1 2026-11-25T10:00:00Z h app - - - ") {
				t.Errorf("oversize datagram delivered with a %d-byte message, want it cut at max_message_size", len(got))
			}
			if counter(reg, "wharf_frontend_truncated_total", "") != 1 {
				t.Error("truncation not counted")
			}
		})
	}
}

// TestTCPMessageSplitAcrossReads guards against Discard(0) (gnet's "discard
// everything") throwing away a partial frame left for the next read.
func TestTCPMessageSplitAcrossReads(t *testing.T) {
	l, reg, tgt := listen(t, "tcp", &conf.Frontend{})
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := octet(valid) + octet(valid)
	for _, cut := range []int{2, 10, len(m) - 1} {
		if _, err := c.Write([]byte(m[:cut])); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // separate reads
		if _, err := c.Write([]byte(m[cut:])); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "six messages", func() bool { return tgt.count() == 6 })
	tgt.mu.Lock()
	defer tgt.mu.Unlock()
	for i, s := range tgt.msgs {
		if s != "hello" {
			t.Errorf("message %d = %q, want hello", i, s)
		}
	}
	if n := counter(reg, "wharf_frontend_malformed_total", ""); n != 0 {
		t.Errorf("malformed = %v, want 0", n)
	}
}

// TestTCPFrameCutAcrossReadsStitched: the read after a cut frame is
// first peeked only as far as stitchBytes past what gnet kept (see
// stitchBytes): the cut frame is completed there, or, when its rest is
// longer, in a second Peek, and the frames after it in the same read are
// framed where they lie. Nothing may wait for a read that never comes.
func TestTCPFrameCutAcrossReadsStitched(t *testing.T) {
	l, _, tgt := listen(t, "tcp", &conf.Frontend{MaxMessageSize: 64 << 10})
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := octet("<13>1 - h app - - - " + strings.Repeat("b", 3*stitchBytes))
	small := octet(valid)
	want := 0
	for _, tc := range []struct {
		name        string
		first, rest string
		msgs        int
	}{
		// The cut frame completes within the first window; 60 more in
		// the same read (more than stitchBytes of them).
		{"small frame cut, many after", small[:7], small[7:] + strings.Repeat(small, 60), 61},
		// The cut frame's rest is longer than stitchBytes: a second Peek.
		{"long frame cut early", big[:10], big[10:], 1},
		{"long frame cut early, frames after", big[:10], big[10:] + strings.Repeat(small, 30), 31},
		// The rest fits the first window.
		{"long frame cut late", big[:len(big)-100], big[len(big)-100:], 1},
	} {
		if _, err := c.Write([]byte(tc.first)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // separate reads
		if _, err := c.Write([]byte(tc.rest)); err != nil {
			t.Fatal(err)
		}
		want += tc.msgs
		testenv.Eventually(t, fmt.Sprintf("%s: %d messages in all", tc.name, want), func() bool { return tgt.count() == want })
	}
}

// TestOutbox: a read's messages reach each destination in arrival order,
// one EnqueueBatch per destination; flush keeps no reference and reuse
// allocates nothing.
func TestOutbox(t *testing.T) {
	a, b := &collector{}, &collector{}
	var out outbox
	msg := func(s string) *message.Message {
		m := message.New([]byte(s))
		m.Msg = message.Span{Len: uint32(len(s))}
		return m
	}
	f := func(adds string, wantA, wantB string) {
		t.Helper()
		a.msgs, b.msgs = nil, nil
		for i, c := range adds {
			tgt := a
			if c == 'b' {
				tgt = b
			}
			out.add(tgt, msg(fmt.Sprint(i)))
		}
		out.flush(nil, nil, true) // no frames: nothing to remake
		if got := strings.Join(a.msgs, ","); got != wantA {
			t.Errorf("%s: a got %q, want %q", adds, got, wantA)
		}
		if got := strings.Join(b.msgs, ","); got != wantB {
			t.Errorf("%s: b got %q, want %q", adds, got, wantB)
		}
		if len(out.dests) != 0 {
			t.Errorf("%s: %d destinations left after flush", adds, len(out.dests))
		}
		for _, d := range out.dests[:cap(out.dests)] {
			if d.t != nil || len(d.ms) != 0 || (cap(d.ms) > 0 && d.ms[:1][0] != nil) {
				t.Errorf("%s: flush kept a reference", adds)
			}
		}
	}
	f("", "", "")
	f("aaa", "0,1,2", "")
	f("abab", "0,2", "1,3")
	f("babba", "1,4", "0,2,3")

	if raceEnabled {
		return // the race detector makes sync.Pool drop items at random
	}
	ms := make([]*message.Message, 8)
	var r releaseTarget
	allocs := testing.AllocsPerRun(20, func() {
		for i := range ms {
			ms[i] = message.New([]byte("x"))
		}
		for _, m := range ms {
			out.add(&r, m)
		}
		out.flush(nil, nil, true)
	})
	if allocs > 0 {
		t.Errorf("outbox allocates %.1f times per read once warm", allocs)
	}
}

// recordSink keeps the Raw text of what it is given, slowly enough that a
// small queue fills and the listener has to wait (backpressure).
type recordSink struct {
	mu  sync.Mutex
	raw []string
}

func (s *recordSink) Write(_ context.Context, b []*message.Message) error {
	time.Sleep(100 * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range b {
		s.raw = append(s.raw, string(m.Raw))
	}
	return nil
}

func (s *recordSink) Close() error { return nil }

// TestTCPThroughRunnerKeepsOrder: whole reads handed to a real runner
// with a small queue lose nothing (the event loop waits instead) and
// keep each connection's order.
func TestTCPThroughRunnerKeepsOrder(t *testing.T) {
	sink := &recordSink{}
	reg := metrics.NewRegistry()
	r := sinks.NewRunner("out", sink, sinks.RunnerConfig{QueueSize: 64, BatchSize: 16, BatchTimeout: time.Millisecond}.Resolved(), reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Start()
	fe := &conf.Frontend{Name: "edge", Sinks: []string{"out"}, MaxMessageSize: 64 << 10}
	tab, err := route.Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}, map[string]route.Target{"out": r})
	if err != nil {
		t.Fatal(err)
	}
	h := &route.Holder{}
	h.Store(tab)
	l, err := New(fe, conf.Bind{Scheme: "tcp", Host: "127.0.0.1", Addr: "127.0.0.1:0"}, h, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	const conns, each = 2, 3000
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", l.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			var b []byte
			for i := range each {
				m := fmt.Sprintf("<13>1 - host app - - - c%d-%06d", c, i)
				b = fmt.Appendf(b, "%d %s", len(m), m)
			}
			if _, err := nc.Write(b); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	testenv.Poll(testenv.EventuallyTimeout, func() bool { return r.Stats().Sent >= conns*each })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.Stop(ctx)
	r.Close(ctx)
	st := r.Stats()
	if st.Sent != conns*each || st.Dropped[sinks.DropQueueFull]+st.Dropped[sinks.DropClosed] != 0 {
		t.Fatalf("sent %d of %d, dropped %v", st.Sent, conns*each, st.Dropped)
	}
	next := make([]int, conns)
	for _, raw := range sink.raw {
		var c, i int
		if _, err := fmt.Sscanf(raw[strings.LastIndexByte(raw, ' ')+1:], "c%d-%d", &c, &i); err != nil {
			t.Fatalf("unexpected message %q", raw)
		}
		if i != next[c] {
			t.Fatalf("connection %d: message %d arrived when %d was due (order lost)", c, i, next[c])
		}
		next[c]++
	}
}

// TestParseHeaderOnly: with raw output, parse = "header" (the default)
// checks PRI and header but not the structured data, so a message with a
// good header and broken structured data goes through as received, while
// parse = "full" drops it as malformed. Input without a PRI is malformed
// either way.
func TestParseHeaderOnly(t *testing.T) {
	badSD := "<13>1 2026-11-25T10:00:00Z h app - - [unterminated sd"
	garbage := "GET / HTTP/1.1"
	f := func(mode string, wantDelivered int, wantMalformed float64) {
		t.Helper()
		l, reg, tgt := listenTo(t, "udp", &conf.Frontend{Parse: mode}, &conf.Sink{Type: "syslog", Encoding: "raw"})
		c, err := net.Dial("udp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, m := range []string{valid, badSD, garbage} {
			if _, err := c.Write([]byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Eventually(t, "three datagrams received", func() bool { return counter(reg, "wharf_frontend_received_total", "") == 3 })
		testenv.Eventually(t, mode+": the outcome", func() bool {
			return tgt.count() == wantDelivered && counter(reg, "wharf_frontend_malformed_total", "") == wantMalformed
		})
		if n := counter(reg, "wharf_frontend_malformed_total", "no_pri"); n != 1 {
			t.Errorf("%s: garbage counted %v times as no_pri, want 1", mode, n)
		}
	}
	f("header", 2, 1)
	f("full", 1, 2)
}
