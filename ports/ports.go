// Package ports lists the listeners a wharf config declares, says which
// service each port usually carries, and warns about risky binds:
// wildcard binds of internal frontends, plaintext syslog or the admin API
// on non-loopback addresses, well-known ports used for another protocol.
// (Binds that compete for one socket are a config error: conf refuses
// them, with the same family rule the listeners follow, internal/netfamily.)
// Its audit (audit.go, proc.go) compares that
// with the sockets actually listening on the host, read from /proc.
//
// It only reads a *conf.Config and /proc; nothing here opens sockets or
// runs on a hot path. `wharf ports` (cmd/wharf/ports.go) prints a Report.
package ports

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"wharf/conf"
)

// AdminFrontend is the Frontend name shown for the admin listener.
const AdminFrontend = "(admin)"

// Listener is one declared listen address: a frontend bind or the admin
// listener.
type Listener struct {
	// Proto is the transport, "udp" or "tcp" (tls:// binds are tcp).
	Proto string `json:"proto"`
	// Host is the address as written in the config, without brackets;
	// "" (admin ":9600") means every address.
	Host string `json:"address"`
	// Port is the port number; 0 means the kernel picks one (tests).
	Port int `json:"port"`
	// Frontend is the frontend name, or AdminFrontend.
	Frontend string `json:"frontend"`
	// Mode is the frontend mode ("syslog", "tcp", "http") or "admin".
	Mode string `json:"mode"`
	// TLS is true for binds that terminate TLS.
	TLS bool `json:"tls"`
	// Internal is the frontend's internal = true.
	Internal bool `json:"internal,omitempty"`
	// Allow and Deny are the frontend's CIDR lists (empty: everyone).
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
	// Service is what Port/Proto usually carries ("" when not in the table).
	Service string `json:"service"`
	// Path is where the config declares it: "frontend.edge.bind[0]" or
	// "admin.listen".
	Path string `json:"path"`
	// URL is the bind as written, e.g. "udp://0.0.0.0:514".
	URL string `json:"bind"`

	// addrs are Host resolved (unmapped); nil when it did not resolve.
	addrs []netip.Addr
	// resolveErr says why addrs is nil.
	resolveErr error
}

// Use is what the listener serves, for the port-convention check.
func (l *Listener) Use() Use {
	switch {
	case l.Mode == "admin":
		return UseHTTP
	case l.Mode == "tcp":
		return UseTCPProxy
	case l.Mode == "http" && l.TLS:
		return UseHTTPS
	case l.Mode == "http":
		return UseHTTP
	case l.TLS:
		return UseSyslogTLS
	default:
		return UseSyslog
	}
}

// Wildcard reports a bind on every address (0.0.0.0, ::, or no host).
func (l *Listener) Wildcard() bool {
	return len(l.addrs) == 1 && l.addrs[0].IsUnspecified()
}

// Loopback reports a bind reachable from this host only: every address
// the host resolves to is a loopback address.
func (l *Listener) Loopback() bool {
	if len(l.addrs) == 0 {
		return false
	}
	for _, a := range l.addrs {
		if !a.IsLoopback() {
			return false
		}
	}
	return true
}

// lookupHost resolves a bind host name. conf.Load has already resolved
// every name once, so this normally answers from the same source.
var lookupHost = func(host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

func (l *Listener) resolve() {
	if l.Host == "" {
		l.addrs = []netip.Addr{netip.IPv6Unspecified()}
		return
	}
	if a, err := netip.ParseAddr(l.Host); err == nil {
		l.addrs = []netip.Addr{a.Unmap()}
		return
	}
	as, err := lookupHost(l.Host)
	if err != nil {
		l.resolveErr = err
		return
	}
	for _, a := range as {
		l.addrs = append(l.addrs, a.Unmap())
	}
}

// transport maps a bind scheme to its transport and whether it is TLS.
// "https" is accepted in case proxy binds spell TLS that way.
func transport(scheme string) (proto string, tls bool) {
	switch scheme {
	case "udp":
		return "udp", false
	case "tls", "https", "relp+tls":
		return "tcp", true
	default: // tcp, http
		return "tcp", false
	}
}

// Declared lists the listeners of c in a stable order: frontends by name,
// their binds in config order, then the admin listener (unless "off").
// c should come from conf.Load or conf.Parse (Binds and Name filled);
// Mode "" counts as "syslog". Host names are resolved, each bounded by
// two seconds.
func Declared(c *conf.Config) []Listener {
	names := make([]string, 0, len(c.Frontends))
	for n := range c.Frontends {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Listener
	for _, n := range names {
		f := c.Frontends[n]
		if f == nil {
			continue
		}
		mode := f.Mode
		if mode == "" {
			mode = "syslog"
		}
		for i, b := range f.Binds {
			proto, tls := transport(b.Scheme)
			if mode == "http" && f.TLSCert != "" && f.TLSKey != "" {
				tls = true // an http frontend terminates TLS on every bind
			}
			l := Listener{
				Proto: proto, Host: b.Host, Port: b.Port, Frontend: n, Mode: mode,
				TLS: tls, Internal: f.Internal, Allow: f.Allow, Deny: f.Deny,
				Path: fmt.Sprintf("frontend.%s.bind[%d]", n, i),
				URL:  b.Scheme + "://" + b.Addr,
			}
			out = append(out, l)
		}
	}
	if a := c.Admin.Listen; a != "" && a != "off" {
		host, p, err := net.SplitHostPort(a)
		port, perr := strconv.Atoi(p)
		if err == nil && perr == nil {
			out = append(out, Listener{
				Proto: "tcp", Host: host, Port: port, Frontend: AdminFrontend, Mode: "admin",
				Path: "admin.listen", URL: "http://" + a,
			})
		}
	}
	for i := range out {
		out[i].resolve()
		if s := Lookup(out[i].Port, out[i].Proto); s != nil {
			out[i].Service = s.Name
		}
	}
	return out
}

// Warning kinds, stable for JSON consumers.
const (
	// KindInternalWildcard: a frontend marked internal = true binds
	// 0.0.0.0 or ::.
	KindInternalWildcard = "internal-wildcard"
	// KindPlaintextSyslog: syslog without TLS on a non-loopback address.
	KindPlaintextSyslog = "plaintext-syslog"
	// KindAdminExposed: the admin listener on a non-loopback address.
	KindAdminExposed = "admin-exposed"
	// KindPortMismatch: a well-known port used for another protocol.
	KindPortMismatch = "port-mismatch"
	// KindUnresolved: a bind host that does not resolve now.
	KindUnresolved = "unresolved"
)

// Warning is one finding about a declared listener.
type Warning struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Path is the listener's config path ("frontend.edge.bind[0]").
	Path string `json:"path"`
	// Bind is the listener as written ("udp://0.0.0.0:514").
	Bind string `json:"bind"`
	// Message says what is wrong and what to do.
	Message string `json:"message"`
}

func (w Warning) String() string { return w.Path + " " + w.Bind + ": " + w.Message }

// useText names a use in messages.
var useText = map[Use]string{
	UseSyslog:    "plaintext syslog",
	UseSyslogTLS: "syslog over TLS",
	UseHTTP:      "plain HTTP",
	UseHTTPS:     "HTTPS",
}

// usePorts suggests ports that fit a use.
var usePorts = map[Use]string{
	UseSyslog:    "514/udp, 514/tcp or 601/tcp, or an unassigned port above 1023",
	UseSyslogTLS: "6514/tcp",
	UseHTTP:      "80/tcp or 8080/tcp, or an unassigned port above 1023",
	UseHTTPS:     "443/tcp or 8443/tcp",
}

// Check returns the warnings for ls (as from Declared), ordered by
// listener and, per listener, by kind in the order of the Kind constants.
func Check(ls []Listener) []Warning {
	var ws []Warning
	for j := range ls {
		l := &ls[j]
		add := func(kind, format string, args ...any) {
			ws = append(ws, Warning{Kind: kind, Path: l.Path, Bind: l.URL, Message: fmt.Sprintf(format, args...)})
		}
		if l.resolveErr != nil {
			add(KindUnresolved, "host %q does not resolve now (%v); the address checks below are skipped for it", l.Host, l.resolveErr)
			continue
		}
		if l.Internal && l.Wildcard() {
			add(KindInternalWildcard, "frontend %s is internal = true but binds the wildcard address, every interface including public ones; bind the internal interface's address instead", l.Frontend)
		}
		if l.Mode == "syslog" && !l.TLS && !l.Loopback() {
			add(KindPlaintextSyslog, "plaintext syslog on a non-loopback address: anyone on the path can read and forge messages; prefer a tls:// bind (RFC 5425) where senders support it, or limit who can reach this port (firewall, internal address)")
		}
		if l.Mode == "admin" && !l.Loopback() {
			add(KindAdminExposed, "admin listener on a non-loopback address: the admin API serves metrics and can reload the config; set [admin] listen = \"127.0.0.1:%d\" or firewall it", l.Port)
		}
		if s := Lookup(l.Port, l.Proto); s != nil && !s.fits(l.Use()) {
			what, instead := useText[l.Use()], usePorts[l.Use()]
			if l.Mode == "admin" {
				what, instead = "the admin API (plain HTTP)", "an unassigned port such as the default "+conf.DefaultAdminListen[strings.LastIndexByte(conf.DefaultAdminListen, ':')+1:]
			}
			add(KindPortMismatch, "port %d/%s usually carries %s, but this listener serves %s: clients, scanners and firewall rules expecting %s will be confused; use %s", l.Port, l.Proto, s.Name, what, s.Name, instead)
		}
	}
	return ws
}

// displayHost is the address column: "*" for no host, IPv6 in brackets
// not needed since the port has its own column.
func displayHost(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// tlsText is the TLS column.
func tlsText(tls bool) string {
	if tls {
		return "yes"
	}
	return "no"
}

// aclText is the ACL column: how many allow and deny entries.
func aclText(l *Listener) string {
	var parts []string
	if n := len(l.Allow); n > 0 {
		parts = append(parts, "allow "+strconv.Itoa(n))
	}
	if n := len(l.Deny); n > 0 {
		parts = append(parts, "deny "+strconv.Itoa(n))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// orDash is "-" for an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.TrimSpace(s)
}
