package route

import (
	"bytes"
	"regexp/syntax"
	"slices"
	"unicode/utf8"
)

// A literal prefilter for msg_regex. Go's regexp cannot skip ahead to a
// literal that does not start the pattern: `\b(DENY|REJECT)\b` runs the
// backtracker over every byte of every message (BenchmarkMatchContent:
// 6 µs for 290 bytes). Most patterns operators write need one of a few
// literals to match at all, so the rule first looks for those with
// bytes.Index (SIMD-assisted) and runs the regexp only when one is there.

// requiredLiterals returns strings of which every match of re contains at
// least one, or nil when it cannot tell (case-folded text, classes, a
// part that can match empty).
func requiredLiterals(re *syntax.Regexp) [][]byte {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || len(re.Rune) == 0 || slices.Contains(re.Rune, utf8.RuneError) {
			// U+FFFD also matches any invalid UTF-8 byte in the input,
			// which its encoding's bytes would not find.
			return nil
		}
		return [][]byte{[]byte(string(re.Rune))}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min < 1 {
			return nil
		}
		return requiredLiterals(re.Sub[0])
	case syntax.OpConcat:
		// Every part must match, so any part's set will do: take the one
		// whose shortest literal is longest (the most selective).
		var best [][]byte
		bestLen := 0
		for _, sub := range re.Sub {
			lits := requiredLiterals(sub)
			if n := shortest(lits); n > bestLen {
				best, bestLen = lits, n
			}
		}
		return best
	case syntax.OpAlternate:
		var all [][]byte
		for _, sub := range re.Sub {
			lits := requiredLiterals(sub)
			if lits == nil {
				return nil
			}
			all = append(all, lits...)
		}
		return all
	}
	return nil
}

func shortest(lits [][]byte) int {
	if len(lits) == 0 {
		return 0
	}
	n := len(lits[0])
	for _, l := range lits[1:] {
		n = min(n, len(l))
	}
	return n
}

// regexPrefilter returns the literals to look for before running the
// regexp expr, or nil to always run it. More than 8 alternatives cost
// more to look for than they save.
func regexPrefilter(expr string) [][]byte {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	lits := requiredLiterals(re.Simplify())
	if len(lits) > 8 {
		return nil
	}
	return lits
}

// containsAny reports whether b contains one of lits.
func containsAny(b []byte, lits [][]byte) bool {
	for _, l := range lits {
		if bytes.Contains(b, l) {
			return true
		}
	}
	return false
}
