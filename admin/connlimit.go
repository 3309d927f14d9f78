package admin

import (
	"net"
	"sync"
	"time"

	"wharf/internal/logthrottle"
	"wharf/metrics"
)

// connLimit is the admin listener's socket with a bound on open
// connections (Server.maxConns). net/http serves every connection it
// accepts, so without it a local process opening connections and
// leaving them could take every file descriptor wharf has, and with them
// syslog ingest. A connection beyond the bound is closed at once, before
// a byte is read, counted in wharf_admin_rejected_total{reason="maxconn"}
// and logged, one line a second, as the syslog binds' maxconn refusals
// are (ingest's acceptLoop).
type connLimit struct {
	net.Listener
	s    *Server
	warn logthrottle.Throttle
}

// limitConns wraps ln in the bound; a server without one (maxConns 0)
// keeps ln as it is.
func (s *Server) limitConns(ln net.Listener) net.Listener {
	if s.maxConns <= 0 {
		return ln
	}
	return &connLimit{Listener: ln, s: s}
}

// Accept returns the next connection within the bound. It runs on
// http.Server's one accept goroutine, so the count it compares cannot
// rise meanwhile (closes only lower it).
func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if open := l.s.conns.Load(); open >= int64(l.s.maxConns) {
			l.s.refused.Inc()
			peer := c.RemoteAddr()
			c.Close()
			if ok, n := l.warn.Allow(time.Now(), time.Second); ok {
				l.s.log.Warn("admin: connection refused: the admin listener holds its maximum of connections (idle keep-alive connections close after a minute; a local process may be opening connections and leaving them)", "reason", "maxconn", "maxconn", l.s.maxConns, "peer", peer, "refused", n)
			}
			continue
		}
		l.s.conns.Add(1)
		return &limitedConn{Conn: c, open: l.s.conns}, nil
	}
}

// limitedConn gives its place back when closed (once: net/http and
// crypto/tls may both close it).
type limitedConn struct {
	net.Conn
	open *metrics.Gauge
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection as the wrapped one does:
// net/http shuts the write side before it closes a connection after an
// error answer (400, 431), so a client still sending gets the answer
// rather than a reset; the wrapper hid it.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
