package route

import (
	"regexp"
	"strings"
	"testing"
)

func TestRegexPrefilter(t *testing.T) {
	f := func(expr string, want ...string) {
		t.Helper()
		var got []string
		for _, l := range regexPrefilter(expr) {
			got = append(got, string(l))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%q: literals %q, want %q", expr, got, want)
		}
	}
	f(`\b(DENY|REJECT)\b`, "DENY", "REJECT")
	f(`^session (opened|closed) for`, "session ")
	f(`Out of memory`, "Out of memory")
	f(`(?i)deny`)
	f(`a|b*`)
	f(`x?y`, "y")
	f(`[0-9]+ failed`, " failed")
	f(`(ab)+c{2}`, "ab")
}

// TestRegexPrefilterAgrees: the prefilter never rejects what the regexp
// matches.
func TestRegexPrefilterAgrees(t *testing.T) {
	exprs := []string{`\b(DENY|REJECT)\b`, `^session (opened|closed) for user (root|admin)$`, `x?y`, `[0-9]+ failed`, `(ab)+c{2}`, `a(b|cd)e`, `(foo|ba[rz])qux`}
	exprs = append(exprs, "a\uFFFDb")
	inputs := []string{"a\xffb", "", "DENY", "xDENYx", "REJECT tcp", "session opened for user root", "y", "xy", "12 failed", "ababcc", "abe", "acde", "bazqux", "fooqux", "barqu"}
	for _, e := range exprs {
		re := regexp.MustCompile(e)
		lits := regexPrefilter(e)
		for _, in := range inputs {
			if re.MatchString(in) && lits != nil && !containsAny([]byte(in), lits) {
				t.Errorf("%q matches %q but the prefilter %q rejects it", e, in, lits)
			}
		}
	}
}

// FuzzRegexPrefilter: for any pattern and input, the prefilter never
// rejects an input the regexp matches (it may only save work).
func FuzzRegexPrefilter(f *testing.F) {
	f.Add(`\b(DENY|REJECT)\b`, []byte("x DENY y"))
	f.Add(`^session (opened|closed) for user (root|admin)$`, []byte("session closed for user admin"))
	f.Add(`(ab)+c{2,}|x?y`, []byte("ababccc"))
	f.Add(`a(?i)b`, []byte("aB"))
	f.Add(`[^a]bc|d`, []byte("xbc"))
	f.Add("a\uFFFDb", []byte("a\xffb")) // U+FFFD matches an invalid byte
	f.Fuzz(func(t *testing.T, expr string, in []byte) {
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		lits := regexPrefilter(expr)
		if lits != nil && re.Match(in) && !containsAny(in, lits) {
			t.Fatalf("%q matches %q but the prefilter %q rejects it", expr, in, lits)
		}
	})
}
