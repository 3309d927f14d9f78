package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"wharf/conf"
	"wharf/internal/testenv"
)

// TestManPage: `wharf help man` is a roff page groff reads without a
// warning, and its rendering holds every config key of the reference,
// the usage and the tap help: one source for help, docs and man page.
func TestManPage(t *testing.T) {
	groff := testenv.Tool(t, "groff")
	var out bytes.Buffer
	if code := run([]string{"help", "man"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("wharf help man: exit %d", code)
	}
	lint := exec.Command(groff, "-man", "-ww", "-z")
	lint.Stdin = bytes.NewReader(out.Bytes())
	if msg, err := lint.CombinedOutput(); err != nil || len(msg) > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, msg)
	}
	render := exec.Command(groff, "-man", "-Tutf8", "-rLL=200n")
	render.Stdin = bytes.NewReader(out.Bytes())
	text, err := render.Output()
	if err != nil {
		t.Fatalf("groff render: %v", err)
	}
	plain := regexp.MustCompile(".\b").ReplaceAllString(string(text), "") // overstrike bold/underline
	keys := regexp.MustCompile("(?m)^\\| `([a-z_0-9]+)` \\|").FindAllStringSubmatch(conf.Reference(), -1)
	if len(keys) < 50 {
		t.Fatalf("found %d keys in the reference; the table format changed?", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(plain, k[1]+" (") {
			t.Errorf("man page lacks key %s", k[1])
		}
	}
	for _, want := range []string{"wharf run   -c FILE", "Usage: wharf tap", "Usage: wharf completion", "/etc/wharf/wharf.toml", "msg_regex"} {
		if !strings.Contains(plain, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}

// TestMakeInstallsManPage: make install writes the page to man1.
func TestMakeInstallsManPage(t *testing.T) {
	mk := testenv.Tool(t, "make")
	out, err := exec.Command(mk, "-n", "-C", "../..", "install", "DESTDIR=/tmp/x").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n install: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "wharf help man") || !strings.Contains(string(out), "/share/man/man1/wharf.1") {
		t.Errorf("make install does not install wharf help man as man1/wharf.1:\n%s", out)
	}
}
