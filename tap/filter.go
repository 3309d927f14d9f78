package tap

import (
	"fmt"
	"strconv"
	"strings"

	"wharf/message"
	"wharf/route"
)

// Filter selects the messages a subscriber sees. Zero fields match
// everything; set fields must all match.
type Filter struct {
	// Frontend taps one frontend by name.
	Frontend string
	// Port keeps messages that arrived on this local port (UDP and TCP
	// binds of the same port number both match).
	Port uint16
	// Severities is a bit set: bit s set means severity s (0 emerg .. 7
	// debug) passes. 0 lets every message through, including those
	// without a known severity; otherwise messages without one are
	// skipped. See ParseSeverity.
	Severities uint8
	// Host and App are globs (* any run, ? one byte) matched against the
	// HOSTNAME and APP-NAME (RFC3164 TAG) fields. A message without the
	// field only matches "*".
	Host, App string
	// Raw delivers the bytes as received instead of a JSON object.
	Raw bool
}

// Match reports whether m passes the filter. It does not allocate.
func (f *Filter) Match(m *message.Message) bool {
	if f.Port != 0 && m.Port != f.Port {
		return false
	}
	if f.Frontend != "" && m.Frontend != f.Frontend {
		return false
	}
	if f.Severities != 0 {
		s := m.Severity()
		if s < 0 || f.Severities&(1<<uint(s)) == 0 {
			return false
		}
	}
	if f.Host != "" && !route.MatchGlob(f.Host, m.Field(m.Hostname)) {
		return false
	}
	if f.App != "" && !route.MatchGlob(f.App, m.Field(m.AppName)) {
		return false
	}
	return true
}

var severityByName = map[string]int{
	"emerg": 0, "emergency": 0, "panic": 0,
	"alert": 1,
	"crit":  2, "critical": 2,
	"err": 3, "error": 3,
	"warning": 4, "warn": 4,
	"notice": 5,
	"info":   6, "informational": 6,
	"debug": 7,
}

func severityCode(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 7 {
		return n, nil
	}
	if n, ok := severityByName[s]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("tap: unknown severity %q: use emerg, alert, crit, err, warning, notice, info, debug or 0..7", s)
}

// ParseSeverity reads a severity selector into a Filter.Severities set:
// "" (everything), "LEVEL" (that level and every more severe one, as in
// syslog.conf: "warning" is emerg..warning) or "A..B" (the inclusive range
// between two levels, in either order: "err..emerg").
func ParseSeverity(s string) (uint8, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	lo, hi := 0, 0
	if a, b, ok := strings.Cut(s, ".."); ok {
		x, err := severityCode(a)
		if err != nil {
			return 0, err
		}
		y, err := severityCode(b)
		if err != nil {
			return 0, err
		}
		lo, hi = min(x, y), max(x, y)
	} else {
		x, err := severityCode(s)
		if err != nil {
			return 0, err
		}
		hi = x
	}
	var set uint8
	for i := lo; i <= hi; i++ {
		set |= 1 << uint(i)
	}
	return set, nil
}
