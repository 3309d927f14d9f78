package httpproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"wharf/acl"
	"wharf/proxy/internal/front"
	"wharf/proxy/proxyproto"
	"wharf/proxy/upstream"
)

// listener wraps a bind: it holds a maxconn token per open connection
// (taken before Accept, so excess clients wait in the kernel's queue),
// refuses clients by the allow/deny lists before reading anything,
// refuses PROXY senders that are not trusted, and tracks connections so
// Shutdown can close idle ones, wait for busy ones and finally close
// what is left.
type listener struct {
	net.Listener
	b *front.Bind // the socket and its accept loop's state
	f *Frontend
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		select {
		case l.f.sem <- struct{}{}:
		case <-l.b.Stopping():
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.f.sem
			return nil, err
		}
		l.f.m.accepted.Inc()
		peer := acl.AddrPortOf(c.RemoteAddr())
		if !l.f.access.Permits(peer.Addr()) {
			l.f.m.rejACL.Inc()
			reset(c)
			<-l.f.sem
			continue
		}
		if l.f.cfg.AcceptProxy && !l.f.trusted.Contains(peer.Addr()) {
			l.f.m.rejUntrusted.Inc()
			reset(c)
			<-l.f.sem
			continue
		}
		if !l.f.sources.Admit(peer.Addr()) {
			reset(c)
			<-l.f.sem
			continue
		}
		pc := &conn{Conn: c, f: l.f, remote: c.RemoteAddr(), peer: peer.Addr(), start: time.Now()}
		if !l.f.track(pc, true) {
			reset(c)
			l.f.sources.Leave(peer.Addr())
			<-l.f.sem
			return nil, net.ErrClosed
		}
		return pc, nil
	}
}

func (l *listener) Close() error {
	l.b.Stop()
	return l.Listener.Close()
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// conn is an accepted client connection. On binds with accept_proxy its
// first Read or RemoteAddr reads the PROXY header (within header_timeout);
// RemoteAddr then is the client the header names.
type conn struct {
	net.Conn
	f        *Frontend
	initOnce sync.Once
	initErr  error
	remote   net.Addr
	peer     netip.Addr // the connecting address, counted by maxconn_per_ip
	pending  []byte
	// unsent is an answer an event loop began and the goroutine code
	// finishes writing before it reads (evloop.go, handoffUnsent), and
	// closeAfter says the connection then ends.
	unsent     []byte
	closeAfter bool
	// served: an event loop answered requests on the connection before
	// it handed it over, so the next request is not its first (the
	// client_timeout applies, and a shutdown closes it while idle).
	served bool
	// failed is the server an event loop could not connect to for the
	// request it handed over (failedErr why): connect goes on from there.
	failed    *upstream.Server
	failedErr error
	closeOnce sync.Once
	// idle is set while serve waits for the next request on the
	// connection, so Shutdown can close it.
	idle atomic.Bool
	// h2stop, on an HTTP/2 connection, is closed (under f.mu) to make
	// it go away gracefully.
	h2stop chan struct{}
	// ev is set while an event loop serves the connection (evloop.go);
	// then Conn is closed already (gnet holds a duplicate of the socket).
	ev atomic.Pointer[evClient]
	// start is when the connection was accepted: what comes before its
	// first request (PROXY header, TLS handshake, request head or HTTP/2
	// preface) must be in within header_timeout of it (headerDeadline).
	start time.Time
}

func (c *conn) init() error {
	if !c.f.cfg.AcceptProxy {
		return nil
	}
	c.initOnce.Do(func() {
		if err := c.readProxyHeader(); err != nil {
			// A read error, so serve closes the connection silently
			// instead of answering 400 to a client that is not speaking
			// HTTP to it yet.
			c.initErr = &net.OpError{Op: "read", Net: "tcp", Source: c.Conn.LocalAddr(), Addr: c.Conn.RemoteAddr(), Err: err}
			if tc, ok := c.Conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		}
	})
	return c.initErr
}

// headerDeadline is when a new connection's first request head, and
// what comes before it, must be in: header_timeout from its start, not
// one header_timeout per step.
func (c *conn) headerDeadline() time.Time { return c.start.Add(c.f.cfg.HeaderTimeout.Duration) }

func (c *conn) readProxyHeader() error {
	// The deadline stays: header_timeout bounds the PROXY header, the TLS
	// handshake and the request head after it together.
	c.Conn.SetReadDeadline(c.headerDeadline())
	buf := make([]byte, 0, 256)
	for {
		h, n, err := proxyproto.Parse(buf)
		if err == nil {
			if !h.Local {
				c.remote = net.TCPAddrFromAddrPort(h.Source)
				if !c.f.access.Permits(h.Source.Addr()) {
					c.f.m.rejACL.Inc()
					return fmt.Errorf("proxy/http: frontend %s: client %s (from the PROXY header) is not allowed", c.f.name, h.Source.Addr())
				}
			}
			c.pending = buf[n:]
			return nil
		}
		if !errors.Is(err, proxyproto.ErrNeedMore) {
			c.f.m.rejProxyHeader.Inc()
			return err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		m, rerr := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if rerr != nil && m == 0 {
			if errors.Is(rerr, net.ErrClosed) {
				return rerr
			}
			c.f.m.rejProxyHeader.Inc()
			return fmt.Errorf("proxy/http: frontend %s: no PROXY header: %w", c.f.name, rerr)
		}
	}
}

func (c *conn) Read(b []byte) (int, error) {
	if err := c.init(); err != nil {
		return 0, err
	}
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *conn) RemoteAddr() net.Addr {
	c.init()
	return c.remote
}

func (c *conn) Close() error {
	if ev := c.ev.Load(); ev != nil {
		return ev.gc.Close() // OnClose releases c
	}
	err := c.Conn.Close()
	c.release()
	return err
}

// release gives back what the connection held: its maxconn and
// maxconn_per_ip slots and its place in the frontend's set. Once.
func (c *conn) release() {
	c.closeOnce.Do(func() {
		c.f.track(c, false)
		c.f.sources.Leave(c.peer)
		<-c.f.sem
	})
}
