package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"wharf/conf"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with file, or rewrites it under -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test ./ports -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./ports -update rewrites it)\n--- got:\n%s\n--- want:\n%s", file, got, want)
	}
}

// report renders r as text and JSON and compares both with goldens
// named after base; it returns the warning kinds seen.
func report(t *testing.T, r *Report, base string) []string {
	t.Helper()
	var txt, js bytes.Buffer
	if err := r.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, base+".golden", txt.String())
	golden(t, base+".json.golden", js.String())
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not decode: %v", err)
	}
	var kinds []string
	for _, w := range r.Warnings {
		kinds = append(kinds, w.Kind)
	}
	return kinds
}

// TestGolden renders every testdata/*.toml and a config conf cannot load
// yet (tls:// binds), and checks that together they raise every kind of
// warning.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		c, err := conf.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, k := range report(t, NewReport(c), strings.TrimSuffix(f, ".toml")) {
			seen[k] = true
		}
	}
	for _, k := range report(t, NewReport(tlsConfig()), "testdata/code-tls") {
		seen[k] = true
	}
	for _, k := range []string{KindInternalWildcard, KindPlaintextSyslog, KindAdminExposed, KindPortMismatch} {
		if !seen[k] {
			t.Errorf("no golden case raises %s", k)
		}
	}
}

// tlsConfig is a config conf does not accept yet: tls:// syslog binds.
// Binds are filled in as Load would.
func tlsConfig() *conf.Config {
	fe := func(mode string, binds ...string) *conf.Frontend {
		f := &conf.Frontend{Mode: mode}
		for _, s := range binds {
			scheme, rest, _ := strings.Cut(s, "://")
			ap := netip.MustParseAddrPort(rest)
			f.Bind = append(f.Bind, s)
			f.Binds = append(f.Binds, conf.Bind{Scheme: scheme, Host: ap.Addr().String(), Port: int(ap.Port()), Addr: rest})
		}
		return f
	}
	return &conf.Config{
		Path:  "(built in ports_test.go)",
		Admin: conf.Admin{Listen: "127.0.0.1:9600"},
		Frontends: map[string]*conf.Frontend{
			// Syslog over TLS on 6514 fits and is not plaintext.
			"secure": fe("syslog", "tls://0.0.0.0:6514"),
			// Plaintext syslog on 6514 is a port-mismatch (tcp:// beside
			// tls:// on one port is a config error: conf refuses it).
			"legacy": fe("syslog", "tcp://127.0.0.1:6514"),
			// TLS syslog on 443 is still not HTTPS.
			"odd": fe("syslog", "tls://127.0.0.1:443"),
		},
	}
}

func TestServicesTable(t *testing.T) {
	f := func(port int, proto, want string) {
		t.Helper()
		s := Lookup(port, proto)
		got := ""
		if s != nil {
			got = s.Name
		}
		if got != want {
			t.Errorf("Lookup(%d, %s) = %q, want %q", port, proto, got, want)
		}
	}
	f(20, "tcp", "ftp-data")
	f(21, "tcp", "ftp")
	f(22, "tcp", "ssh")
	f(25, "tcp", "smtp")
	f(587, "tcp", "smtp (submission)")
	f(53, "udp", "dns")
	f(53, "tcp", "dns")
	f(80, "tcp", "http")
	f(123, "udp", "ntp")
	f(123, "tcp", "")
	f(443, "tcp", "https")
	f(514, "udp", "syslog")
	f(514, "tcp", "shell/syslog")
	f(3389, "tcp", "rdp")
	f(5432, "tcp", "postgresql")
	f(6514, "tcp", "syslog-tls")
	f(9092, "tcp", "kafka")
	f(9600, "tcp", "")
	seen := map[string]bool{}
	for _, s := range services {
		k := key(s.Port, s.Proto)
		if seen[k] {
			t.Errorf("%s twice in the services table", k)
		}
		seen[k] = true
		if s.Proto != "tcp" && s.Proto != "udp" {
			t.Errorf("%s: proto %q", k, s.Proto)
		}
	}
}

// TestCheckCases covers the rules one listener at a time, including host
// names, which the goldens avoid so they do not depend on /etc/hosts.
func TestCheckCases(t *testing.T) {
	old := lookupHost
	defer func() { lookupHost = old }()
	lookupHost = func(host string) ([]netip.Addr, error) {
		switch host {
		case "loghost.local":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		case "mixed.local":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	f := func(mode, scheme, host string, port int, internal bool, wantKinds ...string) {
		t.Helper()
		c := &conf.Config{Admin: conf.Admin{Listen: "off"}, Frontends: map[string]*conf.Frontend{
			"f": {Mode: mode, Internal: internal, Binds: []conf.Bind{{Scheme: scheme, Host: host, Port: port}}},
		}}
		var got []string
		for _, w := range Check(Declared(c)) {
			got = append(got, w.Kind)
		}
		if !slices.Equal(got, wantKinds) {
			t.Errorf("%s %s://%s:%d internal=%v: kinds %v, want %v", mode, scheme, host, port, internal, got, wantKinds)
		}
	}
	f("syslog", "udp", "127.0.0.1", 514, false)
	f("", "udp", "127.0.0.1", 514, false) // mode "" is syslog
	f("syslog", "udp", "::1", 514, true)
	f("syslog", "udp", "loghost.local", 514, false)
	f("syslog", "udp", "mixed.local", 514, false, KindPlaintextSyslog)
	f("syslog", "udp", "nowhere.invalid", 514, false, KindUnresolved)
	f("syslog", "udp", "0.0.0.0", 514, true, KindInternalWildcard, KindPlaintextSyslog)
	f("syslog", "udp", "::", 514, true, KindInternalWildcard, KindPlaintextSyslog)
	f("syslog", "udp", "10.0.0.1", 514, true, KindPlaintextSyslog)
	f("syslog", "tls", "0.0.0.0", 6514, false)
	f("syslog", "relp+tls", "127.0.0.1", 2514, false)
	f("syslog", "relp", "127.0.0.1", 2514, false)
	f("syslog", "tls", "0.0.0.0", 6514, true, KindInternalWildcard)
	f("syslog", "tls", "127.0.0.1", 443, false, KindPortMismatch)
	f("syslog", "tcp", "127.0.0.1", 6514, false, KindPortMismatch)
	f("syslog", "udp", "127.0.0.1", 6514, false, KindPortMismatch) // 6514/udp is DTLS
	f("syslog", "udp", "127.0.0.1", 123, false, KindPortMismatch)
	f("syslog", "tcp", "127.0.0.1", 601, false)
	f("syslog", "tcp", "127.0.0.1", 0, false) // port 0: no service
	f("http", "tcp", "127.0.0.1", 514, false, KindPortMismatch)
	f("http", "tcp", "127.0.0.1", 80, false)
	f("http", "tls", "127.0.0.1", 80, false, KindPortMismatch)
	f("http", "tls", "127.0.0.1", 443, false)
	f("http", "tcp", "0.0.0.0", 8080, true, KindInternalWildcard) // not syslog: no plaintext-syslog
	f("tcp", "tcp", "0.0.0.0", 5432, false)
	f("tcp", "tcp", "127.0.0.1", 514, false)

	admin := func(listen string, wantKinds ...string) {
		t.Helper()
		c := &conf.Config{Admin: conf.Admin{Listen: listen}}
		var got []string
		for _, w := range Check(Declared(c)) {
			got = append(got, w.Kind)
		}
		if !slices.Equal(got, wantKinds) {
			t.Errorf("admin %q: kinds %v, want %v", listen, got, wantKinds)
		}
	}
	admin("off")
	admin("127.0.0.1:9600")
	admin("[::1]:9600")
	admin("loghost.local:9600")
	admin(":9600", KindAdminExposed)
	admin("0.0.0.0:9600", KindAdminExposed)
	admin("192.0.2.1:80", KindAdminExposed)
	admin("127.0.0.1:443", KindPortMismatch)
}

// TestDeclaredOrder: frontends by name, binds in order, admin last.
func TestDeclaredOrder(t *testing.T) {
	c, err := conf.Load("testdata/warnings.toml")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, l := range Declared(c) {
		paths = append(paths, l.Path)
	}
	want := []string{
		"frontend.edge.bind[0]", "frontend.edge.bind[1]",
		"frontend.inside.bind[0]", "frontend.inside.bind[1]",
		"frontend.lan.bind[0]",
		"frontend.local.bind[0]", "frontend.local.bind[1]",
		"admin.listen",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("order %v, want %v", paths, want)
	}
	if !sort.SliceIsSorted(paths[:7], func(i, j int) bool { return paths[i] < paths[j] }) {
		t.Errorf("frontend binds not sorted: %v", paths)
	}
}
