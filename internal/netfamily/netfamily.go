// Package netfamily picks the socket family a listening address asks
// for, so every wharf listener reads "0.0.0.0" the way the config check
// (conf's overlap rule) and HAProxy's bind lines do.
//
// Go's net.Listen("tcp", "0.0.0.0:514") opens an IPv6 socket that takes
// IPv4 too ([::]:514, dual-stack): a bind the operator wrote as IPv4
// also accepted IPv6 clients their IPv4 firewall rules did not cover,
// and it collided with a second bind on [::1]:514 that `wharf check`
// had accepted. With Network, an IPv4 address listens on IPv4 only, a
// specific IPv6 address on IPv6 only, and the IPv6 wildcard [::] (or a
// host name) as Go does by default: [::] on both families.
package netfamily

import (
	"net"
	"net/netip"
)

// Network returns proto ("tcp" or "udp") with the family addr's host
// asks for: proto+"4" for an IPv4 address (0.0.0.0 included), proto+"6"
// for a specific IPv6 address, proto itself for [::], a name, or an addr
// it cannot split (the listen call then reports the error).
func Network(proto, addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return proto
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return proto
	case ip.Unmap().Is4():
		return proto + "4"
	case !ip.IsUnspecified():
		return proto + "6"
	}
	return proto
}
