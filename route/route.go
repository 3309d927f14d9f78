// Package route compiles a config's frontends and route rules into an
// immutable Table that the ingest hot path consults without locks.
//
// A Table is built once at start (and again on reload) by Compile and
// published through a Holder (an atomic.Pointer). Listeners call
// Holder.Load once per read, then Frontend.Match once per message: Match
// walks a short slice of pre-compiled rules and touches no map and no lock.
package route

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"

	"wharf/conf"
	"wharf/ingest/parse"
	"wharf/message"
)

// Target is one destination a message can be routed to: the sink runner
// owning the named sink's queue.
type Target interface {
	// Enqueue takes over one reference of m (see sinks.Runner.Enqueue).
	Enqueue(m *message.Message, block bool) bool
	// EnqueueBatch takes over one reference of each of ms, in order, and
	// returns how many were queued; ms is not retained (see
	// sinks.Runner.EnqueueBatch). Listeners hand over a read's messages
	// with it.
	EnqueueBatch(ms []*message.Message, block bool) int
}

// FrameTarget is a Target that queues bytes, not messages: a sink runner
// over a sink that frames every message the same (sinks.Framer). A
// listener frames each message for it as the message is routed and
// hands the read's frames over at once (message.Frames), so the message
// need not outlive the read.
type FrameTarget interface {
	Target
	// TakesFrames reports whether the target takes frames; it does not
	// change over the target's life.
	TakesFrames() bool
	// FrameID tells the target apart from every other FrameTarget of
	// the process, for the life of the process, and is never 0: a
	// listener finds the frames it collects for a target by it, an
	// integer compare where an interface compare (runtime.ifaceeq) cost
	// about 20 instructions a message.
	FrameID() uint64
	// PassesOctetFrames reports whether AppendFrame(b, m) is always the
	// octet-counted frame of m.Raw ("LEN SP RAW", sinks.OctetPasser), so
	// a listener may queue a frame as it was read instead; it does not
	// change over the target's life.
	PassesOctetFrames() bool
	// AppendFrame appends m to b as the target's sink sends it. It may be
	// called from several goroutines at once and keeps nothing of m.
	AppendFrame(b []byte, m *message.Message) []byte
	// EnqueueFrames takes f's messages from index from on, in order (see
	// sinks.Runner.EnqueueFrames). It returns next, the first message it
	// did not take (the caller hands f[next:] over as messages, with
	// EnqueueBatch), and how many of f[from:next] it queued.
	EnqueueFrames(f *message.Frames, from int, block bool) (next, queued int)
}

// Dest is a named Target.
type Dest struct {
	Name   string
	Target Target
	// Frames is Target when it takes frames (FrameTarget), else nil;
	// FrameID is then its FrameID, and PassOctet its PassesOctetFrames.
	Frames    FrameTarget
	FrameID   uint64
	PassOctet bool
}

// Rule is one compiled match rule. The zero conditions match anything.
type Rule struct {
	// facilities is a bit set over facility codes 0..23; 0 means any.
	facilities uint32
	// severities is a bit set over severity codes 0..7; 0 means any.
	severities uint8
	hostname   glob
	appName    glob
	// content is true when the rule looks at MSG or structured data
	// (contains, regex, sd); rules without it never touch them.
	content  bool
	contains []byte
	regex    *regexp.Regexp
	// regexLits: one of them must be in MSG for regex to match (see
	// prefilter.go); nil when the pattern has no such literals.
	regexLits [][]byte
	sd        []sdCond
	// Drop discards matching messages (action = "drop"); Dests is empty.
	Drop bool
	// Dests receive the matching messages.
	Dests []Dest
	// Index is the rule's position in the config, for descriptions.
	Index int
}

// sdCond is one structured-data condition: the parameter id.name must be
// present with a value matching val.
type sdCond struct {
	id, name []byte
	val      glob
}

// Frontend is the compiled routing of one frontend.
type Frontend struct {
	// Name of the frontend.
	Name string
	// Rules are tried in order; the first match decides.
	Rules []Rule
	// Default receives messages that match no rule.
	Default []Dest
	// FullParse reports whether a sink this frontend routes to needs the
	// RFC5424 structured data or MSG located (an encoding other than raw)
	// or keeps messages in a disk buffer (replayed later, perhaps under
	// another encoding). When false, a frontend with parse = "header"
	// parses headers only (see parse.ParseHeader).
	FullParse bool
}

// Match returns where m goes. The returned slice belongs to the table and
// must not be modified. drop reports a matching rule with action "drop"
// (dests is then empty); an empty result without drop means no rule
// matched and the frontend has no default sinks.
//
// Match takes no lock and allocates nothing, whatever the rules; rules
// with msg_contains, msg_regex or sd read MSG and the structured data,
// so the frontend must have parsed them (FullParse).
func (f *Frontend) Match(m *message.Message) (dests []Dest, drop bool) {
	for i := range f.Rules {
		r := &f.Rules[i]
		if r.matches(m) {
			return r.Dests, r.Drop
		}
	}
	return f.Default, false
}

func (r *Rule) matches(m *message.Message) bool {
	if r.facilities != 0 {
		fac := m.Facility()
		if fac < 0 || r.facilities&(1<<uint(fac)) == 0 {
			return false
		}
	}
	if r.severities != 0 {
		sev := m.Severity()
		if sev < 0 || r.severities&(1<<uint(sev)) == 0 {
			return false
		}
	}
	if !r.hostname.match(m.Field(m.Hostname)) || !r.appName.match(m.Field(m.AppName)) {
		return false
	}
	if !r.content {
		return true
	}
	if len(r.sd) > 0 && !r.matchSD(m) {
		return false
	}
	msg := messageText(m)
	if r.contains != nil && !bytes.Contains(msg, r.contains) {
		return false
	}
	if r.regex == nil {
		return true
	}
	if r.regexLits != nil && !containsAny(msg, r.regexLits) {
		return false
	}
	return r.regex.Match(msg)
}

// messageText is what msg_contains and msg_regex look at: MSG, or the
// whole line for a message that was not parsed (format raw, or forwarded
// raw after a parse error).
func messageText(m *message.Message) []byte {
	if m.Format == message.FormatRaw {
		return m.Raw
	}
	return m.Field(m.Msg)
}

// matchSD reports whether every sd condition holds. Values are compared
// with their escapes resolved; the common value without a backslash is
// matched in place.
func (r *Rule) matchSD(m *message.Message) bool {
	if m.Format != message.FormatRFC5424 || m.StructuredData.Len == 0 {
		return false
	}
	sd := m.Field(m.StructuredData)
	for i := range r.sd {
		c := &r.sd[i]
		found := false
		_ = parse.EachSDParam(sd, func(id, name, value []byte) bool {
			if !bytes.Equal(id, c.id) || !bytes.Equal(name, c.name) {
				return true
			}
			if bytes.IndexByte(value, '\\') >= 0 {
				var scratch [256]byte
				value = parse.UnescapeSDValue(scratch[:0], value)
			}
			found = c.val.match(value)
			return !found
		})
		if !found {
			return false
		}
	}
	return true
}

// Table is the compiled routing of every frontend. Immutable once built.
type Table struct {
	frontends map[string]*Frontend
}

// Frontend returns the compiled routing of the named frontend, or nil.
func (t *Table) Frontend(name string) *Frontend { return t.frontends[name] }

// Names returns the frontend names, sorted.
func (t *Table) Names() []string {
	out := make([]string, 0, len(t.frontends))
	for n := range t.frontends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Compile builds a Table for every syslog frontend of cfg, and for every
// proxy frontend with an access_log. targets maps
// sink names to their runners; a name that cfg references but targets
// lacks is an error (conf validation normally catches it first).
func Compile(cfg *conf.Config, targets map[string]Target) (*Table, error) {
	t := &Table{frontends: map[string]*Frontend{}}
	var errs []string
	dests := func(where string, names []string) []Dest {
		out := make([]Dest, 0, len(names))
		for _, n := range names {
			tg, ok := targets[n]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: unknown sink %q", where, n))
				continue
			}
			d := Dest{Name: n, Target: tg}
			if ft, ok := tg.(FrameTarget); ok && ft.TakesFrames() {
				d.Frames, d.FrameID, d.PassOctet = ft, ft.FrameID(), ft.PassesOctetFrames()
			}
			out = append(out, d)
		}
		return out
	}
	for name, fe := range cfg.Frontends {
		if fe.Mode != "" && fe.Mode != "syslog" {
			// A proxy frontend's access log (proxy/accesslog) goes to
			// its access_log sinks: a frontend without rules.
			if len(fe.AccessLog) > 0 {
				t.frontends[name] = &Frontend{Name: name, Default: dests("frontend."+name+".access_log", fe.AccessLog)}
			}
			continue
		}
		f := &Frontend{Name: name, Default: dests("frontend."+name+".sinks", fe.Sinks)}
		f.FullParse = needsFullParse(cfg, fe.Sinks)
		for i, rc := range fe.Routes {
			where := fmt.Sprintf("frontend.%s.route[%d]", name, i)
			r, err := compileRule(rc)
			if err != nil {
				errs = append(errs, where+": "+err.Error())
				continue
			}
			r.Index = i
			r.Dests = dests(where+".sinks", rc.Sinks)
			f.Rules = append(f.Rules, r)
			// A content condition needs MSG and SD parsed for every
			// message, whatever the sinks need.
			f.FullParse = f.FullParse || r.content || needsFullParse(cfg, rc.Sinks)
		}
		t.frontends[name] = f
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("route: %s", strings.Join(errs, "; "))
	}
	return t, nil
}

// needsFullParse reports whether one of the named sinks needs messages
// parsed completely (see Frontend.FullParse). A target without a sink
// section (tests route to their own) is assumed to need everything.
func needsFullParse(cfg *conf.Config, sinks []string) bool {
	for _, n := range sinks {
		s := cfg.Sinks[n]
		if s == nil {
			return true
		}
		enc := s.Encoding
		if enc == "" {
			enc = conf.DefaultEncoding(s.Type)
		}
		if enc != "raw" || s.Buffer != nil {
			return true
		}
	}
	return false
}

func compileRule(rc conf.Route) (Rule, error) {
	var r Rule
	for _, f := range rc.Facility {
		code, err := conf.ParseFacility(f)
		if err != nil {
			return r, err
		}
		r.facilities |= 1 << uint(code)
	}
	for _, s := range rc.Severity {
		lo, hi, err := conf.ParseSeverityRange(s)
		if err != nil {
			return r, err
		}
		for sev := lo; sev <= hi; sev++ {
			r.severities |= 1 << uint(sev)
		}
	}
	var err error
	if r.hostname, err = compileGlob(rc.Hostname); err != nil {
		return r, fmt.Errorf("hostname: %w", err)
	}
	if r.appName, err = compileGlob(rc.AppName); err != nil {
		return r, fmt.Errorf("app_name: %w", err)
	}
	if rc.MsgContains != "" {
		r.contains = []byte(rc.MsgContains)
	}
	if rc.MsgRegex != "" {
		if r.regex, err = regexp.Compile(rc.MsgRegex); err != nil {
			return r, fmt.Errorf("msg_regex: %w", err)
		}
		r.regexLits = regexPrefilter(rc.MsgRegex)
	}
	keys := make([]string, 0, len(rc.SD))
	for k := range rc.SD {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id, name, err := conf.SplitSDKey(k)
		if err != nil {
			return r, err
		}
		g := glob{} // "": the value must be empty
		if v := rc.SD[k]; v != "" {
			if g, err = compileGlob(v); err != nil {
				return r, fmt.Errorf("sd.%s: %w", k, err)
			}
		}
		r.sd = append(r.sd, sdCond{id: []byte(id), name: []byte(name), val: g})
	}
	r.content = r.contains != nil || r.regex != nil || len(r.sd) > 0
	switch rc.Action {
	case "", "forward":
	case "drop":
		r.Drop = true
	default:
		return r, fmt.Errorf("unknown action %q (want forward or drop)", rc.Action)
	}
	return r, nil
}

// Holder publishes the current Table. Load is one atomic read.
type Holder struct{ p atomic.Pointer[Table] }

// Load returns the current table (nil before the first Store).
func (h *Holder) Load() *Table { return h.p.Load() }

// Store publishes t; readers see either the old or the new table whole.
func (h *Holder) Store(t *Table) { h.p.Store(t) }

// glob matches a byte slice against a shell pattern without allocating.
// "" matches anything. Patterns with only '*' and '?' wildcards take the
// allocation-free path; character classes fall back to path.Match.
type glob struct {
	pat     string
	any     bool
	classes bool
}

func compileGlob(p string) (glob, error) {
	if p == "" || p == "*" {
		return glob{any: true}, nil
	}
	if _, err := path.Match(p, ""); err != nil {
		return glob{}, fmt.Errorf("bad glob %q: %v", p, err)
	}
	return glob{pat: p, classes: strings.ContainsAny(p, `[\`)}, nil
}

func (g glob) match(b []byte) bool {
	if g.any {
		return true
	}
	if g.classes {
		ok, _ := path.Match(g.pat, string(b))
		return ok
	}
	return MatchGlob(g.pat, b)
}

// MatchGlob reports whether s matches the shell pattern p, where '*'
// matches any run of bytes (including '/') and '?' one byte; everything
// else is literal. Iterative with single-star backtracking: linear in
// practice, no recursion, no allocation. The tap's filters use it too.
func MatchGlob(p string, s []byte) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
