package conf

// Proxy frontends (mode tcp and http) and their backends: helpers shared
// by validation, `wharf check` and the proxy packages. The keys are in
// schema.go, their defaults in defaults.go, their checks in
// proxy_validate.go.

import (
	"fmt"
	"net/netip"
	"strings"
)

// IsProxy reports whether the frontend forwards connections (mode tcp or
// http) rather than ingesting syslog.
func (f *Frontend) IsProxy() bool { return f.Mode == "tcp" || f.Mode == "http" }

// ParsePrefix parses a CIDR ("10.0.0.0/8", "2001:db8::/32") or a single
// IP ("192.0.2.7", as a /32 or /128). IPv4-mapped IPv6 is unmapped, so
// "::ffff:10.0.0.1" matches IPv4 clients.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR (e.g. 192.0.2.7 or 10.0.0.0/8)", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefixes parses a list with ParsePrefix, stopping at the first
// error.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// checkHostPattern accepts "name.example.com" and "*.example.com" (the
// wildcard stands for exactly one label, as in TLS certificates).
func checkHostPattern(s string) error {
	if s == "" {
		return nil
	}
	rest := strings.TrimPrefix(s, "*.")
	if strings.Contains(rest, "*") {
		return fmt.Errorf("%q: a wildcard is only allowed as the whole first label, e.g. \"*.example.com\"", s)
	}
	if rest == "" || strings.HasPrefix(rest, ".") || strings.HasSuffix(rest, ".") || strings.Contains(rest, "..") {
		return fmt.Errorf("%q is not a host name", s)
	}
	if strings.ContainsAny(rest, " /:") {
		return fmt.Errorf("%q: want a bare host name (no port, path or spaces)", s)
	}
	return nil
}

// describeProxyFrontend prints a tcp/http frontend for `wharf check`.
func describeProxyFrontend(pr func(string, ...any), name string, f *Frontend) {
	pr("  frontend %s: mode %s, maxconn %d (%d per client address), header_timeout %s, client_timeout %s", name, f.Mode, f.MaxConn, f.MaxConnPerIP, f.HeaderTimeout, f.ClientTimeout)
	var extras []string
	if f.AcceptProxy {
		extras = append(extras, "accept_proxy from "+strings.Join(f.TrustedProxies, ", "))
	} else if len(f.TrustedProxies) > 0 {
		extras = append(extras, "trusted_proxies "+strings.Join(f.TrustedProxies, ", "))
	}
	if len(f.Allow) > 0 {
		extras = append(extras, "allow "+strings.Join(f.Allow, ", "))
	}
	if len(f.Deny) > 0 {
		extras = append(extras, "deny "+strings.Join(f.Deny, ", "))
	}
	if f.SNIRouting {
		extras = append(extras, "sni_routing")
	}
	if f.TLSCert != "" {
		extras = append(extras, "tls "+f.TLSCert)
	}
	if f.Mode == "http" {
		extras = append(extras, "max_header_bytes "+f.MaxHeaderBytes.String())
	}
	if len(extras) > 0 {
		pr("    %s", strings.Join(extras, "; "))
	}
	if f.RedirectHTTPS {
		// Answered by wharf: use rules and backend are not consulted.
		pr("    every request -> 301 to https://HOST/PATH (no backend asked)")
		if len(f.AccessLog) > 0 {
			pr("    access log -> %s", strings.Join(f.AccessLog, ", "))
		}
		return
	}
	for i, u := range f.Use {
		var conds []string
		if u.SNI != "" {
			conds = append(conds, "sni "+u.SNI)
		}
		if u.Host != "" {
			conds = append(conds, "host "+u.Host)
		}
		if u.PathPrefix != "" {
			conds = append(conds, "path_prefix "+u.PathPrefix)
		}
		pr("    use[%d] %s -> backend %s", i, strings.Join(conds, " "), u.Backend)
	}
	def := f.Backend
	if def == "" {
		def = "(refused)"
	}
	if len(f.Use) > 0 {
		pr("    otherwise -> backend %s", def)
	} else {
		pr("    all -> backend %s", def)
	}
	printHeaderEdits(pr, "requests", f.RequestHeaders)
	printHeaderEdits(pr, "responses", f.ResponseHeaders)
	if len(f.AccessLog) > 0 {
		pr("    access log -> %s", strings.Join(f.AccessLog, ", "))
	}
}

// describeBackends prints every backend for `wharf check`.
func (c *Config) describeBackends(pr func(string, ...any)) {
	if len(c.Backends) == 0 {
		return
	}
	pr("")
	pr("backends:")
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		balance := b.Balance
		if b.Balance == "hash" {
			balance += " on " + b.HashKey
		}
		pr("  backend %s: balance %s, connect_timeout %s, server_timeout %s, retries %d", name, balance, b.ConnectTimeout, b.ServerTimeout, b.Retries)
		switch b.Check {
		case "none":
			pr("    check none (failed connects still count toward fall %d)", b.Fall)
		case "http":
			pr("    check http GET %s expect %d, every %s, timeout %s, rise %d, fall %d", b.CheckPath, b.CheckStatus, b.CheckInterval, b.CheckTimeout, b.Rise, b.Fall)
		default:
			pr("    check %s every %s, timeout %s, rise %d, fall %d", b.Check, b.CheckInterval, b.CheckTimeout, b.Rise, b.Fall)
		}
		for _, s := range b.Servers {
			line := fmt.Sprintf("    server %s %s weight %d", s.Name, s.Address, s.Weight)
			if s.MaxConn > 0 {
				line += fmt.Sprintf(" maxconn %d", s.MaxConn)
			}
			if s.SendProxy != "" {
				line += " send_proxy " + s.SendProxy
			}
			if s.Backup {
				line += " backup"
			}
			pr("%s", line)
		}
	}
}

// ProxyExampleConfig is the proxy example in the reference: an HTTP
// frontend and a TLS-passthrough frontend with their backends, next to
// the HAProxy config they mirror.
const ProxyExampleConfig = `# HAProxy:
#   frontend www
#       mode http
#       bind :80
#       timeout client 1m
#       use_backend api if { hdr(host) -i api.example.com } { path_beg /v1/ }
#       default_backend web
#   backend web
#       balance roundrobin
#       option httpchk GET /healthz
#       server web1 10.0.0.11:8080 check weight 2
#       server web2 10.0.0.12:8080 check
[frontend.www]
mode = "http"
bind = ["tcp://0.0.0.0:80"]
client_timeout = "1m"
trusted_proxies = ["10.0.0.0/8"]    # keep X-Forwarded-For from the LB tier
backend = "web"

[[frontend.www.use]]
host = "api.example.com"
path_prefix = "/v1/"
backend = "api"

[backend.web]
balance = "roundrobin"
check = "http"
check_path = "/healthz"

[[backend.web.server]]
name = "web1"
address = "10.0.0.11:8080"
weight = 2

[[backend.web.server]]
name = "web2"
address = "10.0.0.12:8080"

[backend.api]
balance = "leastconn"
[[backend.api.server]]
address = "10.0.0.21:9000"
send_proxy = "v2"                   # server send-proxy-v2

# HAProxy:
#   frontend tls
#       mode tcp
#       bind :443 accept-proxy
#       tcp-request inspect-delay 10s
#       tcp-request content accept if { req_ssl_hello_type 1 }
#       use_backend db if { req_ssl_sni -m end .db.example.com }
#       default_backend web_tls
[frontend.tls]
mode = "tcp"
bind = ["tcp://0.0.0.0:443"]
accept_proxy = true
trusted_proxies = ["10.0.0.0/8"]
deny = ["10.9.0.0/16"]
sni_routing = true
header_timeout = "10s"
backend = "web_tls"

[[frontend.tls.use]]
sni = ".db.example.com"
backend = "db"

[backend.web_tls]
[[backend.web_tls.server]]
address = "10.0.0.11:8443"
[[backend.web_tls.server]]
address = "10.0.0.12:8443"

[backend.db]
balance = "source"
connect_timeout = "2s"
rise = 2
fall = 3
[[backend.db.server]]
address = "10.0.0.31:5432"
maxconn = 100
[[backend.db.server]]
address = "10.0.0.32:5432"
maxconn = 100
`

// printHeaderEdits describes request_headers or response_headers (what:
// "requests" or "responses") for wharf check.
func printHeaderEdits(pr func(string, ...any), what string, m map[string]string) {
	var set, del []string
	for _, name := range sortedKeys(m) {
		if v := m[name]; v != "" {
			set = append(set, name+": "+v)
		} else {
			del = append(del, name)
		}
	}
	if len(set) > 0 {
		pr("    %s set %s", what, strings.Join(set, "; "))
	}
	if len(del) > 0 {
		pr("    %s drop %s", what, strings.Join(del, ", "))
	}
}
