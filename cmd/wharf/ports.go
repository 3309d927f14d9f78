package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"wharf/conf"
	"wharf/ports"
)

const portsUsage = `Usage: wharf ports -c FILE [--audit] [--json]

Lists every listener FILE declares (protocol, address, port, frontend,
mode, TLS, allow/deny lists, the service that port usually carries) and
warns about:
  internal-wildcard  a frontend with internal = true bound to 0.0.0.0 or ::
  plaintext-syslog   syslog without TLS on a non-loopback address
  admin-exposed      the admin listener on a non-loopback address
  port-mismatch      a well-known port used for another protocol

Two binds competing for one port, or a bind host that does not resolve,
is a config error, not a warning: wharf ports, like wharf check, refuses
the config with exit status 2 and prints no table ("tcp://... overlaps
tcp://... of frontend ...; one socket cannot serve both", "host ... does
not resolve; use an IP literal or a name in /etc/hosts or DNS").

--audit also lists the sockets listening on this host (from
/proc/net/tcp, tcp6, udp, udp6; owning process where readable, so run it
as root to see every owner) and marks each "unexpected listener" that
FILE does not declare, and each declared bind that is not listening.
Only the network namespace wharf ports runs in is visible.

--json prints the same as JSON (keys: config, listeners, warnings, audit).

Exit status: 0 no findings; 1 findings (warnings, or with --audit
unexpected listeners or declared binds not listening); 2 config or usage
error, or /proc unreadable.

Flags:
`

// portsCmd is `wharf ports`.
func portsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wharf ports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, portsUsage); fs.PrintDefaults() }
	path := fs.String("c", "/etc/wharf/wharf.toml", "config file")
	audit := fs.Bool("audit", false, "also audit the sockets listening on this host")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wharf ports: unexpected argument %q\n\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	cfg, err := conf.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "wharf: config %s is invalid:\n%v\n", *path, err)
		return 2
	}
	r := ports.NewReport(cfg)
	if *audit {
		if err := r.AddAudit("/proc"); err != nil {
			fmt.Fprintf(stderr, "wharf ports: %v (--audit needs Linux /proc)\n", err)
			return 2
		}
	}
	if *asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wharf ports: %v\n", err)
		return 2
	}
	if r.Findings() > 0 {
		return 1
	}
	return 0
}
