package tap

import (
	"encoding/json"
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
				PutLine(l)
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
