package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck runs `wharf check` on configs and compares exit status and
// output with what an operator would read.
func TestCheck(t *testing.T) {
	f := func(config string, wantCode int, wantOut ...string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "wharf.toml")
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run([]string{"check", "-c", path}, &out, &errOut)
		if code != wantCode {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out.String(), errOut.String())
		}
		all := out.String() + errOut.String()
		for _, w := range wantOut {
			if !strings.Contains(all, w) {
				t.Errorf("output lacks %q:\n%s", w, all)
			}
		}
	}
	example, err := os.ReadFile("../../examples/wharf.toml")
	if err != nil {
		t.Fatal(err)
	}
	f(string(example), 0,
		"udp 127.0.0.1:5514 -> frontend syslog",
		"tcp 127.0.0.1:5514 -> frontend syslog",
		"is valid")
	// Several problems reported at once, each with where it is.
	f(`
[frontend.a]
bind = ["tcp://127.0.0.1:70000", "udp://127.0.0.1:514"]
sinks = ["missing"]
[frontend.b]
bind = ["udp://127.0.0.1:514"]
sinks = ["k"]
[sink.k]
type = "kafka"
topic = "t"
`, 2,
		"frontend.a.bind[0]",
		"70000",
		`"missing"`,
		"frontend.b",
		"brokers")
	// A TOML syntax error shows file:line:column.
	f("[frontend.a]\nbind = [\"tcp://127.0.0.1:1\"\n", 2, "wharf.toml:")
	// Unknown keys are errors.
	f(string(example)+"\n[sink.extra]\ntype = \"stdout\"\nbogus = 1\n", 2, "bogus")
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"run", "-c", "../../examples/wharf.toml", "-log-format", "xml"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "want text or json") {
		t.Errorf("bad -log-format: exit %d, stderr %q", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "wharf ") {
		t.Errorf("version: exit %d, out %q", code, out.String())
	}
}

// Regression: `wharf check` accepted a file sink or dead_letter path that
// is a directory or a symbolic link, which then failed (or, for the link,
// wrote to its target) at run time.
func TestCheckRefusesDirectoryAndSymlinkPaths(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	f := func(sinkPath, deadLetter string, want ...string) {
		t.Helper()
		config := `
[frontend.a]
bind = ["tcp://127.0.0.1:0"]
sinks = ["f"]
dead_letter = "` + deadLetter + `"
[sink.f]
type = "file"
path = "` + sinkPath + `"
`
		path := filepath.Join(t.TempDir(), "wharf.toml")
		os.WriteFile(path, []byte(config), 0o644)
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "-c", path}, &out, &errOut); code != 2 {
			t.Fatalf("exit %d, want 2\n%s%s", code, out.String(), errOut.String())
		}
		for _, w := range want {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, errOut.String())
			}
		}
	}
	f(dir, link, "sink.f.path: "+dir+" is a directory", "frontend.a.dead_letter: "+link+" is a symbolic link")
	f(link, dir, "sink.f.path: "+link+" is a symbolic link", "frontend.a.dead_letter: "+dir+" is a directory")
}

// Regression: an admin listener off loopback without a token started with
// only `wharf ports` saying anything; now check and run refuse it unless
// allow_remote_without_token says so, and warn whenever it is off
// loopback.
func TestCheckAdminOffLoopback(t *testing.T) {
	f := func(admin string, wantCode int, want ...string) {
		t.Helper()
		config := "[admin]\n" + admin + `
[frontend.a]
bind = ["tcp://127.0.0.1:0"]
sinks = ["out"]
[sink.out]
type = "stdout"
`
		path := filepath.Join(t.TempDir(), "wharf.toml")
		os.WriteFile(path, []byte(config), 0o644)
		for _, cmd := range []string{"check", "run"} {
			if cmd == "run" && wantCode == 0 {
				continue // would start serving; run shares check's config load
			}
			var out, errOut bytes.Buffer
			if code := run([]string{cmd, "-c", path}, &out, &errOut); code != wantCode {
				t.Fatalf("%s: exit %d, want %d\n%s%s", cmd, code, wantCode, out.String(), errOut.String())
			}
			for _, w := range want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("%s: output lacks %q:\n%s", cmd, w, errOut.String())
				}
			}
		}
	}
	f(`listen = "0.0.0.0:9600"`, 2, "admin.listen: 0.0.0.0:9600 is not a loopback address and no token is set", "allow_remote_without_token = true")
	f(`listen = "[::]:9600"`, 2, "admin.listen: [::]:9600 is not a loopback address and no token is set")
	f("listen = \"0.0.0.0:9600\"\nallow_remote_without_token = true", 0, "warning: admin.listen: 0.0.0.0:9600 is not a loopback address and no token is set (allow_remote_without_token)")
	f("listen = \"0.0.0.0:9600\"\ntoken = \"s3cret\"", 0, "warning: admin.listen: 0.0.0.0:9600 is not a loopback address: /metrics")
	f(`listen = "127.0.0.1:9600"`, 0)
	f(`listen = "localhost:9600"`, 0)
	f(`allowed_hosts = ["wharf1.example.com", "bad:80"]`, 2, `admin.allowed_hosts[1]: "bad:80": want a host name`)
}

// The config file may be given as -c, -config/--config or the one
// argument; a second argument or a contradicting -c is refused. (Before,
// `wharf check examples/wharf.toml` silently checked
// /etc/wharf/wharf.toml and ignored the argument.)
func TestConfigArgument(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[admin]\nlisten = \"off\"\n[frontend.a]\nbind = [\"udp://127.0.0.1:0\"]\nsinks = [\"out\"]\n[sink.out]\ntype = \"stdout\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[frontend.a]\n"), 0o644)
	f := func(args []string, wantCode int, wantOut, wantErr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if code != wantCode || !strings.Contains(out.String(), wantOut) || !strings.Contains(errOut.String(), wantErr) {
			t.Errorf("wharf %s: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", strings.Join(args, " "), code, wantCode, out.String(), wantOut, errOut.String(), wantErr)
		}
	}
	f([]string{"check", good}, 0, "config "+good, "")
	f([]string{"check", "-c", good}, 0, "config "+good, "")
	f([]string{"check", "-config", good}, 0, "config "+good, "")
	f([]string{"check", "--config", good}, 0, "config "+good, "")
	f([]string{"check", "-c", good, good}, 0, "config "+good, "")
	f([]string{"check", bad}, 2, "", "config "+bad+" is invalid")
	f([]string{"check", good, bad}, 2, "", `wharf check: unexpected argument "`+bad+`"`)
	f([]string{"check", "-c", bad, good}, 2, "", "wharf check: config file given twice: -c "+bad+" and "+good)
	f([]string{"run", good, "extra"}, 2, "", `wharf run: unexpected argument "extra"`)
}

// tls_ciphers is checked by `wharf check`: unknown and TLS 1.3 names are
// errors, suites Go classes as insecure a warning.
func TestCheckTLSCiphers(t *testing.T) {
	f := func(extra string, wantCode int, want ...string) {
		t.Helper()
		config := `
[frontend.a]
bind = ["tcp://127.0.0.1:0"]
sinks = ["out"]
[sink.out]
type = "syslog"
servers = ["tls://127.0.0.1:6514"]
` + extra
		path := filepath.Join(t.TempDir(), "wharf.toml")
		os.WriteFile(path, []byte(config), 0o644)
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "-c", path}, &out, &errOut); code != wantCode {
			t.Fatalf("exit %d, want %d\n%s%s", code, wantCode, out.String(), errOut.String())
		}
		for _, w := range want {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, errOut.String())
			}
		}
	}
	f(`tls_ciphers = ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]`, 0)
	f(`tls_ciphers = ["ECDHE-RSA-AES128-SHA"]`, 2, `sink.out.tls_ciphers: unknown cipher suite "ECDHE-RSA-AES128-SHA"`)
	f(`tls_ciphers = ["TLS_AES_128_GCM_SHA256"]`, 2, "TLS 1.3 suite")
	f(`tls_ciphers = ["TLS_RSA_WITH_3DES_EDE_CBC_SHA"]`, 0, "warning: sink.out.tls_ciphers: TLS_RSA_WITH_3DES_EDE_CBC_SHA: Go classes these suites as insecure")
}
