package httpproxy

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"
)

// connPool keeps one server's idle keep-alive connections for the next
// requests. A connection belongs to one request from get until it is
// put back (after a response read to its end that neither side ended
// with a close) or closed.
//
// A connPool is safe for concurrent use. Idle connections are kept
// newest first, at most maxIdle of them; one idle longer than idleTimeout
// is closed when the pool next looks at it, and closeIdle closes them all.
type connPool struct {
	addr        string
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   []*poolConn // oldest first
	closed bool        // by closeIdle: put closes instead of keeping
}

// poolConn is one server connection with its read buffer, which lives
// as long as the connection (a response head is parsed in place in it).
type poolConn struct {
	c     net.Conn
	in    rbuf
	out   timedWriter // every write to the server: server_timeout (set by backendProxy.conn)
	since time.Time   // when it went idle
}

func newPoolConn(c net.Conn) *poolConn {
	return &poolConn{c: c, in: rbuf{rd: c, conn: c, b: make([]byte, serverReadBuf), max: maxRespHead}, out: timedWriter{conn: c}}
}

func (p *connPool) get() *poolConn { return p.getIdleWithin(0) }

// getIdleWithin is get for a request that cannot be sent again if the
// connection turns out to have been closed by the server: with maxAge > 0
// it takes only a connection idle for less than that, since servers close
// idle connections after some seconds (nil means dial a new one).
func (p *connPool) getIdleWithin(maxAge time.Duration) *poolConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	if maxAge > 0 && time.Since(p.idle[n-1].since) > maxAge {
		return nil
	}
	pc := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	if p.idleTimeout > 0 && time.Since(pc.since) > p.idleTimeout {
		// The newest is too old, so are all the others.
		for _, o := range p.idle {
			o.c.Close()
		}
		clear(p.idle)
		p.idle = p.idle[:0]
		pc.c.Close()
		return nil
	}
	return pc
}

// put keeps pc for the next request (or closes it when maxIdle are
// kept) and closes the idle connections past idleTimeout, oldest first,
// so a quiet server's connections do not stay open until the next get.
func (p *connPool) put(pc *poolConn) {
	now := time.Now()
	pc.since = now
	pc.in.r, pc.in.w = 0, 0
	var expired []*poolConn
	p.mu.Lock()
	if len(p.idle) < p.maxIdle && !p.closed {
		p.idle = append(p.idle, pc)
		pc = nil
	}
	n := 0
	for p.idleTimeout > 0 && n < len(p.idle) && now.Sub(p.idle[n].since) > p.idleTimeout {
		n++
	}
	if n > 0 {
		expired = slices.Clone(p.idle[:n])
		p.idle = slices.Delete(p.idle, 0, n)
	}
	p.mu.Unlock()
	if pc != nil {
		pc.c.Close()
	}
	for _, o := range expired {
		o.c.Close()
	}
}

// closeIdle closes every idle connection, and from then on each one put
// back: the pool's backend is no longer used (shutdown, or a reload that
// moved the frontend off it).
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}
