package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPorts checks `wharf ports` exit statuses as documented in its
// usage: 0 no findings, 1 findings, 2 config or usage error.
func TestPorts(t *testing.T) {
	write := func(config string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "wharf.toml")
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f := func(args []string, wantCode int, wantOut ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(append([]string{"ports"}, args...), &out, &errOut)
		if code != wantCode {
			t.Fatalf("wharf ports %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, wantCode, out.String(), errOut.String())
		}
		all := out.String() + errOut.String()
		for _, w := range wantOut {
			if !strings.Contains(all, w) {
				t.Errorf("wharf ports %v: output lacks %q:\n%s", args, w, all)
			}
		}
		return out.String()
	}
	clean := write(`
[frontend.local]
bind = ["udp://127.0.0.1:514"]
sinks = ["out"]
[sink.out]
type = "stdout"
`)
	f([]string{"-c", clean}, 0, "udp    127.0.0.1  514   local     syslog  no   -    syslog", "0 warnings")
	f([]string{"-c", "../../ports/testdata/warnings.toml"}, 1,
		"[internal-wildcard]", "[plaintext-syslog]", "[admin-exposed]", "[port-mismatch]", "11 warnings")

	js := f([]string{"-c", "../../ports/testdata/warnings.toml", "--json"}, 1)
	var r struct {
		Listeners []struct{ Path string }
		Warnings  []struct{ Kind, Path string }
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("--json output: %v\n%s", err, js)
	}
	if len(r.Listeners) != 8 || len(r.Warnings) != 11 {
		t.Errorf("--json: %d listeners, %d warnings; want 8, 11", len(r.Listeners), len(r.Warnings))
	}

	f([]string{"-c", write("[frontend.x]\nbind = 1\n")}, 2, "is invalid")
	f([]string{"-c", filepath.Join(t.TempDir(), "missing.toml")}, 2, "cannot read config")
	f([]string{"--bogus"}, 2, "Usage: wharf ports")
	f([]string{"-c", clean, "extra"}, 2, `unexpected argument "extra"`)
	f([]string{"-h"}, 0, "Exit status: 0 no findings", "Flags:\n  -audit")

	// Overlapping binds and unresolvable hosts are config errors, as
	// wharf ports -h says: exit 2, no table, conf's message.
	overlapping := write(`
[admin]
listen = "127.0.0.1:601"
[frontend.a]
bind = ["tcp://127.0.0.1:601", "udp://[::]:514", "udp://0.0.0.0:514"]
sinks = ["out"]
[sink.out]
type = "stdout"
`)
	if out := f([]string{"-c", overlapping}, 2, "duplicates tcp://127.0.0.1:601 of the admin listener", "overlaps udp://[::]:514", "one socket cannot serve both"); out != "" {
		t.Errorf("an overlapping config printed a table:\n%s", out)
	}
	unresolved := write("[frontend.a]\nbind = [\"tcp://no-such-host.invalid:601\"]\nsinks = [\"out\"]\n[sink.out]\ntype = \"stdout\"\n")
	f([]string{"-c", unresolved}, 2, `host "no-such-host.invalid" does not resolve`)

	// So ports -h lists neither as a warning kind.
	var help bytes.Buffer
	run([]string{"ports", "-h"}, &bytes.Buffer{}, &help)
	for _, kind := range []string{"overlap", "unresolved"} {
		if regexp.MustCompile(`(?m)^  ` + kind + ` `).MatchString(help.String()) {
			t.Errorf("wharf ports -h lists the warning kind %s, which conf.Load never lets through", kind)
		}
	}
}
