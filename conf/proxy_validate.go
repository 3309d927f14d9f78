package conf

import (
	"fmt"
	"os"
	"strings"
)

// proxyFrontend checks a tcp/http frontend. Binds are already parsed.
func (v *validator) proxyFrontend(p string, f *Frontend) {
	for i, b := range f.Binds {
		if b.Scheme != "tcp" {
			v.errAt(idx(p+".bind", i), "mode %s listens on tcp only; write tcp://%s", f.Mode, b.Addr)
		}
	}
	// Keys of syslog frontends. Proxy frontends get no syslog defaults, so
	// anything set here was written by the user.
	for _, k := range []struct {
		key string
		set bool
	}{
		{"format", f.Format != ""}, {"parse", f.Parse != ""}, {"framing", f.Framing != ""},
		{"max_message_size", f.MaxMessageSize != 0}, {"oversize", f.Oversize != ""},
		{"on_error", f.OnError != ""}, {"sinks", len(f.Sinks) > 0}, {"route", len(f.Routes) > 0},
		{"frame_timeout", f.FrameTimeout.Duration != 0}, {"dead_letter", f.DeadLetter != ""},
		{"tls_client_ca", f.TLSClientCA != ""}, {"tls_min_version", f.TLSMinVersion != ""},
		{"rate_limit", !f.RateLimit.IsZero()}, {"rate_burst", f.RateBurst != 0},
		{"rate_limit_per_ip", !f.RateLimitPerIP.IsZero()}, {"rate_burst_per_ip", f.RateBurstPerIP != 0},
		{"relp_window", f.RELPWindow != 0}, {"relp_ack", f.RELPAck != ""},
	} {
		if k.set {
			v.errAt(p+"."+k.key, "key %s applies to syslog frontends only, not mode %s (proxy frontends send to backend = \"NAME\")", k.key, f.Mode)
		}
	}
	v.sinkRefs(p+".access_log", f.AccessLog)
	if f.RedirectHTTPS && (f.Mode != "http" || f.TLSCert != "") {
		v.errAt(p+".redirect_https", "redirect_https applies to mode http frontends without tls_cert (they already serve https)")
	}
	v.headerEdits(p, "response_headers", f.Mode, f.ResponseHeaders, managedHeader)
	v.headerEdits(p, "request_headers", f.Mode, f.RequestHeaders, func(name string) bool {
		return managedHeader(name) || proxyRequestHeader(name)
	})
	if f.Mode != "tcp" && f.SNIRouting {
		v.errAt(p+".sni_routing", "sni_routing applies to mode tcp only (an http frontend routes by host)")
	}
	if f.Mode != "http" {
		if f.MaxHeaderBytes != 0 {
			v.errAt(p+".max_header_bytes", "max_header_bytes applies to mode http only")
		}
		if f.TLSCert != "" || f.TLSKey != "" {
			v.errAt(p, "tls_cert/tls_key apply to mode http only; a tcp frontend passes TLS through (see sni_routing)")
		}
		if len(f.TLSCiphers) > 0 {
			v.errAt(p+".tls_ciphers", "tls_ciphers applies to mode http with tls_cert only; a tcp frontend passes TLS through")
		}
		if f.HTTP2 != nil {
			v.errAt(p+".http2", "http2 applies to mode http with tls_cert only")
		}
		if f.Engine != "" {
			v.errAt(p+".engine", "engine applies to mode http only")
		}
	} else {
		switch f.Engine {
		case "", "goroutines": // "": event-loop, or goroutines with TLS or accept_proxy
		case "event-loop":
			if f.TLSCert != "" || f.AcceptProxy {
				v.errAt(p+".engine", "engine = \"event-loop\" serves plain HTTP/1.1 only: not with tls_cert or accept_proxy (those frontends use goroutines)")
			}
		default:
			v.errAt(p+".engine", "engine %q is not one of goroutines, event-loop", f.Engine)
		}
		if (f.TLSCert == "") != (f.TLSKey == "") {
			v.errAt(p, "set both tls_cert and tls_key to terminate TLS, or neither")
		}
		if len(f.TLSCiphers) > 0 && f.TLSCert == "" {
			v.errAt(p+".tls_ciphers", "tls_ciphers applies when the frontend terminates TLS (tls_cert and tls_key)")
		}
		if f.HTTP2 != nil && *f.HTTP2 && f.TLSCert == "" {
			v.errAt(p+".http2", "http2 needs tls_cert and tls_key: HTTP/2 is negotiated by ALPN (h2c is not served)")
		}
		v.tlsCiphers(p, f.TLSCiphers)
		for _, k := range []struct{ key, file string }{{"tls_cert", f.TLSCert}, {"tls_key", f.TLSKey}} {
			if k.file == "" {
				continue
			}
			if _, err := os.Stat(k.file); err != nil {
				v.errAt(p+"."+k.key, "cannot read %s: %v", k.file, err)
			}
		}
		if f.MaxHeaderBytes < 0 || f.MaxHeaderBytes > MaxMaxMessageSize {
			v.errAt(p+".max_header_bytes", "%s out of range (1B-%s)", f.MaxHeaderBytes, MaxMaxMessageSize)
		}
	}
	if f.MaxConn < 0 {
		v.errAt(p+".maxconn", "must not be negative")
	}
	if f.MaxConnPerIP < 0 {
		v.errAt(p+".maxconn_per_ip", "must not be negative (set it to maxconn to turn the per-address cap off)")
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"allow", f.Allow}, {"deny", f.Deny}, {"trusted_proxies", f.TrustedProxies}} {
		for i, s := range l.list {
			if _, err := ParsePrefix(s); err != nil {
				v.errAt(idx(p+"."+l.key, i), "%v", err)
			}
		}
	}
	if f.AcceptProxy && len(f.TrustedProxies) == 0 {
		v.errAt(p+".accept_proxy", "accept_proxy needs trusted_proxies = [\"CIDR\", ...]: PROXY headers are accepted only from those addresses")
	}
	if f.Backend == "" && len(f.Use) == 0 && !f.RedirectHTTPS {
		v.errAt(p, "no backend: add backend = \"NAME\" naming a [backend.NAME]")
	}
	if f.Backend != "" {
		v.backendRef(p+".backend", f.Backend)
	}
	for i := range f.Use {
		up := idx(p+".use", i)
		u := &f.Use[i]
		if u.Backend == "" {
			v.errAt(up, "use rule has no backend: add backend = \"NAME\"")
		} else {
			v.backendRef(up+".backend", u.Backend)
		}
		switch f.Mode {
		case "tcp":
			if u.Host != "" || u.PathPrefix != "" {
				v.errAt(up, "host and path_prefix match HTTP requests; a tcp frontend routes by sni (with sni_routing = true)")
			}
			if u.SNI == "" {
				v.errAt(up, "use rule needs sni = \"NAME\" (exact, \"*.example.com\" or \".example.com\")")
			} else if !f.SNIRouting {
				v.errAt(up+".sni", "sni rules need sni_routing = true on the frontend")
			}
		case "http":
			if u.SNI != "" {
				v.errAt(up+".sni", "sni matches on tcp frontends with sni_routing; an http frontend matches host")
			}
			if u.Host == "" && u.PathPrefix == "" {
				v.errAt(up, "use rule matches everything: give it host and/or path_prefix, or set the frontend's backend")
			}
			if u.PathPrefix != "" && !strings.HasPrefix(u.PathPrefix, "/") {
				v.errAt(up+".path_prefix", "path_prefix %q must start with /", u.PathPrefix)
			}
		}
		if err := checkSNIPattern(u.SNI); err != nil {
			v.errAt(up+".sni", "%v", err)
		}
		if err := checkHostPattern(u.Host); err != nil {
			v.errAt(up+".host", "%v", err)
		}
	}
}

// checkSNIPattern accepts what checkHostPattern does and, for sni only,
// ".example.com": a leading dot matches any depth below example.com
// (sni.Match).
func checkSNIPattern(s string) error {
	rest, ok := strings.CutPrefix(s, ".")
	if !ok {
		return checkHostPattern(s)
	}
	if rest == "" || strings.Contains(rest, "*") || checkHostPattern(rest) != nil {
		return fmt.Errorf("%q: a leading dot takes a domain name after it (any depth below it matches), e.g. \".example.com\"", s)
	}
	return nil
}

// syslogFrontendProxyKeys reports proxy keys written on a syslog frontend.
func (v *validator) syslogFrontendProxyKeys(p string, f *Frontend) {
	for _, k := range []struct {
		key string
		set bool
	}{
		{"backend", f.Backend != ""}, {"use", len(f.Use) > 0}, {"accept_proxy", f.AcceptProxy},
		{"trusted_proxies", len(f.TrustedProxies) > 0}, {"sni_routing", f.SNIRouting},
		{"max_header_bytes", f.MaxHeaderBytes != 0}, {"access_log", len(f.AccessLog) > 0},
		{"response_headers", len(f.ResponseHeaders) > 0}, {"request_headers", len(f.RequestHeaders) > 0},
		{"engine", f.Engine != ""},
		{"redirect_https", f.RedirectHTTPS},
	} {
		if k.set {
			v.errAt(p+"."+k.key, "key %s applies to proxy frontends (mode tcp or http), not mode %s", k.key, f.Mode)
		}
	}
	// Keys both kinds share: connection limits and ACLs.
	if f.MaxConn < 0 {
		v.errAt(p+".maxconn", "must not be negative")
	}
	if f.MaxConnPerIP < 0 {
		v.errAt(p+".maxconn_per_ip", "must not be negative (set it to maxconn to turn the per-address cap off)")
	}
	if f.ClientTimeout.Duration < 0 {
		v.errAt(p+".client_timeout", "must not be negative")
	}
	if f.FrameTimeout.Duration < 0 {
		v.errAt(p+".frame_timeout", "must not be negative")
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"allow", f.Allow}, {"deny", f.Deny}} {
		for i, s := range l.list {
			if _, err := ParsePrefix(s); err != nil {
				v.errAt(idx(p+"."+l.key, i), "%v", err)
			}
		}
	}
}

func (v *validator) backendRef(p, name string) {
	if _, ok := v.c.Backends[name]; ok {
		return
	}
	msg := fmt.Sprintf("unknown backend %q", name)
	if s := suggest(name, sortedKeys(v.c.Backends)); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(v.c.Backends) > 0 {
		msg += " (defined: " + strings.Join(sortedKeys(v.c.Backends), ", ") + ")"
	} else {
		msg += "; no [backend.NAME] is defined"
	}
	v.errAt(p, "%s", msg)
}

// backends checks every backend and warns about unused ones.
func (v *validator) backends() {
	used := map[string]bool{}
	for _, f := range v.c.Frontends {
		if f == nil || !f.IsProxy() {
			continue
		}
		used[f.Backend] = true
		for _, u := range f.Use {
			used[u.Backend] = true
		}
	}
	for _, name := range sortedKeys(v.c.Backends) {
		b := v.c.Backends[name]
		if b == nil {
			b = &Backend{}
			b.applyDefaults()
			v.c.Backends[name] = b
		}
		b.Name = name
		if strings.Contains(name, "/") {
			v.errAt(join("backend", name), "backend name %q has a '/': wharf server and /api/servers address a server as BACKEND/SERVER, so names cannot hold one", name)
		}
		v.backend(join("backend", name), b)
		if !used[name] {
			v.warn(join("backend", name), "not used by any frontend")
		}
		if key := b.HashKey; b.Balance == "hash" && key != "" && key != "source" {
			for _, fname := range sortedKeys(v.c.Frontends) {
				if f := v.c.Frontends[fname]; f != nil && f.IsProxy() && f.Mode == "tcp" && usesBackend(f, name) {
					v.errAt(join("backend", name)+".hash_key", "hash_key %q needs HTTP requests, but tcp frontend %s uses this backend; use hash_key = \"source\" there", key, fname)
				}
			}
		}
	}
}

func usesBackend(f *Frontend, name string) bool {
	if f.Backend == name {
		return true
	}
	for _, u := range f.Use {
		if u.Backend == name {
			return true
		}
	}
	return false
}

// isToken reports whether s is an HTTP token (RFC 9110 5.6.2), as a
// header field name must be.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func (v *validator) backend(p string, b *Backend) {
	v.enum(p, "balance", b.Balance, "roundrobin", "leastconn", "source", "hash")
	switch key := b.HashKey; {
	case b.Balance != "hash":
		if key != "" {
			v.errAt(p+".hash_key", "hash_key applies to balance = \"hash\" only")
		}
	case key == "source", key == "uri":
	case strings.HasPrefix(key, "header:"):
		if name := strings.TrimPrefix(key, "header:"); name == "" || !isToken(name) {
			v.errAt(p+".hash_key", "hash_key %q: want header:NAME with a header field name, e.g. \"header:X-Tenant\"", key)
		}
	default:
		v.errAt(p+".hash_key", "hash_key %q is not one of source, uri, header:NAME", key)
	}
	v.enum(p, "check", b.Check, "tcp", "http", "none")
	if len(b.Servers) == 0 {
		v.errAt(p, "no servers: add [[%s.server]] with address = \"host:port\"", p)
	}
	if b.Retries < 0 {
		v.errAt(p+".retries", "must not be negative")
	}
	if b.Rise < 1 {
		v.errAt(p+".rise", "must be at least 1")
	}
	if b.Fall < 1 {
		v.errAt(p+".fall", "must be at least 1")
	}
	if b.Check != "http" {
		if b.CheckPath != "" {
			v.errAt(p+".check_path", "check_path applies to check = \"http\" only")
		}
		if b.CheckStatus != 0 {
			v.errAt(p+".check_status", "check_status applies to check = \"http\" only")
		}
	} else {
		if !strings.HasPrefix(b.CheckPath, "/") {
			v.errAt(p+".check_path", "check_path %q must start with /", b.CheckPath)
		}
		if b.CheckStatus < 100 || b.CheckStatus > 599 {
			v.errAt(p+".check_status", "status %d out of range (100-599)", b.CheckStatus)
		}
	}
	names := map[string]int{}
	for i := range b.Servers {
		sp := idx(p+".server", i)
		s := &b.Servers[i]
		if s.Address == "" {
			v.errAt(sp, "server needs address = \"host:port\"")
		} else if _, _, err := parseHostPort(s.Address, false); err != nil {
			v.errAt(sp+".address", "%v", err)
		}
		if j, dup := names[s.Name]; dup && s.Name != "" {
			v.errAt(sp+".name", "server name %q is already used by %s; names label metrics, give each server its own", s.Name, idx(p+".server", j))
		}
		names[s.Name] = i
		if strings.Contains(s.Name, "/") {
			// An unset name is the address, whose host cannot hold a '/'
			// either; the error then points at the server.
			v.errAt(sp+".name", "server name %q has a '/': wharf server and /api/servers address a server as BACKEND/SERVER, so names cannot hold one", s.Name)
		}
		if s.Weight < 1 || s.Weight > 256 {
			v.errAt(sp+".weight", "weight %d out of range (1-256)", s.Weight)
		}
		if s.MaxConn < 0 {
			v.errAt(sp+".maxconn", "must not be negative (0 is unlimited)")
		}
		if s.SendProxy != "" {
			v.enum(sp, "send_proxy", s.SendProxy, "v1", "v2")
		}
	}
}

// managedHeader: fields the proxy frames or manages itself.
// headerEdits checks a frontend's response_headers or request_headers
// (key): mode http only, field names that are tokens and not ones the
// proxy writes itself (reserved), values without CR, LF or NUL.
func (v *validator) headerEdits(p, key, mode string, m map[string]string, reserved func(string) bool) {
	if len(m) > 0 && mode != "http" {
		v.errAt(p+"."+key, "%s applies to mode http only", key)
	}
	for _, name := range sortedKeys(m) {
		switch {
		case !isToken(name):
			v.errAt(p+"."+key, "%q is not a valid header field name", name)
		case reserved(name):
			v.errAt(p+"."+key, "%s is set by the proxy itself (framing, connection management or forwarding) and cannot be set here", name)
		case strings.ContainsAny(m[name], "\r\n\x00"):
			v.errAt(p+"."+key, "the value of %s has a CR, LF or NUL", name)
		}
	}
}

// proxyRequestHeader: a request field the HTTP proxy writes itself (Host
// from the request, the forwarding fields from the client's address).
func proxyRequestHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "expect":
		return true
	}
	return false
}

func managedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "upgrade", "te", "trailer":
		return true
	}
	return false
}
