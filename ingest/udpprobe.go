package ingest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"wharf/conf"
	"wharf/internal/netfamily"
)

// udpPortTaken returns an error when another socket already holds the
// UDP address addr. wharf's UDP sockets set SO_REUSEPORT (one socket per
// event loop), and Linux lets any socket of the same user that sets it
// too share the port, splitting the datagrams between them: a second
// wharf started by hand, or an old one still running, would silently
// take part of the traffic. So before binding, a socket without
// SO_REUSEPORT is bound to addr and closed at once (trialBind); it fails
// with EADDRINUSE whenever any socket holds the port. Other failures
// are left to the bind, which reports them. Port 0 is not probed.
func udpPortTaken(addr string) error {
	if err := trialBind("udp", addr); errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return nil
}

// Probe reports whether bind b could be opened now, by a trial bind: a
// socket already holding its address (another process, or one wharf does
// not close first) is an error naming the address and what to do, and so
// is any other reason the bind would fail (an address not on this host,
// a port below 1024 without the capability). A reload probes its new
// binds before it changes anything, so a bind that cannot open refuses
// the whole reload. Port 0 is not probed.
func Probe(b conf.Bind) error {
	network := "tcp"
	if b.Scheme == "udp" {
		network = "udp"
	}
	return trialBind(network, b.Addr)
}

// trialBind binds a socket to addr (network "udp" or "tcp", without
// SO_REUSEPORT) and closes it at once, returning why it could not bind.
// A wildcard [::] or a name is tried on both families, as the bind does
// (gnetUDPAddr; Go's net.Listen).
func trialBind(network, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return nil // the bind itself reports a bad address
	}
	network = netfamily.Network(network, addr)
	var c io.Closer
	if strings.HasPrefix(network, "udp") {
		c, err = net.ListenPacket(network, addr)
	} else {
		c, err = net.Listen(network, addr)
	}
	if err == nil {
		return c.Close()
	}
	proto := network[:3]
	if errors.Is(err, syscall.EADDRINUSE) {
		hint := ""
		if proto == "udp" {
			hint = ": wharf binds UDP with SO_REUSEPORT, so the kernel would split the datagrams between it and that socket (another wharf, rsyslog, syslog-ng?)"
		}
		return fmt.Errorf("%w: %s port %s is already bound by another socket%s; stop the other process or give this bind another port (find it with `ss -%slpn 'sport = :%s'`)", syscall.EADDRINUSE, proto, addr, hint, proto[:1], port)
	}
	return fmt.Errorf("%s %s cannot be bound: %w", proto, addr, err)
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
