// Package acl holds address lists: the allow/deny lists every frontend
// checks before it reads a byte, and the trusted-proxy list that decides
// whose PROXY headers and X-Forwarded-* headers are believed.
//
// Lists are built once from config and only read afterwards, so they are
// safe for concurrent use. Lookups are a linear scan over prefixes: lists
// are short, and a scan of a few dozen prefixes per connection is cheaper
// than building a trie.
package acl

import (
	"fmt"
	"net"
	"net/netip"

	"wharf/conf"
)

// Set is a list of prefixes.
type Set []netip.Prefix

// Contains reports whether a is in one of the prefixes. IPv4-mapped IPv6
// addresses match IPv4 prefixes.
func (s Set) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Parse parses config strings (CIDRs or IPs); what names the list in
// errors, e.g. "frontend edge allow".
func Parse(what string, list []string) (Set, error) {
	ps, err := conf.ParsePrefixes(list)
	if err != nil {
		return nil, fmt.Errorf("acl: %s: %w", what, err)
	}
	return Set(ps), nil
}

// Access is a frontend's allow and deny lists.
type Access struct {
	// Allow, when not empty, lists the only addresses let in.
	Allow Set
	// Deny lists addresses refused; it wins over Allow.
	Deny Set
}

// Permits reports whether a client may connect: not denied, and allowed
// when an allow list is set.
func (ac *Access) Permits(a netip.Addr) bool {
	if ac.Deny.Contains(a) {
		return false
	}
	return len(ac.Allow) == 0 || ac.Allow.Contains(a)
}

// AddrOf returns the IP of a TCP or UDP address (zero Addr otherwise).
func AddrOf(a net.Addr) netip.Addr {
	return AddrPortOf(a).Addr()
}

// AddrPortOf returns the IP and port of a TCP or UDP address, unmapped.
func AddrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
