package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"wharf/conf"
)

// helpTopic is one topic of `wharf help TOPIC`. The list of topics in
// `wharf help help`, and the topics bash and zsh complete after `wharf
// help`, are derived from helpTopics, so they cannot drift apart.
type helpTopic struct {
	name    string
	summary string // one or more lines, for the topic list
	text    func() string
}

// helpTopics returns every topic, in the order `wharf help help` lists
// them. A command's topic is what `wharf COMMAND -h` prints: its usage and
// its flags. (A function, not a variable: the man page topic renders the
// others, and run reaches helpCmd, which would be an initialization cycle.)
func helpTopics() []helpTopic {
	return []helpTopic{
		{"config", "the configuration reference: every key, its type, default and meaning\n(the same text as docs/config.md)", conf.Reference},
		{"ports", "wharf ports: list binds and port warnings, audit this host's listeners", portsHelp},
		{"tap", "wharf tap: watch the messages passing a frontend or port", tapHelp},
		{"server", "wharf server: list, drain, maint, ready or weight a proxy server at runtime", serverHelp},
		{"completion", "wharf completion: shell completion for bash and zsh", func() string { return completionUsage }},
		{"man", "all of the above as the wharf(1) manual page, in roff\n(make install installs it; man ./wharf.1 reads it)", manPage},
	}
}

// helpTopicNames is the names of helpTopics, space-separated.
func helpTopicNames() string {
	var names []string
	for _, t := range helpTopics() {
		names = append(names, t.name)
	}
	return strings.Join(names, " ")
}

// helpUsage is `wharf help help`: the topics and what each holds.
func helpUsage() string {
	var b strings.Builder
	b.WriteString("Usage: wharf help [TOPIC]\n\nTopics:\n")
	for _, t := range helpTopics() {
		for i, l := range strings.Split(t.summary, "\n") {
			name := ""
			if i == 0 {
				name = t.name
			}
			fmt.Fprintf(&b, "  %-12s %s\n", name, l)
		}
	}
	return b.String()
}

// commandHelp returns what cmd prints for -h: its usage and the defaults
// of its flag set, so every flag the command defines is documented.
func commandHelp(cmd func(args []string, stdout, stderr io.Writer) int) string {
	var b strings.Builder
	cmd([]string{"-h"}, io.Discard, &b)
	return b.String()
}

func portsHelp() string { return commandHelp(portsCmd) }

func serverHelp() string { return commandHelp(serverCmd) }

func tapHelp() string {
	return commandHelp(func(args []string, stdout, stderr io.Writer) int {
		return tapRun(context.Background(), args, stdout, stderr)
	})
}

// runFlagsHelp is the flags of `wharf run` and `wharf check` (one flag
// set) as `wharf check -h` prints them, without the flag package's
// "Usage of" line.
func runFlagsHelp() string {
	var b strings.Builder
	run([]string{"check", "-h"}, io.Discard, &b)
	s := b.String()
	if strings.HasPrefix(s, "Usage of ") {
		if _, rest, ok := strings.Cut(s, "\n"); ok {
			s = rest
		}
	}
	return s
}

// helpCmd implements `wharf help [TOPIC]`.
func helpCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if len(args) > 1 {
		fmt.Fprintf(stderr, "wharf help: one topic at a time\n\n%s", helpUsage())
		return 2
	}
	if args[0] == "help" || args[0] == "topics" {
		fmt.Fprint(stdout, helpUsage())
		return 0
	}
	for _, t := range helpTopics() {
		if t.name == args[0] {
			fmt.Fprint(stdout, t.text())
			return 0
		}
	}
	fmt.Fprintf(stderr, "wharf help: no topic %q\n\n%s", args[0], helpUsage())
	return 2
}
