package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMigratingGuide: docs/migrating.md has at least ten rsyslog and ten
// HAProxy snippets, each followed by a wharf config, and wharf check
// accepts every one of those configs without a warning.
func TestMigratingGuide(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "migrating.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, who := range []string{"rsyslog", "HAProxy"} {
		if n := strings.Count(doc, "**"+who+"**\n```"); n < 10 {
			t.Errorf("%d %s snippets, want at least 10", n, who)
		}
	}
	blocks := regexp.MustCompile("(?s)\\*\\*wharf\\*\\*\n```toml\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if n := strings.Count(doc, "**wharf**"); n != len(blocks) || n < 20 {
		t.Fatalf("%d wharf sections, %d of them toml blocks; want each a toml block, at least 20", n, len(blocks))
	}
	rewrite := exampleEnv(t)
	dir := t.TempDir()
	for i, b := range blocks {
		path := filepath.Join(dir, "snippet.toml")
		if err := os.WriteFile(path, []byte(rewrite(b[1])), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "-c", path}, &out, &errOut); code != 0 || strings.Contains(errOut.String(), "warning") {
			t.Errorf("wharf block %d of docs/migrating.md: exit %d\n%s\n%s", i+1, code, errOut.String(), b[1])
		}
	}
}
