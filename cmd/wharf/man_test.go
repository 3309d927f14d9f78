package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	for _, want := range []string{"wharf run   -c FILE", "Usage: wharf tap", "Usage: wharf ports", "Usage: wharf server", "Usage: wharf completion", "/etc/wharf/wharf.toml", "msg_regex",
		"-log-format", "-cacert", "-names", "internal-wildcard", "Exit status: 0 no findings"} {
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

// TestMakeInstallKeepsConfig runs make install twice into a scratch
// root: the first installs the example config, the second leaves the
// operator's edited one alone (README: "an existing config is never
// overwritten") while it replaces the binary and the unit.
func TestMakeInstallKeepsConfig(t *testing.T) {
	mk := testenv.Tool(t, "make")
	if testing.Short() {
		t.Skip("builds wharf twice")
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	install := func() {
		t.Helper()
		cmd := exec.Command(mk, "-C", "../..", "install", "BIN="+filepath.Join(tmp, "bin"), "DESTDIR="+root, "PREFIX=/usr")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	cfg := filepath.Join(root, "etc/wharf/wharf.toml")
	example, err := os.ReadFile("../../examples/wharf.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(cfg); err != nil || !bytes.Equal(got, example) {
		t.Fatalf("first install: %s is not examples/wharf.toml (%v)", cfg, err)
	}
	edited := append(slices.Clip(example), "# the operator's change\n"...)
	if err := os.WriteFile(cfg, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(root, "lib/systemd/system/wharf.service")
	if err := os.WriteFile(unit, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	install()
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
		t.Errorf("second make install overwrote the edited %s", cfg)
	}
	if got, _ := os.ReadFile(unit); !bytes.Contains(got, []byte("ExecStart=/usr/bin/wharf")) {
		t.Errorf("second make install left the unit %q; want it replaced, pointing at /usr/bin/wharf", got)
	}
}

// definedFlags returns the name of every flag the commands' sources
// define: each call fs.String("name", ...), fs.BoolVar(&v, "name", ...)
// and the like in this package's non-test files. Read from the source, so
// a flag added to any command is checked without touching the test.
func definedFlags(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{ // method: index of the name argument
		"Bool": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0, "String": 0, "Float64": 0, "Duration": 0, "Func": 0, "BoolFunc": 0,
		"BoolVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1, "Uint64Var": 1, "StringVar": 1, "Float64Var": 1, "DurationVar": 1, "Var": 1, "TextVar": 1,
	}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			i, ok := kinds[sel.Sel.Name]
			// A flag definition has name, value (or pointer) and usage;
			// slog.String("key", v) and the like have two arguments.
			if !ok || len(call.Args) != i+3 {
				return true
			}
			lit, ok := call.Args[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if v, err := strconv.Unquote(lit.Value); err == nil {
				seen[v] = true
			}
			return true
		})
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestManPageFlags: every flag any command defines is in wharf help man,
// as a flag line of a flag list ("  -name" or "  -name type").
func TestManPageFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"help", "man"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("wharf help man: exit %d", code)
	}
	flags := definedFlags(t)
	for _, want := range []string{"c", "config", "log-format", "admin", "cacert", "cert", "key", "json", "names", "audit", "frontend", "port", "severity", "host", "app", "raw"} {
		if !slices.Contains(flags, want) {
			t.Fatalf("the source scan found flags %q, not %q: the scan is broken", flags, want)
		}
	}
	for _, name := range flags {
		if !regexp.MustCompile(`(?m)^  +-` + regexp.QuoteMeta(name) + `( [a-z]+)?$`).MatchString(out.String()) {
			t.Errorf("wharf help man has no flag line for -%s", name)
		}
	}
	// No "Flags:" heading is left with nothing under it.
	if regexp.MustCompile(`Flags:\n(\.|$)`).MatchString(out.String()) {
		t.Errorf("wharf help man has an empty Flags: heading")
	}
}
