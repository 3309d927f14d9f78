package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"wharf/conf"
)

// udpPortTaken returns an error when another socket already holds the
// UDP address addr. wharf's UDP sockets set SO_REUSEPORT (one socket per
// event loop), and Linux lets any socket of the same user that sets it
// too share the port, splitting the datagrams between them: a second
// wharf started by hand, or an old one still running, would silently
// take part of the traffic. So before binding, a socket without
// SO_REUSEPORT is bound to addr and closed at once; it fails with
// EADDRINUSE whenever any socket holds the port. Port 0 is not probed.
func udpPortTaken(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return nil // the bind itself reports a bad address
	}
	network := "udp" // a name, or [::]: both families, as the bind (gnetUDPAddr)
	if ip, err := netip.ParseAddr(host); err == nil {
		switch {
		case ip.Unmap().Is4():
			network = "udp4"
		case !ip.IsUnspecified():
			network = "udp6"
		}
	}
	c, err := net.ListenPacket(network, addr)
	if err == nil {
		return c.Close()
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("udp port %s is already bound by another socket: wharf binds UDP with SO_REUSEPORT, so the kernel would split the datagrams between it and that socket (another wharf, rsyslog, syslog-ng?); stop the other process or give this bind another port (find it with `ss -ulpn 'sport = :%s'`)", addr, port)
	}
	return nil // not ours to judge (permission, no such address): the bind says
}

// Probe reports whether bind b could be opened now: a socket already
// holding its address (another process, or one wharf does not close
// first) is an error naming the address and what to do. A reload probes
// its new binds before it changes anything, so a bind that cannot open
// refuses the whole reload. Port 0 is not probed; an address the probe
// cannot judge (permission, no such interface) is left to the bind.
func Probe(b conf.Bind) error {
	if b.Scheme == "udp" {
		return udpPortTaken(b.Addr)
	}
	if b.Port == 0 {
		return nil
	}
	ln, err := net.Listen("tcp", b.Addr)
	if err == nil {
		return ln.Close()
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("tcp port %s is already in use by another socket: stop the other process or give this bind another port (find it with `ss -tlpn 'sport = :%d'`)", b.Addr, b.Port)
	}
	return nil
}

// gnetUDPAddr is the address gnet.Run binds for a udp:// bind. gnet makes
// a socket for "[::]" IPv6-only (it reads an IPv6 literal as udp6), so a
// udp://[::]:PORT bind got no IPv4 datagram, though config validation
// treats [::] as both families (as Go's net.Listen does for tcp:// binds)
// and refuses 0.0.0.0 beside it: the wildcard is passed without a host,
// which gnet binds dual-stack.
func gnetUDPAddr(b conf.Bind) string {
	if ip, err := netip.ParseAddr(b.Host); err == nil && ip.Is6() && ip.IsUnspecified() {
		return "udp://:" + strconv.Itoa(b.Port)
	}
	return "udp://" + b.Addr
}
