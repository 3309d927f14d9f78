package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"wharf/internal/acceptretry"
	"wharf/internal/logthrottle"
	"wharf/internal/netfamily"
)

// listenStream opens the TCP socket of a bind that runs its own accept
// loop instead of gnet's (tls:// and relp://, whose sessions need a
// goroutine each) and records its address and port.
func (l *Listener) listenStream() (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: time.Minute} // finds senders that vanished without a FIN
	ln, err := lc.Listen(context.Background(), netfamily.Network("tcp", l.bind.Addr), l.bind.Addr)
	if err != nil {
		return nil, fmt.Errorf("ingest: frontend %q: bind %s://%s: %w (is another process listening there? ports below 1024 need CAP_NET_BIND_SERVICE)", l.frontend, l.bind.Scheme, l.bind.Addr, err)
	}
	l.addr = ln.Addr().String()
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		l.port = uint16(a.Port)
	}
	return ln, nil
}

// acceptLoop admits connections on ln until it is closed. Each passes
// allow/deny, maxconn and maxconn_per_ip on the raw connection (before
// any handshake), each refusal closed and counted by reason; then serve
// takes it over with the settings in force. serve returns false when the
// bind is stopping: the connection is closed and the loop ends. A
// connection serve took holds a maxconn_per_ip slot and counts in
// l.conns until the session releases them.
func (l *Listener) acceptLoop(ln net.Listener, serve func(c net.Conn, peer netip.AddrPort, s *settings) bool) {
	var backoff acceptretry.Backoff
	var full logthrottle.Throttle // the "refused at a limit" warning
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(backoff.Failed(l.log, err))
			continue
		}
		backoff.OK()
		var peer netip.AddrPort
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			peer = a.AddrPort()
		}
		s := l.settings.Load()
		reason := ""
		switch {
		case !s.acl.Permit(peer.Addr()):
			reason = "acl"
		case s.maxConn > 0 && l.conns.Load() >= s.maxConn:
			reason = "maxconn"
		case !l.perIP.Acquire(peer.Addr(), s.perIP):
			reason = "maxconn_per_ip"
		}
		if reason != "" {
			l.reason("rejected", reason).Inc()
			c.Close()
			if reason != "acl" { // a refusal by policy is not news
				l.warnFull(&full, reason, peer, s)
			}
			continue
		}
		l.conns.Add(1) // before serve starts the session, which decrements it
		if !serve(c, peer, s) {
			l.conns.Add(-1)
			l.perIP.Release(peer.Addr())
			c.Close()
			return
		}
		l.connsTotal.Inc()
	}
}

// warnFull logs a connection refused at maxconn or maxconn_per_ip, one
// line a second: senders are being locked out, which the metric alone
// does not tell an operator reading the log. refused is how many the
// line stands for (of either reason).
func (l *Listener) warnFull(t *logthrottle.Throttle, reason string, peer netip.AddrPort, s *settings) {
	ok, n := t.Allow(time.Now(), time.Second)
	if !ok {
		return
	}
	if reason == "maxconn" {
		l.log.Warn("connection refused: the bind holds maxconn connections (raise maxconn; client_timeout and frame_timeout close idle and stalled ones)", "reason", reason, "maxconn", s.maxConn, "peer", peer, "refused", n)
		return
	}
	l.log.Warn("connection refused: its source holds maxconn_per_ip connections (raise maxconn_per_ip if that host is a relay or NAT)", "reason", reason, "maxconn_per_ip", s.perIP, "peer", peer, "refused", n)
}

// frameTimedOut counts a connection closed at frame_timeout (a sender
// that began a message and did not finish it: a slowloris, or a client
// whose framing wharf does not read as it writes, e.g. a length prefix
// larger than what it sends) and logs it with the peer, one line a
// second per bind (t); suppressed is how many closed since the last line
// without one. Connections closed at client_timeout are only counted:
// that is an idle sender, not a problem.
func (l *Listener) frameTimedOut(t *logthrottle.Throttle, peer netip.AddrPort, s *settings) {
	l.reason("closed", "frame_timeout").Inc()
	if ok, n := t.Allow(time.Now(), time.Second); ok {
		l.log.Warn("connection closed at frame_timeout", "peer", peer, "reason", fmt.Sprintf("no complete frame within frame_timeout %v", s.frame), "suppressed", n-1)
	}
}
