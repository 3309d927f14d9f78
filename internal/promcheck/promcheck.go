// Package promcheck checks a Prometheus text exposition (what GET /metrics
// answers) against the format's rules and the naming conventions, as
// `promtool check metrics` does: tests of wharf's /metrics use it.
package promcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Check returns every problem found in body, a text exposition (format
// 0.0.4), and the families it parsed. It checks that
//   - the text parses (expfmt's parser: syntax, escaping, one HELP and one
//     TYPE per family, a family's lines together);
//   - every sample's family has both a HELP and a TYPE line before it;
//   - counters end in _total, and only counters do;
//   - no series (name and label set) appears twice;
//   - promlint, the linter behind promtool, reports nothing (units,
//     suffixes, snake_case, duplicates).
func Check(body []byte) (map[string]*dto.MetricFamily, []string) {
	var problems []string
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		problems = append(problems, "parse: "+err.Error())
	}

	help, typ := map[string]bool{}, map[string]string{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, text, _ := strings.Cut(f, " ")
			help[name] = true
			if strings.TrimSpace(text) == "" {
				problems = append(problems, fmt.Sprintf("line %d: %s has an empty HELP", n, name))
			}
			continue
		}
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, t, _ := strings.Cut(f, " ")
			typ[name] = t
			if (t == "counter") != strings.HasSuffix(name, "_total") {
				problems = append(problems, fmt.Sprintf("line %d: %s is a %s: counters, and only counters, end in _total", n, name, t))
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.LastIndexByte(line, ' ')
		if end < 0 {
			problems = append(problems, fmt.Sprintf("line %d: no value: %q", n, line))
			continue
		}
		series := line[:end]
		if seen[series] {
			problems = append(problems, fmt.Sprintf("line %d: duplicate series %s", n, series))
		}
		seen[series] = true
		name := series
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		fam := family(name, typ)
		if !help[fam] || typ[fam] == "" {
			problems = append(problems, fmt.Sprintf("line %d: %s has no HELP or TYPE line before it", n, name))
		}
	}

	if err == nil {
		var list []*dto.MetricFamily
		for _, mf := range mfs {
			list = append(list, mf)
		}
		lint, err := promlint.NewWithMetricFamilies(list).Lint()
		if err != nil {
			problems = append(problems, "promlint: "+err.Error())
		}
		for _, p := range lint {
			problems = append(problems, fmt.Sprintf("promlint: %s: %s", p.Metric, p.Text))
		}
	}
	return mfs, problems
}

// family returns the family a sample name belongs to: the name itself, or
// for a histogram's or summary's _bucket, _sum and _count lines the name
// without the suffix.
func family(name string, typ map[string]string) string {
	if _, ok := typ[name]; ok {
		return name
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if t := typ[base]; t == "histogram" || t == "summary" {
				return base
			}
		}
	}
	return name
}
