package route

import (
	"testing"

	"wharf/conf"
	"wharf/ingest/parse"
	"wharf/message"
)

type countTarget struct{ n int }

func (c *countTarget) Enqueue(m *message.Message, block bool) bool { c.n++; m.Release(); return true }

func (c *countTarget) EnqueueBatch(ms []*message.Message, block bool) int {
	for _, m := range ms {
		c.Enqueue(m, block)
	}
	return len(ms)
}

// msg builds a message whose hostname and app-name spans point into raw.
func msg(pri int16, host, app string) *message.Message {
	m := message.New([]byte(host + " " + app))
	m.Priority = pri
	m.Hostname = message.Span{Off: 0, Len: uint32(len(host))}
	m.AppName = message.Span{Off: uint32(len(host) + 1), Len: uint32(len(app))}
	return m
}

func TestMatch(t *testing.T) {
	targets := map[string]Target{"siem": &countTarget{}, "auth": &countTarget{}, "all": &countTarget{}, "fw": &countTarget{}}
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{
		"edge": {Sinks: []string{"all"}, Routes: []conf.Route{
			{Facility: []string{"auth", "authpriv"}, Sinks: []string{"auth"}},
			{Hostname: "fw-*", Severity: conf.Severities{"emerg..warning"}, Sinks: []string{"fw", "siem"}},
			{AppName: "ss?d", Sinks: []string{"siem"}},
		}},
	}}
	tab, err := Compile(cfg, targets)
	if err != nil {
		t.Fatal(err)
	}
	fe := tab.Frontend("edge")
	f := func(pri int16, host, app string, want ...string) {
		t.Helper()
		m := msg(pri, host, app)
		defer m.Release()
		got, drop := fe.Match(m)
		if drop || len(got) != len(want) {
			t.Fatalf("pri %d host %q app %q: got %d dests %v, want %v", pri, host, app, len(got), got, want)
		}
		for i := range want {
			if got[i].Name != want[i] {
				t.Fatalf("pri %d host %q app %q: dest %d = %s, want %s", pri, host, app, i, got[i].Name, want[i])
			}
		}
	}
	f(4*8+6, "web1", "cron", "auth")          // auth.info
	f(10*8+3, "web1", "cron", "auth")         // authpriv.err
	f(1*8+4, "fw-edge-1", "pf", "fw", "siem") // user.warning from a firewall
	f(1*8+5, "fw-edge-1", "pf", "all")        // notice is outside emerg..warning
	f(1*8+6, "web1", "sshd", "siem")          // glob ?
	f(1*8+6, "web1", "sshdd", "all")          // no match -> default
	f(-1, "fw-edge-1", "pf", "all")           // unparsed: facility/severity unknown
}

func TestCompileErrors(t *testing.T) {
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{
		"edge": {Sinks: []string{"nope"}, Routes: []conf.Route{{Hostname: "[", Sinks: []string{"x"}}}},
	}}
	_, err := Compile(cfg, map[string]Target{"x": &countTarget{}})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{`frontend.edge.sinks: unknown sink "nope"`, "frontend.edge.route[0]: hostname: bad glob"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestWildMatch(t *testing.T) {
	f := func(p, s string, want bool) {
		t.Helper()
		if got := MatchGlob(p, []byte(s)); got != want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", p, s, got, want)
		}
	}
	f("fw-*", "fw-1", true)
	f("fw-*", "fw-", true)
	f("fw-*", "xfw-1", false)
	f("*.example.com", "a.b.example.com", true)
	f("*.example.com", "example.com", false)
	f("a*b*c", "aXXbYYc", true)
	f("a*b*c", "aXXbYY", false)
	f("?", "", false)
	f("", "", true)
}

func TestMatchAllocs(t *testing.T) {
	tab, err := Compile(&conf.Config{Frontends: map[string]*conf.Frontend{
		"edge": {Sinks: []string{"a"}, Routes: []conf.Route{{Hostname: "fw-*", AppName: "s*d", Sinks: []string{"a"}}}},
	}}, map[string]Target{"a": &countTarget{}})
	if err != nil {
		t.Fatal(err)
	}
	fe := tab.Frontend("edge")
	m := msg(13, "fw-1", "sshd")
	defer m.Release()
	if n := testing.AllocsPerRun(1000, func() { fe.Match(m) }); n != 0 {
		t.Fatalf("Match allocates %v per message, want 0", n)
	}
}

// contentFrontend compiles one frontend whose only route has condition
// r (and routes to "a"), default "b".
func contentFrontend(tb testing.TB, r conf.Route) *Frontend {
	tb.Helper()
	r.Sinks = []string{"a"}
	tab, err := Compile(&conf.Config{Frontends: map[string]*conf.Frontend{
		"edge": {Sinks: []string{"b"}, Routes: []conf.Route{{Facility: []string{"auth"}, Sinks: []string{"a"}}, r}},
	}}, map[string]Target{"a": &countTarget{}, "b": &countTarget{}})
	if err != nil {
		tb.Fatal(err)
	}
	return tab.Frontend("edge")
}

// parsed returns a fully parsed message (as a frontend with a content
// condition parses it).
func parsed(tb testing.TB, raw string) *message.Message {
	tb.Helper()
	m := message.New([]byte(raw))
	if err := parse.Parse(m, parse.Auto); err != nil {
		tb.Fatal(err)
	}
	return m
}

const benchRaw = `<165>1 2026-11-25T19:10:00.003Z web-1.example.com nginx 4242 ID47 [origin ip="10.1.2.3" software="nginx"][exampleSDID@32473 iut="3" eventSource="Application"] 192.0.2.1 - - [25/Nov/2026:19:10:00 +0000] "GET /api/v1/cart HTTP/1.1" 200 512 "-" "curl/8.5.0"`

var contentRules = []struct {
	name string
	r    conf.Route
}{
	{"header", conf.Route{Hostname: "fw-*", AppName: "s*d"}},
	{"contains", conf.Route{MsgContains: "Out of memory"}},
	{"regex", conf.Route{MsgRegex: `\b(DENY|REJECT)\b`}},
	{"regex-anchored", conf.Route{MsgRegex: `^session (opened|closed)`}},
	{"regex-hit", conf.Route{MsgRegex: `\b(GET|POST)\b`}}, // the literal is there: the regexp runs
	{"sd", conf.Route{SD: map[string]string{"exampleSDID@32473.eventSource": "Database"}}},
}

// TestMatchContentAllocs: content conditions allocate nothing either.
func TestMatchContentAllocs(t *testing.T) {
	m := parsed(t, benchRaw)
	defer m.Release()
	esc := parsed(t, `<165>1 2026-11-25T19:10:00Z h a - - [meta note="say \"hi\""] x`)
	defer esc.Release()
	for _, c := range append(contentRules, struct {
		name string
		r    conf.Route
	}{"sd-escaped", conf.Route{SD: map[string]string{"meta.note": `say "hi"`}}}) {
		fe := contentFrontend(t, c.r)
		for _, msg := range []*message.Message{m, esc} {
			if n := testing.AllocsPerRun(1000, func() { fe.Match(msg) }); n != 0 {
				t.Errorf("%s: Match allocates %v per message, want 0", c.name, n)
			}
		}
	}
}

// BenchmarkMatchContent: one message (the nginx access line above, 290
// bytes) through a frontend whose second route has each kind of
// condition; none but regex-hit matches, so each is evaluated in full.
func BenchmarkMatchContent(b *testing.B) {
	m := parsed(b, benchRaw)
	defer m.Release()
	for _, c := range contentRules {
		fe := contentFrontend(b, c.r)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(m.Raw)))
			for b.Loop() {
				fe.Match(m)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	tab, _ := Compile(&conf.Config{Frontends: map[string]*conf.Frontend{
		"edge": {Sinks: []string{"a"}, Routes: []conf.Route{
			{Facility: []string{"auth"}, Sinks: []string{"a"}},
			{Hostname: "fw-*", AppName: "s*d", Sinks: []string{"a"}},
		}},
	}}, map[string]Target{"a": &countTarget{}})
	fe := tab.Frontend("edge")
	m := msg(13, "web-1", "nginx")
	defer m.Release()
	b.ReportAllocs()
	for b.Loop() {
		fe.Match(m)
	}
}

// TestFullParse: a frontend needs structured data and MSG parsed when any
// sink it can route to encodes messages (rfc5424, json: a file sink's
// default) or buffers them on disk; raw sinks need headers only.
func TestFullParse(t *testing.T) {
	sinkCfg := map[string]*conf.Sink{
		"raw":      {Type: "syslog", Encoding: "raw"},
		"kafka":    {Type: "kafka"}, // default encoding raw
		"json":     {Type: "stdout", Encoding: "json"},
		"file":     {Type: "file"}, // default encoding json
		"buffered": {Type: "syslog", Encoding: "raw", Buffer: &conf.Buffer{Dir: "/tmp/x"}},
	}
	f := func(defaults []string, ruleSinks []string, want bool) {
		t.Helper()
		fe := &conf.Frontend{Sinks: defaults}
		if ruleSinks != nil {
			fe.Routes = []conf.Route{{AppName: "sshd", Sinks: ruleSinks}}
		}
		targets := map[string]Target{}
		for n := range sinkCfg {
			targets[n] = &countTarget{}
		}
		tab, err := Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}, Sinks: sinkCfg}, targets)
		if err != nil {
			t.Fatal(err)
		}
		if got := tab.Frontend("edge").FullParse; got != want {
			t.Errorf("sinks %v, rule sinks %v: FullParse %v, want %v", defaults, ruleSinks, got, want)
		}
	}
	f([]string{"raw", "kafka"}, nil, false)
	f([]string{"raw"}, []string{"kafka"}, false)
	f([]string{"raw", "json"}, nil, true)
	f([]string{"file"}, nil, true)
	f([]string{"raw"}, []string{"json"}, true) // only a rule's sink needs it
	f([]string{"buffered"}, nil, true)

	// A content condition needs MSG and SD whatever the sinks need.
	for _, r := range []conf.Route{{MsgContains: "x", Sinks: []string{"raw"}}, {MsgRegex: "x", Sinks: []string{"raw"}},
		{SD: map[string]string{"origin.ip": "*"}, Sinks: []string{"raw"}}, {MsgContains: "x", Action: "drop"}} {
		targets := map[string]Target{"raw": &countTarget{}}
		fe := &conf.Frontend{Sinks: []string{"raw"}, Routes: []conf.Route{r}}
		tab, err := Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}, Sinks: sinkCfg}, targets)
		if err != nil {
			t.Fatal(err)
		}
		if !tab.Frontend("edge").FullParse {
			t.Errorf("route %+v: FullParse false, want true", r)
		}
	}
}
