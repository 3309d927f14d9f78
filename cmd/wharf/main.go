// Command wharf is a syslog / log-forwarding gateway: it listens on the
// ports its config binds, frames and parses syslog, and routes each
// message by the port it arrived on to Kafka, downstream collectors,
// files or stdout.
//
//	wharf run   -c FILE   run the gateway
//	wharf check -c FILE   validate FILE and print the resolved listeners, routes and sinks
//	wharf ports -c FILE   list binds and port warnings (--audit, --json)
//	wharf tap   -c FILE   stream the messages passing a running wharf's frontend or port
//	wharf server -c FILE drain|maint|ready|weight|list   runtime control of proxy servers
//	wharf help  [TOPIC]   the configuration reference and other help topics
//	wharf completion bash|zsh   shell completion script
//	wharf version         print version and build information
//
// `wharf` without arguments prints the full usage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"wharf/conf"

	_ "wharf/sinks/file"
	_ "wharf/sinks/kafka"
	_ "wharf/sinks/stdout"
	_ "wharf/sinks/syslog"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

const usage = `wharf: a syslog / log-forwarding gateway.

Usage:
  wharf run   -c FILE   run the gateway on config FILE (also --config FILE, or FILE;
                        default /etc/wharf/wharf.toml)
  wharf check -c FILE   validate FILE, print the resolved listeners, routes and sinks
  wharf ports -c FILE   list binds and port warnings; --audit, --json (wharf ports -h)
  wharf tap   -c FILE (--frontend NAME | --port N) [--severity SEL] [--host GLOB] [--app GLOB] [--raw]
                        stream the messages passing a running wharf's frontend or port
  wharf server -c FILE drain|maint|ready BACKEND/SERVER, weight BACKEND/SERVER N, list
                        runtime control of a running wharf's proxy servers (wharf help server)
  wharf help config     the configuration reference (wharf help lists the topics)
  wharf completion bash|zsh   shell completion script
  wharf version         print version and build information

Exit status: 0 on success or clean shutdown, 1 on a runtime error, 2 on a config or usage error,
3 when wharf run stopped but had dropped messages it accepted (a sink did not take them
within global.shutdown_timeout at the stop, or when a reload removed or changed it; the log
line "stopped" says how many: dropped_at_shutdown, dropped_before_stop).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "-version", "--version":
		printVersion(stdout)
		return 0
	case "help", "-h", "-help", "--help":
		return helpCmd(rest, stdout, stderr)
	case "tap":
		return tapCmd(rest, stdout, stderr)
	case "completion":
		return completionCmd(rest, stdout, stderr)
	case "ports":
		return portsCmd(rest, stdout, stderr)
	case "server":
		return serverCmd(rest, stdout, stderr)
	case "run", "check":
	default:
		fmt.Fprintf(stderr, "wharf: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	fs := flag.NewFlagSet("wharf "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", defaultConfig, "config file (also -config, --config, or the one argument)")
	fs.StringVar(path, "config", defaultConfig, "config file (same as -c)")
	logFormat := fs.String("log-format", "", "wharf's own log format, text or json (overrides global.log_format)")
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if err := configArg(fs, path); err != nil {
		fmt.Fprintf(stderr, "wharf %s: %v\n", cmd, err)
		return 2
	}
	if *logFormat != "" && *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "wharf: -log-format %q: want text or json\n", *logFormat)
		return 2
	}
	cfg, err := conf.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "wharf: config %s is invalid:\n%v\n", *path, err)
		return 2
	}
	if *logFormat != "" {
		cfg.Global.LogFormat = *logFormat
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "wharf: warning: %s\n", w)
	}
	if cmd == "check" {
		return check(cfg, stdout, stderr)
	}
	return serve(cfg, stderr)
}

// defaultConfig is where run and check look without -c or an argument.
const defaultConfig = "/etc/wharf/wharf.toml"

// configArg takes the config file from the one positional argument
// (`wharf check examples/wharf.toml`), which -c/-config may not
// contradict; anything more is refused rather than ignored (a stray
// argument used to leave /etc/wharf/wharf.toml checked silently).
func configArg(fs *flag.FlagSet, path *string) error {
	switch fs.NArg() {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("unexpected argument %q: give one config file (-c FILE, --config FILE or FILE)", fs.Arg(1))
	}
	flagSet := false
	fs.Visit(func(f *flag.Flag) { flagSet = flagSet || f.Name == "c" || f.Name == "config" })
	if flagSet && *path != fs.Arg(0) {
		return fmt.Errorf("config file given twice: -c %s and %s", *path, fs.Arg(0))
	}
	*path = fs.Arg(0)
	return nil
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wharf %s\n", version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(w, "go: %s\n", bi.GoVersion)
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
				fmt.Fprintf(w, "%s: %s\n", s.Key, s.Value)
			}
		}
		for _, d := range bi.Deps {
			fmt.Fprintf(w, "dep: %s %s\n", d.Path, d.Version)
		}
	}
}
