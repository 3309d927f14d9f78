package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// Every example config is valid as `wharf check` sees it: it loads, its
// sinks build and its routes compile.
func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example configs (%v), want at least wharf.toml, edge-to-kafka.toml, firewall-to-siem.toml", len(files), files)
	}
	for _, f := range files {
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "-c", f}, &out, &errOut); code != 0 {
			t.Errorf("wharf check -c %s: exit %d\n%s", f, code, errOut.String())
			continue
		}
		if !strings.Contains(out.String(), "is valid") {
			t.Errorf("wharf check -c %s: output %q", f, out.String())
		}
		if strings.Contains(errOut.String(), "warning") {
			t.Errorf("wharf check -c %s warns: %s", f, errOut.String())
		}
	}
}
