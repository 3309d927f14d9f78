package acl

import "net/netip"

// List is a compiled allow/deny pair for a syslog bind: an Access that a
// nil pointer stands for "everyone", so the hot path pays one nil check
// when no list is configured. Immutable after New: safe for concurrent use.
type List struct{ Access }

// New compiles the lists (IPs or CIDRs, as conf.ParsePrefix reads them).
// It returns nil, nil when both are empty.
func New(allow, deny []string) (*List, error) {
	if len(allow) == 0 && len(deny) == 0 {
		return nil, nil
	}
	a, err := Parse("allow", allow)
	if err != nil {
		return nil, err
	}
	d, err := Parse("deny", deny)
	if err != nil {
		return nil, err
	}
	return &List{Access{Allow: a, Deny: d}}, nil
}

// Permit reports whether addr may connect (deny first, then allow).
func (l *List) Permit(addr netip.Addr) bool {
	return l == nil || l.Permits(addr)
}
