package main

import (
	"fmt"
	"io"

	"wharf/conf"
)

const helpUsage = `Usage: wharf help [TOPIC]

Topics:
  config       the configuration reference: every key, its type, default and meaning
               (the same text as docs/config.md)
  tap          wharf tap: watch the messages passing a frontend or port
  server       wharf server: drain, disable, enable or reweight a proxy server at runtime
  completion   wharf completion: shell completion for bash and zsh
  man          all of the above as the wharf(1) manual page, in roff
               (make install installs it; man ./wharf.1 reads it)
`

// helpCmd implements `wharf help [TOPIC]`.
func helpCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if len(args) > 1 {
		fmt.Fprintf(stderr, "wharf help: one topic at a time\n\n%s", helpUsage)
		return 2
	}
	switch args[0] {
	case "config":
		fmt.Fprint(stdout, conf.Reference())
	case "tap":
		fmt.Fprint(stdout, tapUsage)
	case "server":
		fmt.Fprint(stdout, serverUsage)
	case "completion":
		fmt.Fprint(stdout, completionUsage)
	case "man":
		fmt.Fprint(stdout, manPage())
	case "help", "topics":
		fmt.Fprint(stdout, helpUsage)
	default:
		fmt.Fprintf(stderr, "wharf help: no topic %q\n\n%s", args[0], helpUsage)
		return 2
	}
	return 0
}
