// Package acl decides whether a client address may talk to a bind: the
// allow/deny CIDR lists every frontend mode checks before it reads a byte.
package acl

import (
	"net/netip"

	"wharf/conf"
)

// List is a compiled allow/deny pair. Deny is checked first; an empty
// allow list allows everything not denied. A nil *List permits all.
// Immutable after New: safe for concurrent use.
type List struct {
	allow, deny []netip.Prefix
}

// New compiles the lists (IPs or CIDRs, as conf.ParsePrefix reads them).
// It returns nil, nil when both are empty, so the check costs one nil test.
func New(allow, deny []string) (*List, error) {
	if len(allow) == 0 && len(deny) == 0 {
		return nil, nil
	}
	a, err := conf.ParsePrefixes(allow)
	if err != nil {
		return nil, err
	}
	d, err := conf.ParsePrefixes(deny)
	if err != nil {
		return nil, err
	}
	return &List{allow: a, deny: d}, nil
}

// Permit reports whether addr may connect. IPv4-mapped IPv6 addresses are
// matched as IPv4.
func (l *List) Permit(addr netip.Addr) bool {
	if l == nil {
		return true
	}
	addr = addr.Unmap()
	for _, p := range l.deny {
		if p.Contains(addr) {
			return false
		}
	}
	if len(l.allow) == 0 {
		return true
	}
	for _, p := range l.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
