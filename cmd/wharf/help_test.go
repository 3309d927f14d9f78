package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"wharf/conf"
	"wharf/internal/testenv"
)

func TestHelp(t *testing.T) {
	f := func(args []string, wantCode int, wantOut, wantErr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if code != wantCode || !strings.Contains(out.String(), wantOut) || !strings.Contains(errOut.String(), wantErr) {
			t.Fatalf("%v: exit %d stdout %.200q stderr %q; want %d, %q, %q", args, code, out.String(), errOut.String(), wantCode, wantOut, wantErr)
		}
	}
	f([]string{"help"}, 0, "wharf tap", "")
	f([]string{"--help"}, 0, "wharf completion bash|zsh", "")
	f([]string{"help", "tap"}, 0, "--severity err..emerg", "")
	f([]string{"help", "completion"}, 0, "source <(wharf completion bash)", "")
	f([]string{"help", "server"}, 0, "wharf server drain BACKEND/SERVER", "")
	f([]string{"help", "server"}, 0, "-names\n", "")
	f([]string{"help", "tap"}, 0, "-cacert string\n", "")
	f([]string{"help", "ports"}, 0, "Usage: wharf ports", "")
	f([]string{"help", "ports"}, 0, "Exit status: 0 no findings", "")
	f([]string{"help", "ports"}, 0, "-audit\n", "")
	f([]string{"help", "help"}, 0, "  ports ", "")
	f([]string{"help", "help"}, 0, "  man ", "")
	f([]string{"server", "-h"}, 0, "", "Usage: wharf server")
	f([]string{"server"}, 2, "", "Usage: wharf server")
	f([]string{"help", "nope"}, 2, "", `no topic "nope"`)
	f([]string{"help", "config", "tap"}, 2, "", "one topic at a time")
	f([]string{"tap", "-h"}, 0, "", "Usage: wharf tap")
	f([]string{"completion"}, 2, "", "Usage: wharf completion")
	f([]string{"completion", "fish"}, 2, "", `no shell "fish"`)

	// wharf help config is the reference, the same text as docs/config.md.
	var out bytes.Buffer
	if code := run([]string{"help", "config"}, &out, &bytes.Buffer{}); code != 0 || out.String() != conf.Reference() {
		t.Fatalf("help config: exit %d, output differs from conf.Reference()", code)
	}
}

// The bash script is run by a real bash: each case completes a command
// line and checks the candidates.
func TestBashCompletion(t *testing.T) {
	bash := testenv.Tool(t, "bash")
	dir := t.TempDir()
	script := filepath.Join(dir, "wharf.bash")
	if err := os.WriteFile(script, []byte(bashCompletion()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(cfg, []byte("[frontend.edge]\nbind = []\n[frontend.firewalls] # x\n[sink.a]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := func(line string, want ...string) {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + script + "\n" +
			"COMP_WORDS=(" + strings.Join(quoted, " ") + ")\n" +
			"COMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n" +
			"_wharf\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: bash: %v\n%s", line, err, out)
		}
		got := strings.Fields(string(out))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%q completes to %q, want %q", line, got, want)
		}
	}
	f("wharf ", "run", "check", "ports", "tap", "server", "help", "completion", "version")
	f("wharf server ", "list", "drain", "maint", "ready", "weight")
	f("wharf server -c "+cfg+" m", "maint")
	f("wharf server list --n", "--names")
	f("wharf c", "check", "completion")
	f("wharf tap --s", "--severity")
	f("wharf tap -c "+cfg+" --frontend ", "edge", "firewalls")
	f("wharf tap -c "+cfg+" --frontend f", "firewalls")
	f("wharf tap --severity er", "err", "err..emerg")
	f("wharf completion ", "bash", "zsh")
	f("wharf help c", "config", "completion")
	f("wharf ports --", "--audit", "--json")
	f("wharf tap --port ")

	// Every help topic, man included, from the topics table.
	f("wharf help ", strings.Fields(helpTopicNames())...)
	f("wharf help m", "man")
	f("wharf help p", "ports")
	// --config (run, check) completes files as -c does.
	f("wharf check --config "+filepath.Join(dir, "si"), cfg)
	f("wharf run -config "+filepath.Join(dir, "si"), cfg)
	f("wharf check -c "+filepath.Join(dir, "si"), cfg)
	f("wharf run --", "--config", "--log-format")
	f("wharf check --log-format ", "text", "json")
	f("wharf tap --ca", "--cacert")
	f("wharf server --ca", "--cacert")
	f("wharf tap --cacert "+filepath.Join(dir, "si"), cfg)
	f("wharf tap --c "+cfg+" --frontend e", "edge")
}

// TestHelpTopicsComplete: `wharf help` lists every topic, both completion
// scripts complete it, and every topic prints something, no "Flags:"
// heading left empty.
func TestHelpTopicsComplete(t *testing.T) {
	var list bytes.Buffer
	if code := run([]string{"help", "help"}, &list, &bytes.Buffer{}); code != 0 {
		t.Fatalf("wharf help help: exit %d", code)
	}
	for _, topic := range helpTopics() {
		var out, errOut bytes.Buffer
		if code := run([]string{"help", topic.name}, &out, &errOut); code != 0 || out.Len() == 0 {
			t.Errorf("wharf help %s: exit %d, %d bytes; stderr %q", topic.name, code, out.Len(), errOut.String())
		}
		if i := strings.Index(out.String(), "Flags:\n"); i >= 0 && !strings.HasPrefix(out.String()[i+len("Flags:\n"):], "  -") {
			t.Errorf("wharf help %s: a \"Flags:\" heading with no flag under it", topic.name)
		}
		if !regexp.MustCompile(`(?m)^  ` + topic.name + ` `).MatchString(list.String()) {
			t.Errorf("wharf help help does not list %s", topic.name)
		}
	}
	if !strings.Contains(bashCompletion(), `compgen -W "`+helpTopicNames()+`"`) {
		t.Errorf("bash completion of wharf help is not the topics table")
	}
	if !strings.Contains(zshCompletion(), "compadd "+helpTopicNames()+" ;;") {
		t.Errorf("zsh completion of wharf help is not the topics table")
	}
}

// TestServerCommandsDescribed: the one-line descriptions of wharf server
// (wharf help help, zsh) name the commands it has, and none it has not.
func TestServerCommandsDescribed(t *testing.T) {
	var list bytes.Buffer
	run([]string{"help", "help"}, &list, &bytes.Buffer{})
	line := regexp.MustCompile(`(?m)^  server .*$`).FindString(list.String())
	zline := regexp.MustCompile(`(?m)^ *'server:.*$`).FindString(zshCompletion())
	for _, desc := range []string{line, zline} {
		if desc == "" {
			t.Fatalf("no server line in wharf help help or the zsh script")
		}
		for _, cmd := range []string{"list", "drain", "maint", "ready", "weight"} {
			if !strings.Contains(desc, cmd) {
				t.Errorf("%q lacks %s", desc, cmd)
			}
		}
		for _, wrong := range []string{"disable", "enable", "reweight"} {
			if strings.Contains(desc, wrong) {
				t.Errorf("%q names %s, which wharf server has not", desc, wrong)
			}
		}
	}
}

// The zsh script at least parses in a real zsh.
func TestZshCompletionParses(t *testing.T) {
	zsh := testenv.Tool(t, "zsh")
	script := filepath.Join(t.TempDir(), "_wharf")
	if err := os.WriteFile(script, []byte(zshCompletion()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// Loaded after compinit, it registers itself for wharf.
	prog := "autoload -Uz compinit && compinit -u -d " + filepath.Join(t.TempDir(), "zcompdump") + " && source " + script + " && print -r -- $_comps[wharf]"
	out, err := exec.Command(zsh, "-f", "-c", prog).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_wharf" {
		t.Fatalf("zsh: %v, $_comps[wharf] = %q, want _wharf", err, out)
	}
}
