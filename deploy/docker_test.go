package deploy

import (
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// No container engine runs where the tests do, so the Dockerfile is
// checked here instead: parsed into instructions and held to the rules
// below, its build command run as written, the binary it makes checked to
// be static, and the config it ships checked by that binary.

// instruction is one Dockerfile instruction, continuations joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, COPY...
	args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur *instruction
	for i, l := range strings.Split(string(data), "\n") {
		trim := strings.TrimSpace(l)
		if strings.HasPrefix(trim, "#") || (trim == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(trim, `\`)
		trim = strings.TrimSuffix(trim, `\`)
		if cur == nil {
			cmd, args, _ := strings.Cut(trim, " ")
			out = append(out, instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
			cur = &out[len(out)-1]
		} else {
			cur.args += " " + trim
		}
		if !cont {
			cur = nil
		}
	}
	return out
}

func TestDockerfileRules(t *testing.T) {
	ins := parseDockerfile(t, "../Dockerfile")
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stage(s), want a multi-stage build (build, then a small run stage)", len(stages))
	}

	// Every base image pinned to a tag; the Go image is go.mod's Go.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	for _, st := range stages {
		from := strings.Fields(st[0].args)
		image := from[0]
		name, tag, ok := strings.Cut(image[strings.LastIndexByte(image, '/')+1:], ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("Dockerfile:%d: FROM %s: pin a tag", st[0].line, image)
		}
		if name == "golang" && (goVer == nil || !strings.HasPrefix(tag, string(goVer[1])+"-") && tag != string(goVer[1])) {
			t.Errorf("Dockerfile:%d: FROM %s: want Go %s as in go.mod", st[0].line, image, goVer[1])
		}
	}

	for _, in := range ins {
		// ADD fetches URLs unchecked and unpacks archives by surprise.
		if in.cmd == "ADD" && regexp.MustCompile(`(?i)\b(https?|git)://|\.git\b`).MatchString(in.args) {
			t.Errorf("Dockerfile:%d: ADD of a URL; download in a RUN with a checksum, or COPY", in.line)
		}
		if in.cmd == "ADD" {
			t.Errorf("Dockerfile:%d: ADD; use COPY (ADD unpacks archives and fetches URLs)", in.line)
		}
		if in.cmd == "MAINTAINER" {
			t.Errorf("Dockerfile:%d: MAINTAINER is deprecated; use a LABEL", in.line)
		}
	}

	// The build: static (no cgo), the version stamped as the Makefile does.
	var build string
	for _, in := range stages[0] {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=", "./cmd/wharf", "-trimpath"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage RUN %q lacks %s", build, want)
		}
	}

	// The run stage: a non-root numeric user, exec-form entry point, the
	// config at /etc/wharf.
	final := stages[len(stages)-1]
	user, cmds := "", map[string][]instruction{}
	for _, in := range final {
		cmds[in.cmd] = append(cmds[in.cmd], in)
		if in.cmd == "USER" {
			user = in.args
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if user == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`^\d+$`).MatchString(uid) {
		t.Errorf("run stage USER %q: want a numeric non-root user (Kubernetes runAsNonRoot checks the number)", user)
	}
	for _, k := range []string{"ENTRYPOINT", "CMD"} {
		if len(cmds[k]) != 1 {
			t.Errorf("run stage has %d %s, want 1", len(cmds[k]), k)
			continue
		}
		var v []string
		if err := json.Unmarshal([]byte(cmds[k][0].args), &v); err != nil {
			t.Errorf("Dockerfile:%d: %s %s: want exec form (a JSON array), so signals reach wharf", cmds[k][0].line, k, cmds[k][0].args)
		}
	}
	if len(cmds["CMD"]) == 1 && !strings.Contains(cmds["CMD"][0].args, `"/etc/wharf/wharf.toml"`) {
		t.Errorf("CMD %s: want the config at /etc/wharf/wharf.toml", cmds["CMD"][0].args)
	}
	shipped := ""
	for _, in := range cmds["COPY"] {
		f := strings.Fields(in.args)
		if strings.HasPrefix(f[0], "--from=") {
			continue
		}
		if f[len(f)-1] == "/etc/wharf/wharf.toml" {
			shipped = f[len(f)-2]
		}
		for _, src := range f[:len(f)-1] {
			if !strings.HasPrefix(src, "--") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("Dockerfile:%d: COPY %s: %v", in.line, src, err)
				}
			}
		}
	}
	if shipped == "" {
		t.Errorf("run stage copies no config to /etc/wharf/wharf.toml")
	}

	// .dockerignore keeps the repository history and local builds out.
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "bin", "var"} {
		if !regexp.MustCompile(`(?m)^/?` + regexp.QuoteMeta(want) + `/?$`).Match(ignore) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

// TestDockerBuildCommand runs the build stage's go build as written (with
// VERSION set) and checks the result: a static binary (no ELF interpreter,
// no shared libraries) that reports the version and accepts the config the
// image ships.
func TestDockerBuildCommand(t *testing.T) {
	var build string
	for _, in := range parseDockerfile(t, "../Dockerfile") {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build, _, _ = strings.Cut(in.args, "&&")
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wharf")
	build = strings.ReplaceAll(build, "/out/wharf", bin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", build)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION=v9.9.9-docker")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has an ELF interpreter: not static, needs a libc the run stage lacks")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "v9.9.9-docker") {
		t.Errorf("wharf version: %v\n%s\nwant v9.9.9-docker", err, out)
	}

	// The shipped config, with its token file where this test can put one.
	cfg, err := os.ReadFile("docker/wharf.toml")
	if err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `"/run/secrets/wharf_admin_token"`) {
		t.Fatalf("docker/wharf.toml: want token_file = \"/run/secrets/wharf_admin_token\"")
	}
	path := filepath.Join(dir, "wharf.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(cfg), "/run/secrets/wharf_admin_token", token)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "-c", path).CombinedOutput(); err != nil {
		t.Errorf("wharf check on the image's config: %v\n%s", err, out)
	}
}

// TestRunShKeepsVersionedBin guards against make test replacing make
// build's bin/wharf (version in its ldflags) with an unversioned build.
func TestRunShKeepsVersionedBin(t *testing.T) {
	data, err := os.ReadFile("../test/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^[^#\n]*go build[^\n]*-o\s+"?(\./)?bin/`).Find(data); m != nil {
		t.Errorf("test/run.sh builds into bin/: %q", m)
	}
}
