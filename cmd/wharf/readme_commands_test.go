package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMECommands: every command wharf help lists (usage) is in the
// README's Commands block, and the section names exit status 1. The block lacked `wharf server` and exit status 1 until an
// audit found them missing.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "## Commands\n")
	if start < 0 {
		t.Fatal("README has no Commands section")
	}
	section := text[start:]
	block := section[strings.Index(section, "```\n")+4:]
	block = block[:strings.Index(block, "```")]

	cmds := regexp.MustCompile(`(?m)^  wharf (\w+)`).FindAllStringSubmatch(usage, -1)
	if len(cmds) < 8 {
		t.Fatalf("found %d commands in the usage text; the pattern is stale", len(cmds))
	}
	for _, m := range cmds {
		if !regexp.MustCompile(`(?m)^wharf ` + m[1] + `\b`).MatchString(block) {
			t.Errorf("wharf %s is in wharf help but not in README's Commands block", m[1])
		}
	}
	if !strings.Contains(section, "Exit status 1 means a runtime error") {
		t.Error("README's Commands section does not name exit status 1 (a runtime error), which wharf help does")
	}
}
