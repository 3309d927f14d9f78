package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"sync"
	"time"
)

// connPool sends simple requests to one server over its own keep-alive
// connections, in the calling goroutine: write the request, read the
// response head, hand the body back. The connection returns to the pool
// when the body has been read to its end and closed.
//
// http.Transport runs two goroutines per server connection and hands
// each request to them and back through channels; for the small
// keep-alive requests a proxy mostly sees, those hand-offs (and the
// allocations that go with them) cost more than the proxying itself.
// Requests the pool does not take (see simple) still go through the
// server's http.Transport.
//
// A connPool is safe for concurrent use. Idle connections are kept
// newest first, at most maxIdle of them; one idle longer than idleTimeout
// is closed when the pool next looks at it, and closeIdle closes them all.
type connPool struct {
	addr          string
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	headerTimeout time.Duration // server_timeout: request written -> response head read
	maxIdle       int
	idleTimeout   time.Duration

	mu   sync.Mutex
	idle []*poolConn // oldest first
}

// poolConn is one server connection with its buffers. It belongs to one
// request from get until its body is closed, else to the pool.
type poolConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // when it went idle
}

// simple reports whether the pool can take a request: an idempotent
// method, no body, no protocol upgrade. Only idempotent requests can be
// sent again on a new connection when a kept-alive one turns out to be
// closed by the server.
func simple(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return (req.Body == nil || req.Body == http.NoBody) && req.Host != "" && req.Header["Upgrade"] == nil
}

func (p *connPool) get() *poolConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
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
	var expired []*poolConn
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
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

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// roundTrip sends req (which simple accepted) and returns the response;
// its body must be closed. A dial error is returned as the dialer's
// *net.OpError. A kept-alive connection that fails before the first
// response byte is dropped and the request sent again on another.
func (p *connPool) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for {
		pc := p.get()
		reused := pc != nil
		if pc == nil {
			c, err := p.dial(ctx, "tcp", p.addr)
			if err != nil {
				return nil, err
			}
			pc = &poolConn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}
		}
		resp, retry, err := p.send(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !(reused && retry) {
			return nil, err
		}
	}
}

// send writes req on pc and reads the response head. retry is true when
// nothing of a response was read (a kept-alive connection the server had
// closed).
func (p *connPool) send(ctx context.Context, pc *poolConn, req *http.Request) (resp *http.Response, retry bool, err error) {
	// A client that goes away ends the wait for the server: the
	// deadline in the past fails the pending read or write.
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(aLongTimeAgo) })
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if err := writeHead(pc.bw, req); err != nil {
		return nil, true, err
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, true, err
	}
	if p.headerTimeout > 0 {
		pc.c.SetReadDeadline(time.Now().Add(p.headerTimeout))
	}
	if _, err := pc.br.Peek(1); err != nil {
		var ne net.Error
		return nil, !(errors.As(err, &ne) && ne.Timeout()), err
	}
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, false, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational: pass it on (ReverseProxy forwards it to
		// the client), then read on.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, false, err
			}
		}
	}
	if p.headerTimeout > 0 {
		pc.c.SetReadDeadline(time.Time{})
	}
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	resp.Body = &poolBody{rc: resp.Body, p: p, pc: pc, stop: stop, keep: keep, eof: resp.Body == http.NoBody}
	return resp, false, nil
}

// writeHead writes the head of a request simple accepted, as
// http.Request.Write would (the same request line, Host, User-Agent and
// Connection: close rules), without its allocations and key sorting:
// header fields go out in map order. Names and values were checked by
// the server that parsed them, and rewrite adds only such values. Hosts
// that need Punycode or a zone removed and OPTIONS requests (which
// carry Content-Length: 0) go through Request.Write.
func writeHead(w *bufio.Writer, req *http.Request) error {
	if req.Method == http.MethodOptions || !plainHost(req.Host) {
		return req.Write(w)
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	ua := "Go-http-client/1.1" // Request.Write's default
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua)
		w.WriteString("\r\n")
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			_, err := w.WriteString("\r\n")
			if err != nil {
				return err
			}
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// plainHost: printable ASCII without a zone ('%'), so Request.Write
// would send it unchanged.
func plainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f || h[i] == '%' {
			return false
		}
	}
	return h != ""
}

// aLongTimeAgo is a deadline that has passed: setting it fails pending
// I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// poolBody is a response body from a pooled connection. Close puts the
// connection back when the body was read to its end (and neither side
// asked to close), else closes it. Like http.Transport's bodies, it is
// read by one goroutine; Close may come from another.
type poolBody struct {
	rc   io.ReadCloser
	p    *connPool
	stop func() bool
	keep bool

	mu  sync.Mutex
	pc  *poolConn // nil once closed
	eof bool
}

func (b *poolBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	}
	return n, err
}

func (b *poolBody) Close() error {
	b.mu.Lock()
	pc, eof := b.pc, b.eof
	b.pc = nil
	b.mu.Unlock()
	if pc == nil {
		return nil
	}
	// stop is false when the client went away and the deadline was
	// poisoned (or is about to be): the connection is not reusable.
	// The body itself needs no Close: unread, it would drain the rest.
	if !b.stop() || !eof || !b.keep {
		pc.c.Close()
		return nil
	}
	b.p.put(pc)
	return nil
}
