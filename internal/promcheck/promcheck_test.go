package promcheck

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	f := func(body, want string) {
		t.Helper()
		_, problems := Check([]byte(body))
		got := strings.Join(problems, "\n")
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("Check(%q):\n%s\nwant a problem containing %q", body, got, want)
		}
	}
	good := "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n" +
		"# HELP d_seconds D.\n# TYPE d_seconds histogram\nd_seconds_bucket{le=\"1\"} 1\nd_seconds_bucket{le=\"+Inf\"} 1\nd_seconds_sum 0.5\nd_seconds_count 1\n"
	f(good, "")
	f("# HELP a A.\n# TYPE a counter\na 3\n", "counters, and only counters, end in _total")
	f("# HELP a_total A.\n# TYPE a_total gauge\na_total 3\n", "counters, and only counters, end in _total")
	f("a_total 3\n", "no HELP or TYPE")
	f("# TYPE a_total counter\na_total 3\n", "no HELP or TYPE")
	f("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\na_total{x=\"1\"} 4\n", "duplicate series")
	f("# HELP a_total A.\n# TYPE a_total counter\n# TYPE a_total counter\na_total 3\n", "parse")
	f("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1} 3\n", "parse")
	f("# HELP a_milliseconds A.\n# TYPE a_milliseconds gauge\na_milliseconds 3\n", "promlint")
}
