package route

import (
	"testing"

	"wharf/conf"
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
			{Hostname: "fw-*", Severity: "emerg..warning", Sinks: []string{"fw", "siem"}},
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
		got := fe.Match(m)
		if len(got) != len(want) {
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
}
