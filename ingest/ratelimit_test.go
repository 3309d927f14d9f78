package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/conf"
	"wharf/ingest/framing"
	"wharf/internal/testenv"
	"wharf/internal/testpki"
	"wharf/metrics"
)

func rate(t *testing.T, s string) conf.Rate {
	t.Helper()
	r, err := conf.ParseRate(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGCRABucket(t *testing.T) {
	g := newGCRA(conf.Rate{N: 10, Per: time.Second}, 3) // 100ms a message, burst 3
	var b bucket
	now := int64(time.Hour)
	for i := range 3 {
		if w := b.take(g, now); w != 0 {
			t.Fatalf("burst message %d waited %v", i, time.Duration(w))
		}
	}
	if w := b.take(g, now); w != int64(100*time.Millisecond) {
		t.Fatalf("4th message of the burst: wait %v, want 100ms", time.Duration(w))
	}
	if w := b.take(g, now+int64(99*time.Millisecond)); w != int64(time.Millisecond) {
		t.Fatalf("99ms later: wait %v, want 1ms", time.Duration(w))
	}
	if w := b.take(g, now+int64(100*time.Millisecond)); w != 0 {
		t.Fatalf("one token due at 100ms, waited %v", time.Duration(w))
	}
	// A refund makes the token available again.
	b.refund(g)
	if w := b.take(g, now+int64(100*time.Millisecond)); w != 0 {
		t.Fatalf("refunded token not available: wait %v", time.Duration(w))
	}
	// Idle for long: at most a burst, not the tokens of the whole idle time.
	later := now + int64(time.Hour)
	n := 0
	for b.take(g, later) == 0 {
		n++
	}
	if n != 3 {
		t.Fatalf("after an idle hour %d messages passed at once, want the burst of 3", n)
	}
}

func TestIPTableBounded(t *testing.T) {
	g := newGCRA(conf.Rate{N: 1, Per: time.Minute}, 1)
	tab := newIPTable()
	now := int64(time.Hour)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	// Twice the cap of distinct addresses, all active (each just used its
	// one token): the table stops at the cap, and the rest share the
	// overflow buckets, so most of them are refused.
	refused := 0
	for i := range 2 * conf.RateLimitMaxIPs {
		if tab.take(addr(i), g, now) > 0 {
			refused++
		}
	}
	if n := tab.size(); n > conf.RateLimitMaxIPs {
		t.Fatalf("%d addresses tracked, cap %d", n, conf.RateLimitMaxIPs)
	}
	if refused < conf.RateLimitMaxIPs-ipShards {
		t.Fatalf("only %d of %d addresses beyond the cap were limited", refused, conf.RateLimitMaxIPs)
	}
	// A tracked address is still limited on its own.
	if tab.take(addr(0), g, now) == 0 {
		t.Fatal("tracked address passed twice within a minute")
	}
	// Two minutes on every bucket has refilled: a sweep forgets them and
	// new addresses are tracked again.
	later := now + int64(2*time.Minute)
	for i := range 1000 {
		if w := tab.take(addr(3*conf.RateLimitMaxIPs+i), g, later); w > 0 {
			t.Fatalf("new address %d refused after the old ones refilled", i)
		}
	}
	if n := tab.size(); n > 1000+ipShards*ipShardCap/2 {
		t.Fatalf("refilled buckets not swept: %d tracked", n)
	}
}

// The rate-limit check allocates nothing per message, per bind and per IP.
func TestRateLimitNoAllocs(t *testing.T) {
	l := &Listener{reg: metrics.NewRegistry(), labels: []string{"frontend", "f", "bind", "b"}}
	s := &settings{}
	l.attachRates(s, &conf.Frontend{RateLimit: rate(t, "10000000/s"), RateBurst: 1000, RateLimitPerIP: rate(t, "10000000/s"), RateBurstPerIP: 1000})
	peers := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("192.0.2.7")}
	now := time.Now().UnixNano()
	i := 0
	allocs := testing.AllocsPerRun(10000, func() {
		i++
		s.rate.allowDatagram(peers[i%len(peers)], now+int64(i)*1000)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func BenchmarkRateLimit(b *testing.B) {
	for _, tc := range []struct {
		name string
		fe   conf.Frontend
	}{
		{"off", conf.Frontend{}},
		{"bind", conf.Frontend{RateLimit: conf.Rate{N: 10_000_000, Per: time.Second}}},
		{"bind+ip", conf.Frontend{RateLimit: conf.Rate{N: 10_000_000, Per: time.Second}, RateLimitPerIP: conf.Rate{N: 10_000_000, Per: time.Second}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := &Listener{reg: metrics.NewRegistry(), labels: []string{"frontend", "f", "bind", "b"}}
			s := &settings{}
			l.attachRates(s, &tc.fe)
			peers := make([]netip.Addr, 1024)
			for i := range peers {
				peers[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if s.rate != nil {
						s.rate.allowDatagram(peers[i%len(peers)], time.Now().UnixNano())
					}
				}
			})
		})
	}
}

// udpFrom sends n datagrams to addr from the local address from.
func udpFrom(t *testing.T, from, addr string, n int, tag string) {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", from+":0")
	if err != nil {
		t.Fatal(err)
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		if _, err := fmt.Fprintf(c, "<13>1 2026-11-25T10:00:00Z h app - - - %s %d", tag, i); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // bounded bursts: the kernel buffer never overflows
		}
	}
}

func byScope(reg *metrics.Registry, scope string) float64 {
	var v float64
	reg.Each(func(s metrics.Sample) {
		if s.Name == "wharf_frontend_rate_limited_total" && s.Label("scope") == scope {
			v += s.Value
		}
	})
	return v
}

func TestUDPRateLimitDropsCounted(t *testing.T) {
	// 1/m: no token comes back while the test runs, so the counts are exact.
	l, reg, tgt := listen(t, "udp", &conf.Frontend{RateLimit: rate(t, "1/m"), RateBurst: 100})
	udpFrom(t, "127.0.0.1", l.Addr(), 1000, "m")
	testenv.Eventually(t, "1000 datagrams accounted for", func() bool {
		return float64(tgt.count())+counter(reg, "wharf_frontend_dropped_total", "rate_limit") == 1000
	})
	if n := tgt.count(); n != 100 {
		t.Errorf("delivered %d, want the burst of 100", n)
	}
	if n := counter(reg, "wharf_frontend_dropped_total", "rate_limit"); n != 900 {
		t.Errorf("dropped{rate_limit} = %v, want 900", n)
	}
	if n := byScope(reg, "bind"); n != 900 {
		t.Errorf("rate_limited{scope=bind} = %v, want 900", n)
	}
	if n := counter(reg, "wharf_frontend_udp_kernel_drops_total", ""); n > 0 {
		t.Errorf("the kernel dropped %v datagrams: the counts above are not exact", n)
	}
}

func TestUDPRateLimitPerIP(t *testing.T) {
	l, reg, tgt := listen(t, "udp", &conf.Frontend{RateLimitPerIP: rate(t, "1/m"), RateBurstPerIP: 50})
	udpFrom(t, "127.0.0.1", l.Addr(), 500, "noisy")
	udpFrom(t, "127.0.0.2", l.Addr(), 40, "quiet")
	testenv.Eventually(t, "540 datagrams accounted for", func() bool {
		return float64(tgt.count())+counter(reg, "wharf_frontend_dropped_total", "rate_limit") == 540
	})
	noisy, quiet := 0, 0
	tgt.mu.Lock()
	for i, m := range tgt.msgs {
		switch {
		case strings.HasPrefix(m, "noisy") && tgt.peers[i].Addr() == netip.MustParseAddr("127.0.0.1"):
			noisy++
		case strings.HasPrefix(m, "quiet") && tgt.peers[i].Addr() == netip.MustParseAddr("127.0.0.2"):
			quiet++
		}
	}
	tgt.mu.Unlock()
	if noisy != 50 || quiet != 40 {
		t.Errorf("delivered noisy %d (want 50), quiet %d (want all 40)", noisy, quiet)
	}
	if n := byScope(reg, "ip"); n != 450 {
		t.Errorf("rate_limited{scope=ip} = %v, want 450", n)
	}
}

// TestUDPRateLimitReload: a reload changes the limit of a running bind.
func TestUDPRateLimitReload(t *testing.T) {
	fe := &conf.Frontend{RateLimit: rate(t, "1/m"), RateBurst: 10}
	l, reg, tgt := listen(t, "udp", fe)
	udpFrom(t, "127.0.0.1", l.Addr(), 100, "a")
	testenv.Eventually(t, "100 accounted for", func() bool {
		return float64(tgt.count())+counter(reg, "wharf_frontend_dropped_total", "rate_limit") == 100
	})
	if tgt.count() != 10 {
		t.Fatalf("delivered %d, want 10", tgt.count())
	}
	// Lift the limit: everything passes.
	if err := l.Update(&conf.Frontend{Name: "edge", Sinks: []string{"out"}}); err != nil {
		t.Fatal(err)
	}
	udpFrom(t, "127.0.0.1", l.Addr(), 100, "b")
	testenv.Eventually(t, "all of the second batch", func() bool { return tgt.count() == 110 })
	// Limit again, per IP: the bucket starts full (burst 20).
	if err := l.Update(&conf.Frontend{Name: "edge", Sinks: []string{"out"}, RateLimitPerIP: rate(t, "1/m"), RateBurstPerIP: 20}); err != nil {
		t.Fatal(err)
	}
	udpFrom(t, "127.0.0.1", l.Addr(), 100, "c")
	testenv.Eventually(t, "the third batch accounted for", func() bool {
		return float64(tgt.count())+counter(reg, "wharf_frontend_dropped_total", "rate_limit") == 300
	})
	if tgt.count() != 130 {
		t.Fatalf("delivered %d in all, want 10 + 100 + 20", tgt.count())
	}
}

// sendStream writes n octet-counted messages of about size bytes on c,
// as fast as the connection takes them.
func sendStream(c net.Conn, n, size int, tag string) error {
	pad := strings.Repeat("x", max(0, size-60))
	var b []byte
	for i := range n {
		b = fmt.Appendf(b[:0], "<13>1 2026-11-25T10:00:00Z h app - - - %s %d %s", tag, i, pad)
		b = append(fmt.Appendf(nil, "%d ", len(b)), b...)
		if _, err := c.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// slowedTCP sends 3 s worth of messages as fast as it can over one
// connection to a bind limited to 1500/s (burst 400) and checks the
// delivery rate over 2 s, that the connection stays open, and that every
// message arrives.
func slowedTCP(t *testing.T, scheme string, fe *conf.Frontend, dial func(addr string) (net.Conn, error), size int) *metrics.Registry {
	t.Helper()
	// 4500 messages of ~55 B stay under 4 × 64KiB (the wake subtest). The
	// burst of 400 (a quarter second) keeps the figure honest when the
	// test box is loaded: tokens are lost only to a longer stall.
	const perSecond, burst, total = 1500, 400, 4500
	fe.RateLimit, fe.RateBurst = conf.Rate{N: perSecond, Per: time.Second}, burst
	l, reg, tgt := listen(t, scheme, fe)
	c, err := dial(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- sendStream(c, total, size, "m") }()
	time.Sleep(2 * time.Second)
	got, elapsed := tgt.count(), time.Since(start)
	want := burst + perSecond*elapsed.Seconds()
	t.Logf("%s: %d delivered in %v (limit allows %.0f): %.0f msg/s", scheme, got, elapsed.Round(time.Millisecond), want, float64(got-burst)/elapsed.Seconds())
	if float64(got) > want*1.05+10 || float64(got) < want*0.85 {
		t.Errorf("%d delivered in %v, want %.0f ± 10%%", got, elapsed, want)
	}
	testenv.Eventually(t, "every message", func() bool { return tgt.count() == total })
	if err := <-sent; err != nil {
		t.Fatalf("sender: %v", err)
	}
	// Still open and usable.
	if err := sendStream(c, 1, size, "after"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "a message after the flood", func() bool { return tgt.count() == total+1 })
	if n := counter(reg, "wharf_frontend_closed_total", ""); n != 0 {
		t.Errorf("%v connections closed", n)
	}
	if n := byScope(reg, "bind"); n < 1 {
		t.Error("no message counted as rate limited")
	}
	if n := counter(reg, "wharf_frontend_dropped_total", ""); n != 0 {
		t.Errorf("%v messages dropped; a TCP sender must be slowed, not dropped", n)
	}
	return reg
}

func dialTCP(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

func TestTCPRateLimitSlowsSender(t *testing.T) {
	t.Run("wake", func(t *testing.T) {
		// 4500 × 55 B stays under 4 × 64KiB: the connection is only
		// ever held back in gnet's buffer and woken by its timer.
		reg := slowedTCP(t, "tcp", &conf.Frontend{}, dialTCP, 40)
		if n := counter(reg, "wharf_frontend_rate_limit_pauses_total", ""); n != 0 {
			t.Errorf("%v event-loop pauses, want none under the bound", n)
		}
	})
	t.Run("pause", func(t *testing.T) {
		// max_message_size 1KiB: past 4KiB buffered the loop pauses.
		reg := slowedTCP(t, "tcp", &conf.Frontend{MaxMessageSize: 1024}, dialTCP, 200)
		if n := counter(reg, "wharf_frontend_rate_limit_pauses_total", ""); n == 0 {
			t.Error("the event loop never paused")
		}
	})
}

func TestTLSRateLimitSlowsSender(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	slowedTCP(t, "tls", tlsFrontend(t, ca), func(addr string) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	}, 200)
}

// TestTCPRateLimitFloodBounded: a sender flooding a limited tcp:// bind
// is held back by TCP flow control (it cannot write much more than the
// kernel buffers take), another bind keeps serving meanwhile, and Stop
// ends the pause promptly.
func TestTCPRateLimitFloodBounded(t *testing.T) {
	l, reg, tgt := listen(t, "tcp", &conf.Frontend{MaxMessageSize: 1024, RateLimit: rate(t, "1000/s"), RateBurst: 100})
	other, _, otherTgt := listen(t, "tcp", &conf.Frontend{})
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		msg := []byte(octet("<13>1 2026-11-25T10:00:00Z h app - - - " + strings.Repeat("f", 900)))
		batch := []byte(strings.Repeat(string(msg), 64))
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			c.SetWriteDeadline(deadline)
			n, err := c.Write(batch)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	// Meanwhile another bind delivers promptly.
	time.Sleep(200 * time.Millisecond)
	oc, err := net.Dial("tcp", other.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	t0 := time.Now()
	if err := sendStream(oc, 1000, 100, "other"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the other bind's messages", func() bool { return otherTgt.count() == 1000 })
	if d := time.Since(t0); d > time.Second {
		t.Errorf("the other bind took %v for 1000 messages during the flood", d)
	}
	<-done
	got := tgt.count()
	w := written.Load()
	t.Logf("flood: sender wrote %d MiB in 1.5 s; %d messages delivered (limit 1000/s + burst 100)", w>>20, got)
	// Without backpressure gnet would read gigabytes into memory; with it
	// the sender gets no further than the kernel's socket buffers.
	if w > 80<<20 {
		t.Errorf("sender wrote %d MiB: not held back", w>>20)
	}
	if got > 100+1000*2 {
		t.Errorf("%d delivered, over the limit", got)
	}
	if counter(reg, "wharf_frontend_rate_limit_pauses_total", "") == 0 {
		t.Error("the event loop never paused")
	}
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t1); d > time.Second {
		t.Errorf("Stop took %v with a paused event loop", d)
	}
}

// TestTCPRateLimitPerIP: two senders on one bind, from 127.0.0.1 and
// 127.0.0.2; only the noisy one is held to its limit.
func TestTCPRateLimitPerIP(t *testing.T) {
	l, reg, tgt := listen(t, "tcp", &conf.Frontend{RateLimitPerIP: rate(t, "500/s"), RateBurstPerIP: 50})
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	noisy, quiet := dialFrom("127.0.0.1"), dialFrom("127.0.0.2")
	go sendStream(noisy, 1000, 60, "noisy")
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	if err := sendStream(quiet, 400, 60, "quiet"); err != nil {
		t.Fatal(err)
	}
	count := func(tag string) int {
		tgt.mu.Lock()
		defer tgt.mu.Unlock()
		n := 0
		for _, m := range tgt.msgs {
			if strings.HasPrefix(m, tag) {
				n++
			}
		}
		return n
	}
	// 400 from the quiet sender at 500/s with a burst of 50 take 0.7 s
	// on their own bucket; sharing the noisy sender's, 1.5 s or more.
	testenv.Eventually(t, "the quiet sender's messages", func() bool { return count("quiet") == 400 })
	quietTook := time.Since(t0)
	noisyAt := count("noisy")
	elapsed := time.Since(t0) + 100*time.Millisecond
	t.Logf("quiet: 400 in %v; noisy: %d in %v", quietTook.Round(time.Millisecond), noisyAt, elapsed.Round(time.Millisecond))
	if quietTook > 1300*time.Millisecond {
		t.Errorf("quiet sender took %v for 400 messages at 500/s", quietTook)
	}
	if limit := 50 + 500*elapsed.Seconds()*1.1 + 10; float64(noisyAt) > limit {
		t.Errorf("noisy sender got %d through in %v, limit %.0f", noisyAt, elapsed, limit)
	}
	testenv.Eventually(t, "the noisy sender's messages", func() bool { return count("noisy") == 1000 })
	if byScope(reg, "ip") == 0 || byScope(reg, "bind") != 0 {
		t.Errorf("rate_limited by scope: ip %v, bind %v", byScope(reg, "ip"), byScope(reg, "bind"))
	}
}

// TestTCPRateLimitHeldAtClose: a sender that writes a burst and hangs
// up loses nothing wharf read though the limit held it back (charged to
// the bucket as debt); only past the debt bound are messages dropped, and
// counted.
func TestTCPRateLimitHeldAtClose(t *testing.T) {
	f := func(limit string, burst, wantDelivered int) {
		t.Helper()
		l, reg, tgt := listen(t, "tcp", &conf.Frontend{RateLimit: rate(t, limit), RateBurst: burst})
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := sendStream(c, 50, 60, "m"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "the burst", func() bool { return tgt.count() >= burst })
		time.Sleep(50 * time.Millisecond)
		if n := tgt.count(); n > burst+1 {
			t.Fatalf("%s: %d delivered right away, burst %d", limit, n, burst)
		}
		c.Close()
		testenv.Eventually(t, "every message accounted for", func() bool {
			return float64(tgt.count())+counter(reg, "wharf_frontend_dropped_total", "rate_limit") == 50
		})
		if n := tgt.count(); n != wantDelivered {
			t.Errorf("%s burst %d: %d delivered, want %d", limit, burst, n, wantDelivered)
		}
	}
	f("10/s", 5, 50) // 45 held: 4.5 s of debt, under the bound of a minute
	f("1/m", 5, 10)  // debt bound is one more burst: 5 more, 40 dropped
}

// TestTCPRateLimitReload: lifting the limit by reload releases a held
// connection without new traffic.
func TestTCPRateLimitReload(t *testing.T) {
	l, _, tgt := listen(t, "tcp", &conf.Frontend{RateLimit: rate(t, "1/m"), RateBurst: 5})
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := sendStream(c, 50, 60, "m"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the burst", func() bool { return tgt.count() == 5 })
	if err := l.Update(&conf.Frontend{Name: "edge", Sinks: []string{"out"}, RateLimit: rate(t, "100/s"), RateBurst: 1}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	testenv.Eventually(t, "the rest at the new rate", func() bool { return tgt.count() == 50 })
	if d := time.Since(t0); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("45 messages at 100/s took %v, want about 450ms", d)
	}
}

// framesLimited returns a test listener whose settings carry fe's rate
// limits (high enough never to hold a message back).
func framesLimited(tb testing.TB, fe conf.Frontend) (*Listener, *settings) {
	l, _ := newTestListener(tb, "auto")
	s := *l.settings.Load()
	s.rate = nil
	l.attachRates(&s, &fe)
	return l, &s
}

// BenchmarkFramesRateLimit is the tcp:// per-read path (frames: framing,
// rate check, copy, parse, route, enqueue) with limits off and on.
func BenchmarkFramesRateLimit(b *testing.B) {
	for _, tc := range []struct {
		name string
		fe   conf.Frontend
	}{
		{"off", conf.Frontend{}},
		{"bind+ip", conf.Frontend{RateLimit: conf.Rate{N: 10_000_000, Per: time.Second}, RateBurst: 10_000_000, RateLimitPerIP: conf.Rate{N: 10_000_000, Per: time.Second}, RateBurstPerIP: 10_000_000}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l, s := framesLimited(b, tc.fe)
			fe := l.routes.Load().Frontend(l.frontend)
			buf := stream(1000)
			fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
			peer := netip.MustParseAddrPort("192.0.2.1:5000")
			var held bool
			b.SetBytes(int64(len(buf)) / 1000)
			b.ReportAllocs()
			b.ResetTimer()
			for msgs := 0; msgs < b.N; msgs += 1000 {
				if off, _, wait := l.frames(s, fe, fr, buf, time.Now().UnixNano(), peer, &held); off != len(buf) || wait != 0 {
					b.Fatalf("consumed %d of %d, wait %d", off, len(buf), wait)
				}
			}
		})
	}
}

// The tcp:// path with rate limits on allocates nothing per message.
func TestFramesRateLimitedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	l, s := framesLimited(t, conf.Frontend{RateLimit: conf.Rate{N: 10_000_000, Per: time.Second}, RateBurst: 10_000_000, RateLimitPerIP: conf.Rate{N: 10_000_000, Per: time.Second}, RateBurstPerIP: 10_000_000})
	fe := l.routes.Load().Frontend(l.frontend)
	buf := stream(100)
	fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
	peer := netip.MustParseAddrPort("192.0.2.1:5000")
	var held bool
	run := func() {
		if off, _, _ := l.frames(s, fe, fr, buf, time.Now().UnixNano(), peer, &held); off != len(buf) {
			t.Fatalf("consumed %d of %d", off, len(buf))
		}
	}
	run()
	if perMsg := testing.AllocsPerRun(50, run) / 100; perMsg > 0.05 {
		t.Fatalf("%.2f allocations per message with rate limits on", perMsg)
	}
}

// TestTCPRateLimitOversizeAcrossReads guards the framer state with rate
// limits on: the rest of an oversize message skipped over several reads
// must not eat into the next message.
func TestTCPRateLimitOversizeAcrossReads(t *testing.T) {
	for _, scheme := range []string{"tcp", "tls"} {
		t.Run(scheme, func(t *testing.T) {
			fe := &conf.Frontend{MaxMessageSize: 100, RateLimit: rate(t, "100000/s"), RateLimitPerIP: rate(t, "100000/s")}
			dial := dialTCP
			if scheme == "tls" {
				ca := testpki.NewCA(t, "test CA")
				tf := tlsFrontend(t, ca)
				fe.TLSCert, fe.TLSKey = tf.TLSCert, tf.TLSKey
				dial = func(addr string) (net.Conn, error) {
					return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
				}
			}
			l, reg, tgt := listen(t, scheme, fe)
			c, err := dial(l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			big := octet("<13>1 2026-11-25T10:00:00Z h app - - - " + strings.Repeat("y", 5000))
			in := big + octet(valid)
			for i := 0; i < len(in); i += 700 {
				if _, err := c.Write([]byte(in[i:min(i+700, len(in))])); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond) // separate reads
			}
			testenv.Eventually(t, "both messages", func() bool { return tgt.count() == 2 })
			tgt.mu.Lock()
			last := tgt.msgs[1]
			tgt.mu.Unlock()
			if last != "hello" {
				t.Errorf("message after the oversize one = %q, want hello", last)
			}
			if n := counter(reg, "wharf_frontend_dropped_total", "framing_error"); n != 0 {
				t.Errorf("%v framing errors", n)
			}
		})
	}
}
