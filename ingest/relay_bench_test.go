package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"wharf/conf"
	"wharf/ingest/framing"
	"wharf/internal/ascii"
	"wharf/message"
	"wharf/metrics"
	"wharf/route"
	"wharf/sinks"
)

// releaseTarget stands in for a sink runner: it takes the reference and
// gives it back, so the benchmark measures wharf's per-message path and
// not a queue.
type releaseTarget struct{ n int }

func (r *releaseTarget) Enqueue(m *message.Message, _ bool) bool { r.n++; m.Release(); return true }

func (r *releaseTarget) EnqueueBatch(ms []*message.Message, _ bool) int {
	for _, m := range ms {
		r.n++
		m.Release()
	}
	return len(ms)
}

func newTestListener(tb testing.TB, format string) (*Listener, *releaseTarget) {
	tgt := &releaseTarget{}
	return newTestListenerTo(tb, format, tgt), tgt
}

// discardSink accepts every batch: a sink runner's queue and delivery
// loop without a destination.
type discardSink struct{}

func (discardSink) Write(context.Context, []*message.Message) error { return nil }
func (discardSink) Close() error                                    { return nil }

// newTestListenerTo builds a listener for format whose frontend routes to
// tgt. format "header" is auto with a raw-encoded sink section, so only
// headers are parsed (parse = "header" and nothing needs more); the other
// formats parse fully.
func newTestListenerTo(tb testing.TB, format string, tgt route.Target) *Listener {
	tb.Helper()
	fe := &conf.Frontend{Name: "edge", Format: format, Sinks: []string{"out"}, MaxMessageSize: 64 << 10}
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}
	if format == "header" {
		fe.Format = "auto"
		cfg.Sinks = map[string]*conf.Sink{"out": {Type: "syslog", Encoding: "raw"}}
	}
	tab, err := route.Compile(cfg, map[string]route.Target{"out": tgt})
	if err != nil {
		tb.Fatal(err)
	}
	var h route.Holder
	h.Store(tab)
	l, err := New(fe, conf.Bind{Scheme: "tcp", Host: "127.0.0.1", Port: 5514, Addr: "127.0.0.1:5514"}, &h, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// stream returns n octet-counted RFC5424 messages of about 300 bytes.
func stream(n int) []byte {
	var b []byte
	for i := range n {
		m := fmt.Sprintf(`<134>1 2026-11-25T10:00:00.123456Z web-%02d nginx 4242 ACCESS [req@32473 id="%08d" bytes="5120"] GET /api/v1/items?page=%d HTTP/1.1 200 5120 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" rt=0.004`, i%50, i, i)
		b = fmt.Appendf(b, "%d %s", len(m), m)
	}
	return b
}

// relay runs the TCP listener's per-read work over buf, in reads of at
// most 64 KiB as OnTraffic sees them: frame, copy into a message, parse
// the header, route, and hand each read's messages over at its end. It
// returns the message count.
func relay(l *Listener, fr *framing.Framer, out *outbox, buf []byte) int {
	fe := l.routes.Load().Frontend(l.frontend)
	s := l.settings.Load()
	before := l.received.Load()
	var held bool
	for off := 0; off < len(buf); {
		n, _, _ := l.framesTo(out, s, fe, fr, buf[off:min(len(buf), off+64<<10)], 0, zeroPeer, &held)
		if n == 0 {
			break
		}
		off += n
	}
	return int(l.received.Load() - before)
}

var zeroPeer netip.AddrPort

// BenchmarkRelayPathTCP is the per-message cost of wharf's TCP relay path
// without the sockets: framing, pooled copy, parse (full, header only,
// none), route, enqueue.
func BenchmarkRelayPathTCP(b *testing.B) {
	for _, format := range []string{"auto", "header", "raw"} {
		b.Run(format, func(b *testing.B) {
			l, _ := newTestListener(b, format)
			benchRelay(b, l)
		})
	}
}

// BenchmarkRelayPathTCPRunner is BenchmarkRelayPathTCP handing over to a
// real sink runner (discarding sink): the queue's cost on the producer's
// side, with the delivery loop running on the other core.
func BenchmarkRelayPathTCPRunner(b *testing.B) {
	for _, format := range []string{"auto", "header", "raw"} {
		b.Run(format, func(b *testing.B) {
			r := sinks.NewRunner("out", discardSink{}, sinks.RunnerConfig{}.Resolved(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			r.Start()
			defer r.Close(context.Background())
			benchRelay(b, newTestListenerTo(b, format, r))
		})
	}
}

func benchRelay(b *testing.B, l *Listener) {
	buf := stream(1000)
	fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
	var out outbox
	b.SetBytes(int64(len(buf)) / 1000)
	b.ReportAllocs()
	b.ResetTimer()
	msgs := 0
	for msgs < b.N {
		msgs += relay(l, fr, &out, buf)
	}
}

// TestRelayPathAllocs guards the zero-allocation contract of the relay
// path once the message pool is warm.
func TestRelayPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	l, tgt := newTestListener(t, "auto")
	buf := stream(100)
	fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
	var out outbox
	relay(l, fr, &out, buf)
	allocs := testing.AllocsPerRun(50, func() { relay(l, fr, &out, buf) })
	if perMsg := allocs / 100; perMsg > 0.05 {
		t.Fatalf("relay path allocates %.2f times per message, want 0", perMsg)
	}
	if tgt.n != 100*52 {
		t.Fatalf("target saw %d messages, want %d", tgt.n, 100*52)
	}
}

// TestMalformedPathAllocs: a flood of garbage is counted per message
// (malformed and dropped by reason) without allocating: the reason
// counters are found in a map that is only copied when a reason is new.
func TestMalformedPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	l, tgt := newTestListener(t, "auto")
	var buf []byte
	for range 100 {
		buf = append(buf, "9 garbage!\n"...) // octet-counted, no PRI
	}
	fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
	var out outbox
	relay(l, fr, &out, buf)
	allocs := testing.AllocsPerRun(50, func() { relay(l, fr, &out, buf) })
	if perMsg := allocs / 100; perMsg > 0.05 {
		t.Fatalf("malformed path allocates %.2f times per message, want 0", perMsg)
	}
	if n := counter(l.reg, "wharf_frontend_malformed_total", "no_pri"); n != 100*52 || tgt.n != 0 {
		t.Fatalf("no_pri counted %v times, %d delivered; want %d and 0", n, tgt.n, 100*52)
	}
}

// TestListenerStats: the typed snapshot the status page reads holds what
// the counters hold, every reason the bind can count present at 0.
func TestListenerStats(t *testing.T) {
	l, _ := newTestListener(t, "auto")
	fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
	var out outbox
	buf := stream(100)
	if n := relay(l, fr, &out, buf); n != 100 {
		t.Fatalf("relayed %d", n)
	}
	st := l.Stats()
	if st.Received != 100 || st.ReceivedBytes == 0 || st.ReceivedBytes >= uint64(len(buf)) {
		t.Fatalf("stats %+v (stream of %d bytes with framing)", st, len(buf))
	}
	for _, why := range []string{"no_route", "parse_error", "framing_error", "oversize", "route_drop", "incomplete_frame_at_close"} {
		if v, ok := st.Dropped[why]; !ok || v != 0 {
			t.Errorf("dropped[%s] = %d, %v: want present at 0", why, v, ok)
		}
	}
	if _, ok := st.Rejected["maxconn"]; !ok {
		t.Errorf("rejected %v: want maxconn at 0", st.Rejected)
	}
	if _, ok := st.Closed["idle_timeout"]; !ok {
		t.Errorf("closed %v: want idle_timeout at 0", st.Closed)
	}
}

// framedDiscard is a sink that takes framed bytes (sinks.Framer) and
// drops them: the byte queue's producer side without a destination.
type framedDiscard struct{ discardSink }

func (framedDiscard) Framed() bool     { return true }
func (framedDiscard) FrameKey() string { return "octet/raw" }

// AppendFrame frames as the syslog sink does with octet counting and
// raw encoding (sinks/syslog AppendFrame).
func (framedDiscard) AppendFrame(b []byte, m *message.Message) []byte {
	b = ascii.AppendUint(b, uint64(len(m.Raw)))
	b = append(b, ' ')
	return append(b, m.Raw...)
}

// PassesOctetFrames: so does the syslog sink with octet counting and raw
// encoding (sinks.OctetPasser).
func (framedDiscard) PassesOctetFrames() bool                                 { return true }
func (framedDiscard) WriteFramed(_ context.Context, b []byte) ([]byte, error) { return b, nil }
func (framedDiscard) WriteFramedNow([]byte) bool                              { return true }

// BenchmarkRelayPathTCPFramed is BenchmarkRelayPathTCPRunner with a sink
// that takes framed bytes (the syslog sink over TCP): the TCP relay's
// path from read to byte queue.
func BenchmarkRelayPathTCPFramed(b *testing.B) {
	for _, format := range []string{"header", "raw"} {
		b.Run(format, func(b *testing.B) {
			r := sinks.NewRunner("out", framedDiscard{}, sinks.RunnerConfig{}.Resolved(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			r.Start()
			defer r.Close(context.Background())
			benchRelay(b, newTestListenerTo(b, format, r))
		})
	}
}
