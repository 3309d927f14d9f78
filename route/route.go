// Package route compiles a config's frontends and route rules into an
// immutable Table that the ingest hot path consults without locks.
//
// A Table is built once at start (and again on reload) by Compile and
// published through a Holder (an atomic.Pointer). Listeners call
// Holder.Load once per read, then Frontend.Match once per message: Match
// walks a short slice of pre-compiled rules and touches no map and no lock.
package route

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"sync/atomic"

	"wharf/conf"
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

// Dest is a named Target.
type Dest struct {
	Name   string
	Target Target
}

// Rule is one compiled match rule. The zero conditions match anything.
type Rule struct {
	// facilities is a bit set over facility codes 0..23; 0 means any.
	facilities uint32
	// sevLo..sevHi is an inclusive severity range; sevHi<0 means any.
	sevLo, sevHi int
	hostname     glob
	appName      glob
	// Dests receive the matching messages.
	Dests []Dest
	// Index is the rule's position in the config, for descriptions.
	Index int
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
// must not be modified. An empty result means "nowhere".
func (f *Frontend) Match(m *message.Message) []Dest {
	for i := range f.Rules {
		r := &f.Rules[i]
		if r.matches(m) {
			return r.Dests
		}
	}
	return f.Default
}

func (r *Rule) matches(m *message.Message) bool {
	if r.facilities != 0 {
		fac := m.Facility()
		if fac < 0 || r.facilities&(1<<uint(fac)) == 0 {
			return false
		}
	}
	if r.sevHi >= 0 {
		sev := m.Severity()
		if sev < r.sevLo || sev > r.sevHi {
			return false
		}
	}
	if !r.hostname.match(m.Field(m.Hostname)) {
		return false
	}
	return r.appName.match(m.Field(m.AppName))
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

// Compile builds a Table for every syslog frontend of cfg. targets maps
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
			out = append(out, Dest{Name: n, Target: tg})
		}
		return out
	}
	for name, fe := range cfg.Frontends {
		if fe.Mode != "" && fe.Mode != "syslog" {
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
			f.FullParse = f.FullParse || needsFullParse(cfg, rc.Sinks)
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
	r := Rule{sevLo: 0, sevHi: -1}
	for _, f := range rc.Facility {
		code, err := conf.ParseFacility(f)
		if err != nil {
			return r, err
		}
		r.facilities |= 1 << uint(code)
	}
	if rc.Severity != "" {
		lo, hi, err := conf.ParseSeverityRange(rc.Severity)
		if err != nil {
			return r, err
		}
		r.sevLo, r.sevHi = lo, hi
	}
	var err error
	if r.hostname, err = compileGlob(rc.Hostname); err != nil {
		return r, fmt.Errorf("hostname: %w", err)
	}
	if r.appName, err = compileGlob(rc.AppName); err != nil {
		return r, fmt.Errorf("app_name: %w", err)
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
