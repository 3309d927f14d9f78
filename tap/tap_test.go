package tap

import (
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"wharf/route"

	"wharf/ingest/parse"
	"wharf/message"
)

func testMessage(t testing.TB, raw string, port uint16) *message.Message {
	t.Helper()
	m := message.New([]byte(raw))
	m.Frontend = "edge"
	m.Port = port
	if err := parse.Parse(m, parse.Auto); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return m
}

func TestParseSeverity(t *testing.T) {
	f := func(in string, want uint8, wantErr bool) {
		t.Helper()
		got, err := ParseSeverity(in)
		if (err != nil) != wantErr {
			t.Fatalf("ParseSeverity(%q) error = %v, want error %v", in, err, wantErr)
		}
		if got != want {
			t.Fatalf("ParseSeverity(%q) = %08b, want %08b", in, got, want)
		}
	}
	f("", 0, false)
	f("emerg", 0b1, false)
	f("err", 0b1111, false)
	f("warning", 0b11111, false)
	f("err..emerg", 0b1111, false)
	f("emerg..err", 0b1111, false)
	f("info..debug", 0b11000000, false)
	f("3", 0b1111, false)
	f("ERROR", 0b1111, false)
	f("loud", 0, true)
	f("err..", 0, true)
	f("8", 0, true)
}

func TestGlob(t *testing.T) {
	f := func(p, s string, want bool) {
		t.Helper()
		if got := route.MatchGlob(p, []byte(s)); got != want {
			t.Fatalf("glob(%q, %q) = %v, want %v", p, s, got, want)
		}
	}
	f("*", "", true)
	f("*", "web1", true)
	f("web*", "web1", true)
	f("web?", "web12", false)
	f("*.example.com", "fw.dc1.example.com", true)
	f("*.example.com", "example.com", false)
	f("a*b*c", "axxbyyc", true)
	f("a*b*c", "axxbyy", false)
	f("", "x", false)
	f("", "", true)
	f("web1", "web1", true)
}

func TestFilterMatch(t *testing.T) {
	err := testMessage(t, "<11>1 2026-11-25T10:00:00Z fw1.dc1 sshd 42 - - auth failed", 5514) // user.err
	info := testMessage(t, "<14>1 2026-11-25T10:00:00Z web3.dc2 nginx - - - GET /", 5515)     // user.info
	bsd := testMessage(t, "<10>Nov 25 10:00:00 fw2.dc1 kernel: link down", 5514)              // user.crit
	raw := message.New([]byte("no header at all"))                                            // no severity
	raw.Frontend, raw.Port = "edge", 5514
	f := func(fl Filter, m *message.Message, want bool) {
		t.Helper()
		if got := fl.Match(m); got != want {
			t.Fatalf("%+v.Match(%q) = %v, want %v", fl, m.Raw, got, want)
		}
	}
	sevErr, _ := ParseSeverity("err")
	f(Filter{}, raw, true)
	f(Filter{Port: 5514}, err, true)
	f(Filter{Port: 5514}, info, false)
	f(Filter{Frontend: "edge"}, info, true)
	f(Filter{Frontend: "other"}, info, false)
	f(Filter{Severities: sevErr}, err, true)
	f(Filter{Severities: sevErr}, bsd, true)
	f(Filter{Severities: sevErr}, info, false)
	f(Filter{Severities: sevErr}, raw, false)
	f(Filter{Host: "*.dc1"}, err, true)
	f(Filter{Host: "*.dc1"}, bsd, true)
	f(Filter{Host: "*.dc1"}, info, false)
	f(Filter{Host: "*"}, raw, true)
	f(Filter{Host: "fw*"}, raw, false)
	f(Filter{App: "ssh?"}, err, true)
	f(Filter{App: "kernel"}, bsd, true)
	f(Filter{App: "kernel", Host: "fw1*"}, bsd, false)
}

func TestPublishJSONAndRaw(t *testing.T) {
	h := NewHub()
	p := h.For("edge")
	if p.Active() {
		t.Fatal("Active with no subscriber")
	}
	js, err := h.Subscribe(Filter{Frontend: "edge"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := h.Subscribe(Filter{Port: 5514, Raw: true}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Active() {
		t.Fatal("not Active with subscribers")
	}
	in := "<11>1 2026-11-25T10:00:00Z fw1.dc1 sshd 42 - - auth failed"
	m := testMessage(t, in, 5514)
	p.Publish(m)
	m.Release() // Publish must not keep references into m

	l := <-js.Lines()
	var obj map[string]any
	if err := json.Unmarshal(*l, &obj); err != nil {
		t.Fatalf("JSON line %q: %v", *l, err)
	}
	if obj["hostname"] != "fw1.dc1" || obj["app_name"] != "sshd" || obj["severity_name"] != "err" || obj["message"] != "auth failed" {
		t.Fatalf("JSON line %s lacks the parsed fields", *l)
	}
	if r := <-raw.Lines(); string(*r) != in+"\n" {
		t.Fatalf("raw line %q, want %q", *r, in+"\n")
	}
	js.Close()
	raw.Close()
	if p.Active() {
		t.Fatal("still Active after every subscriber closed")
	}
}

func TestSlowSubscriberLosesAndCounts(t *testing.T) {
	h := NewHub()
	p := h.For("edge")
	s, err := h.Subscribe(Filter{Frontend: "edge"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testMessage(t, "<14>1 - h a - - - x", 1)
	for i := 0; i < 100; i++ {
		p.Publish(m) // must never block
	}
	if got := s.Lost(); got != 96 {
		t.Fatalf("Lost = %d, want 96 (100 published, 4 buffered)", got)
	}
	if len(s.Lines()) != 4 {
		t.Fatalf("%d lines buffered, want 4", len(s.Lines()))
	}
}

func TestSubscribeErrorsAndClose(t *testing.T) {
	h := NewHub()
	h.For("edge")
	if _, err := h.Subscribe(Filter{Frontend: "nope"}, 0); err == nil || !strings.Contains(err.Error(), `running: edge`) {
		t.Fatalf("unknown frontend: err = %v, want one naming the running frontends", err)
	}
	s, err := h.Subscribe(Filter{Port: 514}, 0)
	if err != nil {
		t.Fatal(err)
	}
	late := h.For("late") // a point created after a port subscription joins it
	if !late.Active() {
		t.Fatal("port subscriber not attached to a point created later")
	}
	h.Close()
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed by Hub.Close")
	}
	if late.Active() {
		t.Fatal("point Active after Hub.Close")
	}
	if _, err := h.Subscribe(Filter{Port: 514}, 0); err != ErrClosed {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
	s.Close() // a second close is harmless
}

// The contract with ingest: an untapped point costs one atomic load and
// no allocation per message.
func TestIdleTapAllocatesNothing(t *testing.T) {
	h := NewHub()
	p := h.For("edge")
	m := testMessage(t, "<14>1 - h a - - - x", 1)
	allocs := testing.AllocsPerRun(1000, func() {
		if p.Active() {
			p.Publish(m)
		}
	})
	if allocs != 0 {
		t.Fatalf("idle tap: %v allocs per message, want 0", allocs)
	}
}

func BenchmarkActiveIdle(b *testing.B) {
	p := NewHub().For("edge")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if p.Active() {
			n++
		}
	}
	if n != 0 {
		b.Fatal("idle point reported Active")
	}
}

func BenchmarkPublishOneSubscriber(b *testing.B) {
	h := NewHub()
	p := h.For("edge")
	s, _ := h.Subscribe(Filter{Frontend: "edge"}, 1<<16)
	defer s.Close()
	m := testMessage(b, "<11>1 2026-11-25T10:00:00Z fw1.dc1 sshd 42 - - auth failed", 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case l := <-s.Lines():
				s.Release(l)
			case <-done:
				return
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Raw)))
	for b.Loop() {
		if p.Active() {
			p.Publish(m)
		}
	}
	close(done)
}

// drainBytes receives every line s holds and returns the memory they
// occupy (capacity plus slice header), counted independently of Held.
func drainBytes(s *Subscriber) (n int64) {
	for {
		select {
		case l := <-s.Lines():
			n += int64(cap(*l)) + 24
			s.Release(l)
		default:
			return n
		}
	}
}

// Regression: stalled taps held up to buffer lines each whatever their
// size (4 default taps x 4096 lines of 60 KB took RSS to 1.1 GB), and
// nothing limited how many taps were open.
func TestStalledTapsHoldBoundedBytes(t *testing.T) {
	h := NewHub()
	p := h.For("edge")
	lim := h.Limits()
	if lim != DefaultLimits || lim.Taps != 8 || lim.Bytes != 4<<20 || lim.MaxBuffer != 65536 {
		t.Fatalf("Limits() = %+v, want the defaults 8 taps x 4 MiB, 65536 lines", lim)
	}
	var subs []*Subscriber
	for i := 0; i < lim.Taps; i++ {
		s, err := h.Subscribe(Filter{Frontend: "edge", Raw: i%2 == 0}, 1<<20) // more than MaxBuffer: clamped
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if cap(s.Lines()) != lim.MaxBuffer {
			t.Fatalf("buffer of %d lines, want it clamped to %d", cap(s.Lines()), lim.MaxBuffer)
		}
		subs = append(subs, s)
	}
	if _, err := h.Subscribe(Filter{Frontend: "edge"}, 0); !errors.Is(err, ErrTooMany) || !strings.Contains(err.Error(), "limit of 8 taps") {
		t.Fatalf("tap %d: err = %v, want ErrTooMany naming the limit", lim.Taps+1, err)
	}
	big := testMessage(t, "<14>1 2026-11-25T10:00:00Z web1 app - - - "+strings.Repeat("x", 60<<10), 1)
	small := testMessage(t, "<14>1 2026-11-25T10:00:00Z web1 app - - - short", 1)
	const published = 2000
	var total int64
	for i := 0; i < published; i++ {
		p.Publish(big)
		p.Publish(small)
		for _, s := range subs {
			if s.Held() > lim.Bytes {
				t.Fatalf("after %d messages a tap holds %d bytes, over the %d bound", 2*i+2, s.Held(), lim.Bytes)
			}
		}
	}
	for i, s := range subs {
		held := s.Held()
		if got := drainBytes(s); got != held || held > lim.Bytes {
			t.Errorf("tap %d: Held %d, lines in the channel %d bytes; want them equal and at most %d", i, held, got, lim.Bytes)
		}
		if s.Lost() == 0 {
			t.Errorf("tap %d lost nothing: the bound did not apply", i)
		}
		if s.Held() != 0 {
			t.Errorf("tap %d: Held %d after every line was released, want 0", i, s.Held())
		}
		total += held
	}
	t.Logf("%d stalled taps held %d bytes in total after %d messages of 60 KB and %d small ones", lim.Taps, total, published, published)

	subs[0].Close()
	if s, err := h.Subscribe(Filter{Frontend: "edge"}, 0); err != nil {
		t.Fatalf("a tap after one closed: %v", err)
	} else {
		s.Close()
	}
}

func TestByteBound(t *testing.T) {
	runtime.GC() // empty the line pools: fresh lines of exactly 512 bytes
	runtime.GC()
	h := NewHubLimits(Limits{Bytes: 3 * (512 + 24)})
	p := h.For("edge")
	s, err := h.Subscribe(Filter{Frontend: "edge", Raw: true}, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testMessage(t, "<14>1 - h a - - - x", 1)
	for i := 0; i < 5; i++ {
		p.Publish(m)
	}
	if len(s.Lines()) != 3 || s.Lost() != 2 || s.Held() != 3*(512+24) {
		t.Fatalf("%d lines held (%d bytes), %d lost; want 3 (of 512 B each), 2", len(s.Lines()), s.Held(), s.Lost())
	}
	l := <-s.Lines() // a line being written still counts
	p.Publish(m)
	if s.Lost() != 3 {
		t.Fatalf("Lost %d, want 3: a line received but not released still counts", s.Lost())
	}
	s.Release(l)
	p.Publish(m)
	if len(s.Lines()) != 3 || s.Lost() != 3 {
		t.Fatalf("after Release: %d lines, %d lost; want 3, 3", len(s.Lines()), s.Lost())
	}
	// A line bigger than the whole bound is lost, not held.
	p.Publish(testMessage(t, "<14>1 - h a - - - "+strings.Repeat("y", 4096), 1))
	if s.Lost() != 4 {
		t.Fatalf("Lost %d after a line over the bound, want 4", s.Lost())
	}
	s.Close()
	if s.Held() != 0 {
		t.Fatalf("Held %d after Close, want 0", s.Held())
	}
}

func TestAppendRaw(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(AppendRaw([]byte("> "), []byte(in))); got != "> "+want {
			t.Fatalf("AppendRaw(%q) = %q, want %q", in, got[2:], want)
		}
	}
	f("", "")
	f("plain <14>1 text", "plain <14>1 text")
	f("a\nb", "a#012b")
	f("\r\n", "#015#012")
	f("nul\x00", "nul#000")
	f("\ttab", "#011tab")
	f("esc\x1b[2J del\x7f", "esc#033[2J del#177")
	f("# wharf tap: end", "#043 wharf tap: end")
	f("#", "#043")
	f("##", "#043#")
	f("x # y", "x # y")
	f("x\n# wharf tap: lost 4242 lines", "x#012# wharf tap: lost 4242 lines")
	f("héllo ✓", "héllo ✓")
}

// Publishing to a subscriber that keeps up reuses pooled lines: no
// allocation per message in either encoding.
func TestPublishAllocatesNothing(t *testing.T) {
	for _, raw := range []bool{false, true} {
		h := NewHub()
		p := h.For("edge")
		s, err := h.Subscribe(Filter{Frontend: "edge", Raw: raw}, 16)
		if err != nil {
			t.Fatal(err)
		}
		m := testMessage(t, "<11>1 2026-11-25T10:00:00Z fw1.dc1 sshd 42 - - auth\nfailed", 1)
		allocs := testing.AllocsPerRun(1000, func() {
			p.Publish(m)
			s.Release(<-s.Lines())
		})
		if allocs != 0 {
			t.Fatalf("raw=%v: %v allocs per message, want 0", raw, allocs)
		}
		s.Close()
	}
}
