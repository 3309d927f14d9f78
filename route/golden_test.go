package route

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"wharf/conf"
	"wharf/ingest/parse"
	"wharf/message"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected")

// TestGolden runs each testdata/<case>/input (one message per line)
// through the routes of frontend "edge" in <case>/wharf.toml and compares
// each decision with <case>/expected: the sinks, "drop" (a drop route) or
// "none" (no route and no default sinks), then a tab and the input line.
// Messages are parsed as the listener parses them: headers only unless
// the compiled frontend asks for a full parse (FullParse), so a content
// condition that forgot to ask would see no MSG and fail here.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/wharf.toml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, path := range cases {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, err := conf.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			targets := map[string]Target{}
			for n := range cfg.Sinks {
				targets[n] = &countTarget{}
			}
			tab, err := Compile(cfg, targets)
			if err != nil {
				t.Fatal(err)
			}
			fe := tab.Frontend("edge")
			format, err := parse.ParseFormat(cfg.Frontends["edge"].Format)
			if err != nil {
				t.Fatal(err)
			}
			input, err := os.ReadFile(filepath.Join(dir, "input"))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			for _, line := range strings.Split(strings.TrimRight(string(input), "\n"), "\n") {
				m := message.New([]byte(line))
				if fe.FullParse {
					_ = parse.Parse(m, format) // malformed: forwarded raw (on_error default)
				} else {
					_ = parse.ParseHeader(m, format)
				}
				dests, drop := fe.Match(m)
				m.Release()
				var names []string
				for _, d := range dests {
					names = append(names, d.Name)
				}
				sort.Strings(names)
				decision := strings.Join(names, ",")
				switch {
				case drop:
					decision = "drop"
				case decision == "":
					decision = "none"
				}
				out.WriteString(decision + "\t" + line + "\n")
			}
			want := filepath.Join(dir, "expected")
			if *update {
				if err := os.WriteFile(want, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != string(exp) {
				t.Errorf("decisions differ from %s\n got:\n%s\nwant:\n%s", want, got, exp)
			}
		})
	}
}
