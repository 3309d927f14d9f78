package conf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"wharf/internal/logfile"
)

// Error is one config problem. Path is the dotted key it is about
// ("frontend.edge.bind[1]"); Line and Col are 1-based, 0 when unknown.
type Error struct {
	File      string
	Path      string
	Msg       string
	Line, Col int
}

// Error renders "FILE:LINE:COL: PATH: MSG", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config, in file order. Load and
// Parse return it as their error; use errors.As to get at the entries.
type Errors []*Error

// Error is one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Validate checks a config built in code the way Parse checks a file:
// it fills Name and Binds, then reports every problem at once as Errors
// (without positions) and sets Warnings. Call ApplyDefaults first: empty
// enum values are errors here.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.validate()
	if len(v.errs) > 0 {
		return v.sorted()
	}
	c.Warnings = v.warnings
	return nil
}

// validator collects errors; md and idx are nil for configs built in code.
type validator struct {
	c        *Config
	md       *toml.MetaData
	idx      *posIndex
	file     string
	binds    []boundAddr // every parsed bind, for the overlap check
	errs     Errors
	envErrs  Errors // failed ${VAR} expansions (env.go)
	warnings []string
	// fileRank orders errors by file: the main file, then included files
	// in the order they were read (include.go).
	fileRank map[string]int
}

func (v *validator) errAt(p, format string, args ...any) {
	e := &Error{File: v.file, Path: p, Msg: fmt.Sprintf(format, args...)}
	if pp, ok := v.idx.lookup(p); ok {
		e.Line, e.Col = pp.Line, pp.Col
		if pp.File != "" {
			e.File = pp.File
		}
	}
	v.errs = append(v.errs, e)
}

func (v *validator) warn(p, format string, args ...any) {
	v.warnings = append(v.warnings, p+": "+fmt.Sprintf(format, args...))
}

// sorted orders errors by position; those without one keep their order
// at the end.
func (v *validator) sorted() Errors {
	es := sortErrors(v.errs)
	if len(v.fileRank) > 1 {
		rank := func(e *Error) int {
			if r, ok := v.fileRank[e.File]; ok && e.Line > 0 {
				return r
			}
			return len(v.fileRank)
		}
		sort.SliceStable(es, func(i, j int) bool { return rank(es[i]) < rank(es[j]) })
	}
	return es
}

func sortErrors(es Errors) Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return es
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path ...string) string {
	for i := 1; i < len(path); i++ {
		path[i] = quoteKey(path[i])
	}
	return strings.Join(path, ".")
}

func idx(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

func oneOf(s string, allowed ...string) bool { return slices.Contains(allowed, s) }

func (v *validator) enum(p, key, val string, allowed ...string) {
	if !oneOf(val, allowed...) {
		v.errAt(p+"."+key, "%s %q is not one of %s", key, val, strings.Join(allowed, ", "))
	}
}

func (v *validator) validate() {
	c := v.c
	v.admin()
	v.adminToken() // security.go
	v.global()
	if len(c.Frontends) == 0 {
		v.errAt("", "no frontend: add a [frontend.NAME] table with bind and sinks")
	}
	for _, name := range sortedKeys(c.Frontends) {
		f := c.Frontends[name]
		if f == nil {
			f = &Frontend{}
			c.Frontends[name] = f
		}
		f.Name = name
		v.frontend(f)
	}
	v.overlaps()
	bufferDirs := map[string]string{}
	for _, name := range sortedKeys(c.Sinks) {
		s := c.Sinks[name]
		if s == nil {
			s = &Sink{}
			c.Sinks[name] = s
		}
		s.Name = name
		v.sink(s)
		v.buffer(join("sink", name), s.Buffer, bufferDirs) // buffer.go
	}
	v.backends() // proxy_validate.go
	v.unreferenced()
}

func (v *validator) admin() {
	l := v.c.Admin.Listen
	if l == "off" {
		return
	}
	host, port, err := parseHostPort(l, true)
	if err != nil {
		v.errAt("admin.listen", "%v (or \"off\" to disable the admin listener)", err)
		return
	}
	// The admin listener takes a TCP port like a bind: the overlap check
	// compares it with every frontend's (wharf run could not start both).
	var ips []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{a.Unmap()}
	} else if ips, err = resolve(host); err != nil {
		v.errAt("admin.listen", "%v", err)
		return
	}
	b := Bind{Scheme: "tcp", Host: host, Port: port, Addr: net.JoinHostPort(host, strconv.Itoa(port))}
	v.binds = append(v.binds, boundAddr{path: "admin.listen", b: b, ips: ips})
}

func (v *validator) global() {
	g := v.c.Global
	v.enum("global", "log_format", g.LogFormat, "text", "json")
	v.enum("global", "log_level", g.LogLevel, "debug", "info", "warn", "error")
	if g.ShutdownTimeout.Duration <= 0 {
		v.errAt("global.shutdown_timeout", "must be positive")
	}
}

// parseHostPort checks "host:port" with a non-empty host; port 0 is
// allowed when zeroOK.
func parseHostPort(s string, zeroOK bool) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			if ae.Err == "too many colons in address" {
				return "", 0, fmt.Errorf("%q: too many colons; write IPv6 addresses in brackets, e.g. [::1]:514", s)
			}
			return "", 0, fmt.Errorf("%q: %s; want host:port", s, ae.Err)
		}
		return "", 0, fmt.Errorf("%q: want host:port", s)
	}
	if h == "" {
		return "", 0, fmt.Errorf("%q: empty host; write 0.0.0.0 or [::] for every address, 127.0.0.1 for loopback", s)
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number", s, p)
	}
	lo := 1
	if zeroOK {
		lo = 0
	}
	if port < lo || port > 65535 {
		return "", 0, fmt.Errorf("port %d out of range (1-65535)", port)
	}
	return h, port, nil
}

// ParseBind parses one bind address, "udp://0.0.0.0:514",
// "tcp://[::1]:6514". The host is not resolved here. Port 0 is accepted
// (the kernel picks a free port) so tests can bind without races.
func ParseBind(s string) (Bind, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Bind{}, fmt.Errorf("%q: want scheme://host:port, e.g. udp://0.0.0.0:514", s)
	}
	switch scheme {
	case "udp", "tcp", "tls", "relp", "relp+tls":
	default:
		return Bind{}, fmt.Errorf("unknown scheme %q in %q (use udp, tcp, tls, relp or relp+tls)", scheme, s)
	}
	host, port, err := parseHostPort(rest, true)
	if err != nil {
		return Bind{}, err
	}
	return Bind{Scheme: scheme, Host: host, Port: port, Addr: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// Network is the bind's transport: "udp", or "tcp" for the stream schemes
// (tcp, tls, relp, relp+tls), which cannot share a port.
func (b Bind) Network() string {
	if b.Scheme == "udp" {
		return "udp"
	}
	return "tcp"
}

// IsRELP reports whether the bind speaks RELP (relp:// or relp+tls://).
func (b Bind) IsRELP() bool { return b.Scheme == "relp" || b.Scheme == "relp+tls" }

// boundAddr is one bind kept for the overlap check.
type boundAddr struct {
	path     string
	frontend string
	b        Bind
	ips      []netip.Addr
}

func (v *validator) frontend(f *Frontend) {
	p := join("frontend", f.Name)
	switch f.Mode {
	case "syslog":
	case "tcp", "http":
	default:
		v.errAt(p+".mode", "mode %q is not one of syslog, tcp, http", f.Mode)
	}
	if len(f.Bind) == 0 {
		v.errAt(p, "no bind: add bind = [\"udp://0.0.0.0:514\"]")
	}
	f.Binds = f.Binds[:0]
	for i, s := range f.Bind {
		b, err := ParseBind(s)
		if err != nil {
			v.errAt(idx(p+".bind", i), "%v", err)
			continue
		}
		var ips []netip.Addr
		if a, err := netip.ParseAddr(b.Host); err == nil {
			ips = []netip.Addr{a.Unmap()}
		} else if ips, err = resolve(b.Host); err != nil {
			v.errAt(idx(p+".bind", i), "%v", err)
			continue
		}
		f.Binds = append(f.Binds, b)
		v.binds = append(v.binds, boundAddr{path: idx(p+".bind", i), frontend: f.Name, b: b, ips: ips})
	}
	if f.IsProxy() {
		v.proxyFrontend(p, f) // proxy_validate.go
		return
	}
	v.syslogFrontendProxyKeys(p, f)
	v.syslogTLS(p, f)  // security.go
	v.rateLimits(p, f) // rate.go
	v.relp(p, f)
	if f.DeadLetter != "" {
		if err := logfile.CheckPath(f.DeadLetter); err != nil {
			v.errAt(p+".dead_letter", "%v", err)
		} else if err := CheckFileDir(f.DeadLetter, filepath.Dir(f.DeadLetter)); err != nil {
			v.errAt(p+".dead_letter", "%v", err)
		}
	}
	v.enum(p, "format", f.Format, "auto", "rfc5424", "rfc3164", "raw")
	v.enum(p, "parse", f.Parse, "header", "full")
	v.enum(p, "framing", f.Framing, "auto", "octet-counting", "lf", "nul")
	v.enum(p, "oversize", f.Oversize, "truncate", "drop")
	v.enum(p, "on_error", f.OnError, "drop", "forward_raw")
	if f.MaxMessageSize < 1 || f.MaxMessageSize > MaxMaxMessageSize {
		v.errAt(p+".max_message_size", "%s out of range (1B-%s)", f.MaxMessageSize, MaxMaxMessageSize)
	}
	if len(f.Sinks) == 0 && len(f.Routes) == 0 {
		v.errAt(p, "no sinks and no routes: add sinks = [\"NAME\"] naming a [sink.NAME]")
	}
	v.sinkRefs(p+".sinks", f.Sinks)
	catchAll := false
	for i := range f.Routes {
		rp := idx(p+".route", i)
		r := &f.Routes[i]
		v.route(rp, r)
		if !r.HasConditions() && r.Action != "drop" {
			catchAll = true
		}
	}
	if len(f.Sinks) == 0 && len(f.Routes) > 0 && !catchAll {
		v.warn(p, "no default sinks: messages that match no route are dropped (counted)")
	}
}

// resolver looks bind hosts up; FuzzParse swaps in one without DNS so
// fuzzing does not send random names to the network.
var resolver = net.DefaultResolver

// resolve looks a bind host up, bounded in time.
func resolve(host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		// One message whether the name is unknown or DNS is unreachable
		// (as on an isolated host): the fix is the same either way.
		return nil, fmt.Errorf("host %q does not resolve; use an IP literal or a name in /etc/hosts or DNS", host)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// overlaps reports two binds that would compete for one socket: same
// scheme and port, and the same address or a wildcard covering the other.
func (v *validator) overlaps() {
	all := v.binds
	for j := range all {
		for i := range j {
			a, b := all[i], all[j]
			if a.b.Network() != b.b.Network() || a.b.Port != b.b.Port || a.b.Port == 0 || !ipsOverlap(a.ips, b.ips) {
				continue
			}
			what := "overlaps"
			if a.b.Addr == b.b.Addr {
				what = "duplicates"
			}
			owner := "frontend " + a.frontend
			if a.frontend == "" {
				owner = "the admin listener"
			}
			v.errAt(b.path, "%s://%s %s %s://%s of %s (%s); one socket cannot serve both",
				b.b.Scheme, b.b.Addr, what, a.b.Scheme, a.b.Addr, owner, a.path)
		}
	}
}

func ipsOverlap(as, bs []netip.Addr) bool {
	for _, a := range as {
		for _, b := range bs {
			if addrsOverlap(a, b) {
				return true
			}
		}
	}
	return false
}

// addrsOverlap: equal, or a wildcard of the same family; on Linux [::]
// also takes IPv4 (dual-stack), so it overlaps everything.
func addrsOverlap(a, b netip.Addr) bool {
	if a == b {
		return true
	}
	wild := func(w, o netip.Addr) bool {
		return w.IsUnspecified() && (w.Is6() || o.Is4())
	}
	return wild(a, b) || wild(b, a)
}

func (v *validator) sinkRefs(p string, names []string) {
	for i, n := range names {
		if _, ok := v.c.Sinks[n]; ok {
			continue
		}
		msg := fmt.Sprintf("unknown sink %q", n)
		if s := suggest(n, sortedKeys(v.c.Sinks)); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else if len(v.c.Sinks) > 0 {
			msg += " (defined: " + strings.Join(sortedKeys(v.c.Sinks), ", ") + ")"
		} else {
			msg += "; no [sink.NAME] is defined"
		}
		v.errAt(idx(p, i), "%s", msg)
	}
}

func (v *validator) route(p string, r *Route) {
	for i, f := range r.Facility {
		if _, err := ParseFacility(f); err != nil {
			v.errAt(idx(p+".facility", i), "%v", err)
		}
	}
	for i, s := range r.Severity {
		if _, _, err := ParseSeverityRange(s); err != nil {
			sp := p + ".severity"
			if len(r.Severity) > 1 {
				sp = idx(sp, i)
			}
			v.errAt(sp, "%v", err)
		}
	}
	for _, g := range []struct{ key, val string }{{"hostname", r.Hostname}, {"app_name", r.AppName}} {
		if _, err := path.Match(g.val, ""); err != nil {
			v.errAt(p+"."+g.key, "bad glob %q: %v (see Go's path.Match)", g.val, err)
		}
	}
	if r.MsgRegex != "" {
		if _, err := regexp.Compile(r.MsgRegex); err != nil {
			v.errAt(p+".msg_regex", "bad regular expression: %v (RE2 syntax, see https://golang.org/s/re2syntax)", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
	for _, k := range sortedKeys(r.SD) {
		if _, _, err := SplitSDKey(k); err != nil {
			v.errAt(p+".sd."+k, "%v", err)
		} else if _, err := path.Match(r.SD[k], ""); err != nil {
			v.errAt(p+".sd."+k, "bad glob %q: %v (see Go's path.Match)", r.SD[k], err)
		}
	}
	if r.Action != "" {
		v.enum(p, "action", r.Action, "forward", "drop")
	}
	switch {
	case r.Action == "drop" && len(r.Sinks) > 0:
		v.errAt(p+".sinks", "a route with action = \"drop\" sends nowhere: remove sinks, or remove action to forward")
	case r.Action != "drop" && len(r.Sinks) == 0:
		v.errAt(p, "route has no sinks: add sinks = [\"NAME\"], or action = \"drop\" to discard what it matches")
	}
	v.sinkRefs(p+".sinks", r.Sinks)
}

// SplitSDKey splits a route's sd key "SD-ID.PARAM-NAME" at the last '.'
// (SD-IDs such as "origin" or "exampleSDID@32473" rarely hold one) and
// checks both are RFC5424 SD-NAMEs: 1-32 printable ASCII characters
// other than '=', ']', '"' and space.
func SplitSDKey(k string) (id, param string, err error) {
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return "", "", fmt.Errorf("sd key %q: want \"SD-ID.PARAM-NAME\", such as \"origin.ip\" or \"exampleSDID@32473.eventSource\"", k)
	}
	id, param = k[:i], k[i+1:]
	for _, n := range []string{id, param} {
		ok := len(n) >= 1 && len(n) <= 32
		for j := 0; ok && j < len(n); j++ {
			c := n[j]
			ok = c > ' ' && c < 0x7f && c != '=' && c != ']' && c != '"'
		}
		if !ok {
			return "", "", fmt.Errorf("sd key %q: %q is not an SD-NAME (1-32 printable ASCII characters, not '=', ']', '\"' or space)", k, n)
		}
	}
	return id, param, nil
}

// facilities are the RFC5424 facility codes by their usual names.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"ntp": 12, "security": 13, "console": 14, "solaris-cron": 15, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility returns the facility code (0..23) for a name ("local0",
// case-insensitive) or a number as a string ("16").
func ParseFacility(s string) (int, error) {
	if n, ok := facilities[strings.ToLower(s)]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 0 && n <= 23 {
			return n, nil
		}
		return 0, fmt.Errorf("facility %d out of range (0-23)", n)
	}
	return 0, fmt.Errorf("unknown facility %q (use kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security, console, solaris-cron, local0..local7 or 0-23)", s)
}

var severities = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3,
	"warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7,
}

func parseSeverity(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if n, ok := severities[t]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(t); err == nil {
		if n >= 0 && n <= 7 {
			return n, nil
		}
		return 0, fmt.Errorf("severity %d out of range (0-7)", n)
	}
	return 0, fmt.Errorf("unknown severity %q (use emerg, alert, crit, err, warning, notice, info, debug or 0-7)", s)
}

// ParseSeverityRange parses "warning" (just that severity) or a range
// "emerg..warning" (inclusive, either order, names or numbers 0-7) and
// returns lo <= hi as severity codes (0 = emerg, 7 = debug).
func ParseSeverityRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "..")
	if lo, err = parseSeverity(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parseSeverity(b); err != nil {
			return 0, 0, err
		}
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi, nil
}

func (v *validator) sink(s *Sink) {
	p := join("sink", s.Name)
	t := sinkType(s.Type)
	switch {
	case t != nil:
	case s.Type == "":
		v.errAt(p, "type is required (%s)", typeList("or"))
	default:
		v.errAt(p+".type", "%s", errUnknownType(s.Type))
	}
	// Runner settings.
	if s.QueueSize < 0 {
		v.errAt(p+".queue_size", "must be positive")
	}
	if s.QueueBytes < 0 {
		v.errAt(p+".queue_bytes", "must be positive")
	}
	// Batches and the backpressure mark are bounded by the queue.
	bound := func(key string, val, queue int64, show func(int64) string, queueKey, why string) {
		switch {
		case val < 0:
			v.errAt(p+"."+key, "must be positive")
		case queue > 0 && val > queue:
			v.errAt(p+"."+key, "%s %s is larger than %s %s; %s", key, show(val), queueKey, show(queue), why)
		}
	}
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	size := func(n int64) string { return Size(n).String() }
	bound("batch_size", int64(s.BatchSize), int64(s.QueueSize), count, "queue_size", "a batch could never fill")
	bound("batch_bytes", int64(s.BatchBytes), int64(s.QueueBytes), size, "queue_bytes", "a batch could never fill")
	bound("backpressure_size", int64(s.BackpressureSize), int64(s.QueueSize), count, "queue_size", "senders would never be paused")
	bound("backpressure_bytes", int64(s.BackpressureBytes), int64(s.QueueBytes), size, "queue_bytes", "senders would never be paused")
	if s.MaxRetries < 0 {
		v.errAt(p+".max_retries", "must not be negative (0 retries until shutdown)")
	}
	for _, d := range []struct {
		key string
		val Duration
	}{{"batch_timeout", s.BatchTimeout}, {"retry_backoff", s.RetryBackoff}} {
		if d.val.Duration < 0 {
			v.errAt(p+"."+d.key, "must not be negative")
		}
	}
	if s.RetryMaxBackoff.Duration < s.RetryBackoff.Duration {
		v.errAt(p+".retry_max_backoff", "retry_max_backoff %s is shorter than retry_backoff %s", s.RetryMaxBackoff, s.RetryBackoff)
	}
	if t == nil {
		return
	}
	v.enum(p, "encoding", s.Encoding, t.Encodings...)
	if want := t.New(); s.Options != nil && reflect.TypeOf(s.Options) != reflect.TypeOf(want) {
		v.errAt(p, "options are %T; type %s takes %T", s.Options, s.Type, want)
		return
	}
	if s.Options != nil {
		s.Options.Validate(&SinkCheck{v: v, path: p})
	}
}

func (v *validator) unreferenced() {
	used := map[string]bool{}
	for _, f := range v.c.Frontends {
		for _, s := range f.Sinks {
			used[s] = true
		}
		for _, s := range f.AccessLog {
			used[s] = true
		}
		for _, r := range f.Routes {
			for _, s := range r.Sinks {
				used[s] = true
			}
		}
	}
	for _, name := range sortedKeys(v.c.Sinks) {
		if !used[name] {
			v.warn(join("sink", name), "not used by any frontend or route; it starts but receives nothing")
		}
	}
}

// CheckSink validates one sink section built in code (defaults applied)
// as Parse validates a file's: sinks.New runs it before a factory.
func CheckSink(name string, s *Sink) error {
	v := &validator{c: &Config{Sinks: map[string]*Sink{name: s}}}
	s.Name = name
	v.sink(s)
	if len(v.errs) > 0 {
		return v.sorted()
	}
	return nil
}
