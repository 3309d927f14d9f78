package httpproxy

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"wharf/acl"
	"wharf/proxy/accesslog"
	"wharf/proxy/proxyproto"
	"wharf/proxy/upstream"
)

// clientConn is one client connection and everything it reuses from
// request to request. It belongs to the connection's goroutine (serve);
// while a connection is upgraded, a second goroutine owns in and the
// server side's writes.
type clientConn struct {
	f       *Frontend
	c       net.Conn // the client: raw, or TLS over raw
	raw     *conn
	in      rbuf        // from the client
	out     wbuf        // to the client
	cw      timedWriter // the client's writer under out: client_timeout
	toSrv   wbuf        // request bodies to the server (w set per request)
	req     head
	resp    head
	base    int    // in.r where req was parsed: its spans are relative to it
	scan    int    // how far findHeadEnd got in an incomplete head
	bw      []byte // the request head for the server
	path    []byte // the decoded path, when the target has escapes
	upTok   []byte // the Upgrade value asked for
	ipText  []byte // the client's address as text
	client  netip.AddrPort
	ip      netip.Addr
	trusted bool
	tls     bool
	isHead  bool // the request is a HEAD
	linger  bool // an answer went out with Connection: close
	// rec is the access log record of the request being served, kept
	// while logging (the frontend has an access_log or is tapped).
	rec     accesslog.Request
	logging bool
	// heldBP and heldStatus: a chunked response not yet counted (see
	// relayResponse).
	heldBP     *backendProxy
	heldStatus int
}

var clientConns = sync.Pool{New: func() any {
	return &clientConn{
		in:    rbuf{b: make([]byte, minReadBuf)},
		out:   wbuf{b: make([]byte, 0, writeBufSize)},
		toSrv: wbuf{b: make([]byte, 0, writeBufSize)},
		bw:    make([]byte, 0, 1024),
		req:   head{fields: make([]field, 0, 32)},
		resp:  head{fields: make([]field, 0, 32)},
	}
}}

// serve runs one client connection: request heads are read in place from
// a pooled buffer, forwarded, and the responses relayed, until either
// side closes, a timeout passes or the frontend shuts down.
func (f *Frontend) serve(c net.Conn, raw *conn) {
	defer f.wg.Done()
	if tc, ok := c.(*tls.Conn); ok {
		// The handshake first, to see what ALPN chose (h2 only if
		// offered) and to count a failed one.
		h2, ok := f.handshakeH2(tc, raw)
		if !ok {
			c.Close()
			return
		}
		if h2 {
			f.serveH2(tc, raw)
			return
		}
	}
	cc := f.newClientConn(c, raw)
	defer cc.release()
	if len(raw.unsent) > 0 && !cc.writeUnsent() {
		return
	}
	// A connection an event loop served before it handed it over waits
	// for its next request as a kept-alive one does (client_timeout,
	// closed by a shutdown while idle), unless that request is here
	// already.
	first := !raw.served || len(raw.pending) > 0
	if !first {
		cc.setClient()
	}
	cc.serveRequests(first)
}

// writeUnsent writes the rest of the answer an event loop began
// (conn.unsent) and reports whether the connection goes on.
func (cc *clientConn) writeUnsent() bool {
	raw := cc.raw
	b, closeAfter := raw.unsent, raw.closeAfter
	raw.unsent, raw.closeAfter = nil, false
	if _, err := cc.cw.Write(b); err != nil {
		return false
	}
	cc.linger = closeAfter // the answer said Connection: close
	return !closeAfter
}

// newClientConn takes a clientConn from the pool for client connection c
// (raw under it). release puts it back and closes c.
func (f *Frontend) newClientConn(c net.Conn, raw *conn) *clientConn {
	cc := clientConns.Get().(*clientConn)
	cc.f, cc.c, cc.raw = f, c, raw
	cc.in.rd, cc.in.conn, cc.in.r, cc.in.w = c, c, 0, 0
	cc.in.max = max(int(f.cfg.MaxHeaderBytes)+4, minReadBuf)
	cc.in.progress = 0
	cc.in.dl = time.Time{}
	cc.cw = timedWriter{conn: c, timeout: f.cfg.ClientTimeout.Duration}
	cc.out.w, cc.out.b = &cc.cw, cc.out.b[:0]
	_, cc.tls = c.(*tls.Conn)
	cc.ip = netip.Addr{}
	cc.linger, cc.isHead = false, false
	return cc
}

// release closes the client connection (gracefully after an answer
// that said Connection: close) and puts cc back in the pool.
func (cc *clientConn) release() {
	if cc.linger {
		cc.lingerClose()
	}
	cc.c.Close()
	cc.f, cc.c, cc.raw, cc.in.rd, cc.in.conn, cc.out.w, cc.toSrv.w, cc.cw.conn = nil, nil, nil, nil, nil, nil, nil, nil
	if len(cc.in.b) > 4*minReadBuf {
		cc.in.b = make([]byte, minReadBuf) // a big head's buffer is not kept
	}
	clientConns.Put(cc)
}

// serveRequests serves requests on cc until the connection is done
// (first: the next request is the connection's first).
func (cc *clientConn) serveRequests(first bool) {
	f := cc.f
	for ; ; first = false {
		if !cc.readRequest(first) {
			return
		}
		ok := cc.handle()
		if cc.logging {
			f.alog.HTTP(&cc.rec)
		}
		if !ok || f.shutting.Load() {
			return
		}
	}
}

// readRequest waits for the next request head and parses it. The wait
// for its first byte is bounded by client_timeout (header_timeout on a
// new connection), the rest of the head by header_timeout. It answers
// malformed heads itself and returns false when the connection is done.
func (cc *clientConn) readRequest(first bool) bool {
	f, in := cc.f, &cc.in
	in.progress = 0
	cc.isHead = false
	in.consume(skipEmptyLines(in.buffered()))
	cc.scan = 0
	if len(in.buffered()) == 0 {
		switch {
		case first && !cc.raw.served:
			// A new connection: header_timeout from its start, so a TLS
			// handshake (or PROXY header) does not get one of its own.
			in.setDeadline(cc.raw.headerDeadline(), 0)
		case first:
			in.setDeadline(time.Now().Add(f.cfg.HeaderTimeout.Duration), 0)
		default:
			// The idle timeout may end up to 1/16 early: the deadline is
			// moved only when that much older than wanted.
			wait := f.cfg.ClientTimeout.Duration
			in.setDeadline(time.Now().Add(wait), wait/16)
		}
		// A new connection is not idle: one accepted just before its
		// listener was closed or handed to another frontend (a reload)
		// gets its first request answered (with Connection: close).
		if !first {
			cc.raw.idle.Store(true)
			if f.shutting.Load() {
				return false
			}
		}
		err := in.fill()
		cc.raw.idle.Store(false)
		if err != nil {
			return false // closed, timed out, PROXY header refused, TLS failed
		}
		if first {
			cc.setClient()
		}
		in.consume(skipEmptyLines(in.buffered()))
	}
	// A new connection's head must be whole within header_timeout of
	// its start (the deadline set above), not of its first byte.
	deadlineSet := first && !in.dl.IsZero()
	for {
		b := in.buffered()
		if n := skipEmptyLines(b); n > 0 { // CRLFs split across reads
			in.consume(n)
			cc.scan = max(cc.scan-n, 0)
			continue
		}
		if end := findHeadEnd(b, cc.scan); end >= 0 {
			if end > int(f.cfg.MaxHeaderBytes) {
				cc.reject(431, "request header too large")
				return false
			}
			cc.base = in.r
			if err := parseRequest(b[:end], &cc.req); err != nil {
				switch err {
				case errTooLarge:
					cc.reject(431, "too many header fields")
				case errVersion:
					cc.reject(505, "only HTTP/1.x is served here")
				default:
					cc.reject(400, err.Error())
				}
				return false
			}
			return true
		}
		if bareLF(b, cc.scan) {
			cc.reject(400, errBareLF.Error())
			return false
		}
		cc.scan = len(b)
		if len(b) >= int(f.cfg.MaxHeaderBytes) {
			cc.reject(431, "request header too large")
			return false
		}
		if !deadlineSet {
			in.setDeadline(time.Now().Add(f.cfg.HeaderTimeout.Duration), 0)
			deadlineSet = true
		}
		if err := in.fill(); err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				cc.reject(431, "request header too large")
			case errors.Is(err, os.ErrDeadlineExceeded):
				f.m.rejHeaderTimeout.Inc()
			}
			return false
		}
	}
}

// setClient learns the client's address once (after the PROXY header,
// if any, was read) and whether it is a trusted proxy.
func (cc *clientConn) setClient() {
	cc.client = acl.AddrPortOf(cc.c.RemoteAddr())
	cc.ip = cc.client.Addr().Unmap()
	cc.trusted = cc.f.trusted.Contains(cc.ip)
	cc.ipText = cc.ipText[:0]
	if cc.ip.IsValid() {
		cc.ipText = cc.ip.AppendTo(cc.ipText)
	}
}

// reqBytes is the request head's bytes (spans of cc.req index it) until
// the client buffer is filled again.
func (cc *clientConn) reqBytes() []byte { return cc.in.b[cc.base:] }

// hasBody: the request has a body to pass on.
func (h *head) hasBody() bool { return h.chunked || h.contentLength > 0 }

// handle routes and forwards one parsed request and relays its response.
// It returns whether the client connection can take another request.
func (cc *clientConn) handle() bool {
	f, req := cc.f, &cc.req
	b := cc.reqBytes()
	// The head is consumed; its bytes stay in place (spans index them)
	// until the buffer is next filled, which only a body does, after
	// the head was passed on. A replayed request is bodiless.
	cc.in.consume(req.n)
	keep := !req.connClose && (req.minor >= 1 || req.connKeepAlive)
	method := req.method.of(b)
	cc.isHead = string(method) == "HEAD"
	if cc.logging = f.alog.On(); cc.logging {
		proto := "HTTP/1.1"
		if req.minor == 0 {
			proto = "HTTP/1.0"
		}
		cc.rec.Begin(time.Now(), cc.client, method, req.target.of(b), proto)
	}
	if string(method) == "CONNECT" {
		cc.reject(405, "CONNECT is not supported by this proxy")
		return false
	}
	host, target := req.host.of(b), req.target.of(b)
	path := target
	absPath := true // path starts with '/' as it is
	switch {
	case target[0] == '/':
	case len(target) == 1 && target[0] == '*' && string(method) == "OPTIONS":
	default:
		auth, rest, ok := absoluteForm(target)
		if !ok {
			cc.reject(400, errBadTarget.Error())
			return false
		}
		if req.hosts > 0 && !sameAuthority(target, auth, host) {
			// Routing by one name while the server sees another is a
			// cache-poisoning and ACL-bypass tool; HAProxy refuses too.
			cc.reject(400, errTargetHost.Error())
			return false
		}
		host, path = auth, rest
		absPath = len(rest) > 0 && rest[0] == '/'
	}
	match := path
	if i := indexByte(match, '?'); i >= 0 {
		match = match[:i]
	}
	if indexByte(match, '%') >= 0 {
		var ok bool
		if cc.path, ok = unescapePath(cc.path[:0], match); !ok {
			cc.reject(400, "invalid escape in the request path")
			return false
		}
		match = cc.path
	}
	if !absPath {
		match = slash // http://host?q
	}
	if f.cfg.RedirectHTTPS {
		return cc.redirectHTTPS(host, path, keep && !req.hasBody())
	}
	bp := f.pick(host, match)
	if bp == nil {
		f.noRoute[5].Inc()
		f.m.errNoServer.Inc()
		return cc.fail(503, "no backend for this host and path", keep && !req.hasBody())
	}
	return cc.forward(bp, host, path, match, absPath, keep)
}

// absoluteForm splits an absolute-form target (http://host/path) into
// its authority and the rest; RFC 9112 3.2.2: the authority replaces
// Host.
func absoluteForm(t []byte) (auth, rest []byte, ok bool) {
	switch {
	case len(t) > 7 && eqFold(t[:7], "http://"):
		t = t[7:]
	case len(t) > 8 && eqFold(t[:8], "https://"):
		t = t[8:]
	default:
		return nil, nil, false
	}
	i := 0
	for i < len(t) && t[i] != '/' && t[i] != '?' {
		if !hostChar[t[i]] || t[i] == '@' {
			return nil, nil, false
		}
		i++
	}
	if i == 0 {
		return nil, nil, false
	}
	return t[:i], t[i:], true
}

// sameAuthority reports whether the authority of an absolute-form target
// names the same host and port as the Host field: equal ignoring case, or
// equal once the scheme's default port (":80", ":443") is dropped from
// either.
func sameAuthority(target, auth, host []byte) bool {
	if eqFoldBytes(auth, host) {
		return true
	}
	port := ":80"
	if len(target) > 5 && eqFold(target[:5], "https") {
		port = ":443"
	}
	trim := func(b []byte) []byte {
		if len(b) > len(port) && string(b[len(b)-len(port):]) == port {
			return b[:len(b)-len(port)]
		}
		return b
	}
	return eqFoldBytes(trim(auth), trim(host))
}

var slash = []byte("/")

// bareLF reports an LF without its CR in b[from:] (an incomplete head):
// such a head would never end, so it is refused at once.
func bareLF(b []byte, from int) bool {
	for i := from; i < len(b); i++ {
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// unescapePath decodes %XX escapes for route matching, as net/url does
// for URL.Path.
func unescapePath(dst, p []byte) ([]byte, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			dst = append(dst, p[i])
			continue
		}
		if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
			return dst, false
		}
		dst = append(dst, byte(unhex(p[i+1])<<4|unhex(p[i+2])))
		i += 2
	}
	return dst, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// pickKey says how b picks a server for the request: for a "hash"
// backend keyed on the URI or a header, by the hash of the request's
// path (match: unescaped, without the query) or of that header's first
// value (round robin when the request has none, as HAProxy does);
// otherwise by the client address. It allocates nothing.
func (cc *clientConn) pickKey(b *upstream.Backend, match []byte) upstream.Key {
	on, name, ok := b.HashOn()
	switch {
	case !ok || on == upstream.HashSource:
		return upstream.ClientKey(cc.sourceIP())
	case on == upstream.HashURI:
		return upstream.HashKey(upstream.HashBytes(match))
	}
	rb := cc.reqBytes()
	for _, f := range cc.req.fields {
		if eqFold(f.name.of(rb), name) {
			return upstream.HashKey(upstream.HashBytes(f.value.of(rb)))
		}
	}
	return upstream.RoundRobinKey()
}

// sourceIP is the client address that balance = "source" and hash_key =
// "source" hash: from a trusted proxy, the last address of its last
// X-Forwarded-For field (the one that proxy added: earlier ones are the
// client's to write), else the connecting address (or the PROXY
// header's). It allocates nothing.
func (cc *clientConn) sourceIP() netip.Addr {
	if !cc.trusted {
		return cc.ip
	}
	rb := cc.reqBytes()
	var xff []byte
	for _, f := range cc.req.fields {
		if eqFold(f.name.of(rb), "x-forwarded-for") {
			xff = f.value.of(rb)
		}
	}
	if xff == nil {
		return cc.ip
	}
	if i := lastByte(xff, ','); i >= 0 {
		xff = xff[i+1:]
	}
	v := trimOWS(xff)
	if len(v) == 0 || indexByte(v, '%') >= 0 {
		return cc.ip // no address, or an IPv6 zone (which netip would keep)
	}
	// Without a zone ParseAddr keeps nothing of its argument, so the
	// request's bytes are lent to it: string(v) allocated per request.
	ip, err := netip.ParseAddr(unsafe.String(&v[0], len(v)))
	if err != nil {
		return cc.ip
	}
	return ip.Unmap()
}

// forward sends the request to a server of bp (connect) and relays the
// response.
func (cc *clientConn) forward(bp *backendProxy, host, path, match []byte, absPath, keep bool) bool {
	s, pc, reused, msg := cc.connect(bp, match)
	if s == nil {
		return cc.fail(503, msg, keep && !cc.req.hasBody())
	}
	cc.buildHead(bp, s, host, path, absPath)
	ok := cc.exchange(bp, s, pc, reused, keep)
	s.Release()
	return ok
}

// connect picks a server of bp for the request in cc and gets a
// connection to it: a pooled one or a new one, the next server when a
// connect fails (up to retries, each failure counted against its
// server). When every server that is up is at its maxconn, the request
// first waits in the backend's queue (upstream.Acquire: first come first
// served, up to queue_timeout; at most the frontend's maxconn wait), as
// HAProxy queues. On success the caller sends on pc and then calls
// s.Release. Otherwise s is nil and msg is the 503 answer to give,
// already counted and logged. HTTP/1.1 requests and HTTP/2 streams both
// use it.
func (cc *clientConn) connect(bp *backendProxy, match []byte) (s *upstream.Server, pc *poolConn, reused bool, msg string) {
	retries := bp.b.Config().Retries
	var triedBuf [4]*upstream.Server
	tried := triedBuf[:0]
	var lastErr error
	var last *upstream.Server
	attempt := 0
	if r := cc.raw; r != nil && r.failed != nil {
		// An event loop tried a server for this request already.
		last, lastErr = r.failed, r.failedErr
		r.failed, r.failedErr = nil, nil
		tried = append(tried, last)
		attempt = 1
	}
	key := cc.pickKey(bp.b, match)
	for ; attempt <= retries; attempt++ {
		var s *upstream.Server
		if attempt == 0 {
			var err error
			if s, err = bp.b.Acquire(cc.f.stopCtx, key, int(cc.f.cfg.MaxConn)); err != nil {
				return nil, nil, false, cc.refused(bp, err)
			}
		} else if s = bp.b.PickBy(key, tried); s == nil {
			break
		}
		tried = append(tried, s)
		pc, reused, err := bp.conn(s, cc)
		if err != nil {
			s.Release()
			s.ConnectFailed(err)
			lastErr, last = err, s
			continue
		}
		s.ConnectOK()
		if cc.logging {
			cc.rec.Backend, cc.rec.Server, cc.rec.Connect = bp.b.Name, s.Name, time.Since(cc.rec.Start)
		}
		return s, pc, reused, ""
	}
	cc.rec.Backend = bp.b.Name
	cc.count(bp, 503)
	if lastErr == nil {
		bp.b.CountNoServer()
		cc.f.m.errNoServer.Inc()
		return nil, nil, false, "no server is available in backend " + bp.b.Name
	}
	cc.f.m.errConnect.Inc()
	cc.f.log.Warn("cannot connect to any server", "backend", bp.b.Name, "err", "server "+last.Name+": "+lastErr.Error())
	return nil, nil, false, "cannot connect to a server of backend " + bp.b.Name
}

// refused counts a request Acquire found no server for (err) and returns
// the message of its 503: none up, the queue full, queue_timeout passed
// in it, or a forced shutdown while it waited.
func (cc *clientConn) refused(bp *backendProxy, err error) string {
	m, name := &cc.f.m, bp.b.Name
	cc.rec.Backend = name
	cc.count(bp, 503)
	switch {
	case errors.Is(err, upstream.ErrQueueTimeout):
		m.errQueueTimeout.Inc()
		return "every server of backend " + name + " stayed at its maxconn for queue_timeout"
	case errors.Is(err, upstream.ErrQueueFull):
		m.errQueueFull.Inc()
		return "every server of backend " + name + " is at its maxconn and the queue is full"
	case errors.Is(err, upstream.ErrNoServer):
		m.errNoServer.Inc()
		return "no server is available in backend " + name
	}
	return "the proxy is shutting down" // stopCtx ended
}

// buildHead writes the request head for server s into cc.bw: HTTP/1.1,
// Host first, hop-by-hop fields and the fields Connection names removed,
// framing normalized (one Content-Length, or Transfer-Encoding: chunked),
// and the forwarding fields set: the client's X-Forwarded-* and
// Forwarded are dropped unless it is a trusted proxy, whose values are
// appended to.
func (cc *clientConn) buildHead(bp *backendProxy, s *upstream.Server, host, path []byte, absPath bool) {
	req, b := &cc.req, cc.reqBytes()
	w := cc.bw[:0]
	w = append(w, req.method.of(b)...)
	w = append(w, ' ')
	if !absPath {
		w = append(w, '/')
	}
	w = append(w, path...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	if len(host) > 0 {
		w = append(w, host...)
	} else {
		w = append(w, s.Addr...) // an HTTP/1.0 request without Host
	}
	w = append(w, "\r\n"...)
	w, hasXFP, hasXFH := cc.appendFields(w, b)
	w = cc.appendFraming(w, b, s)
	w = cc.appendForwarding(w, b, host, hasXFP, hasXFH)
	cc.bw = append(w, "\r\n"...)
}

// appendFields appends the client's header fields that are passed on:
// not hop-by-hop nor named by Connection (unless a trusted proxy's
// forwarding fields), not Host, Content-Length or the forwarding fields
// the proxy writes itself. Forwarding fields (Forwarded, X-Real-IP,
// every X-Forwarded-*) pass only from a trusted proxy: a server that
// builds redirects from X-Forwarded-Port or -Prefix must not see a
// client's. It reports whether a trusted proxy sent X-Forwarded-Proto
// and -Host.
func (cc *clientConn) appendFields(w, b []byte) (_ []byte, hasXFP, hasXFH bool) {
	req := &cc.req
	for _, fl := range req.fields {
		name := fl.name.of(b)
		// A Connection header may name a trusted proxy's forwarding
		// fields; they are kept all the same.
		fwd := forwarding(name)
		if hopByHop(name) || (fwd && !cc.trusted) || (!fwd && req.connNames(b, name)) {
			continue
		}
		if len(cc.f.reqSet) > 0 && cc.f.reqSet.has(name) {
			continue
		}
		switch len(name) {
		case 4:
			if eqFold(name, "host") {
				continue
			}
		case 9:
			if eqFold(name, "forwarded") {
				continue
			}
		case 14:
			if eqFold(name, "content-length") {
				continue
			}
		case 15:
			if eqFold(name, "x-forwarded-for") {
				continue
			}
		case 16:
			hasXFH = hasXFH || eqFold(name, "x-forwarded-host") // trusted: see above
		case 17:
			hasXFP = hasXFP || eqFold(name, "x-forwarded-proto")
		}
		w = append(w, name...)
		w = append(w, ": "...)
		w = append(w, fl.value.of(b)...)
		w = append(w, "\r\n"...)
	}
	return cc.f.reqSet.appendSet(w), hasXFP, hasXFH
}

// appendFraming appends the proxy's own Connection/Upgrade and the body
// framing (Transfer-Encoding: chunked or Content-Length), and remembers
// the upgrade token asked for.
func (cc *clientConn) appendFraming(w, b []byte, s *upstream.Server) []byte {
	req := &cc.req
	if req.connUpgrade && !req.upgrade.empty() {
		w = append(w, "Connection: Upgrade\r\nUpgrade: "...)
		w = append(w, req.upgrade.of(b)...)
		w = append(w, "\r\n"...)
		cc.upTok = append(cc.upTok[:0], req.upgrade.of(b)...)
	} else {
		cc.upTok = cc.upTok[:0]
		if s.SendProxy != 0 {
			// The PROXY header names one client: no reuse.
			w = append(w, "Connection: close\r\n"...)
		}
	}
	if req.chunked {
		w = append(w, "Transfer-Encoding: chunked\r\n"...)
	} else if req.contentLength != contentLenNone {
		w = append(w, "Content-Length: "...)
		w = appendInt(w, req.contentLength)
		w = append(w, "\r\n"...)
	}
	return w
}

// appendForwarding appends X-Forwarded-For, Forwarded and, unless a
// trusted proxy sent them, X-Forwarded-Proto and X-Forwarded-Host.
func (cc *clientConn) appendForwarding(w, b, host []byte, hasXFP, hasXFH bool) []byte {
	proto := "http"
	if cc.tls {
		proto = "https"
	}
	if cc.ip.IsValid() {
		w = append(w, "X-Forwarded-For: "...)
		w = cc.appendTrusted(w, b, "x-forwarded-for")
		w = append(w, cc.ipText...)
		w = append(w, "\r\n"...)
	}
	w = append(w, "Forwarded: "...)
	w = cc.appendTrusted(w, b, "forwarded")
	w = append(w, "for="...)
	switch {
	case !cc.ip.IsValid():
		w = append(w, "unknown"...)
	case cc.ip.Is6():
		w = append(w, `"[`...)
		w = append(w, cc.ipText...)
		w = append(w, `]"`...)
	default:
		w = append(w, cc.ipText...)
	}
	w = append(w, ";proto="...)
	w = append(w, proto...)
	if len(host) > 0 {
		w = append(w, ";host="...)
		w = appendQuotedIfNeeded(w, host)
	}
	w = append(w, "\r\n"...)
	if !hasXFP {
		w = append(w, "X-Forwarded-Proto: "...)
		w = append(w, proto...)
		w = append(w, "\r\n"...)
	}
	if !hasXFH && len(host) > 0 {
		w = append(w, "X-Forwarded-Host: "...)
		w = append(w, host...)
		w = append(w, "\r\n"...)
	}
	return w
}

// forwarding reports the fields that carry what proxies learnt about the
// client (Forwarded, X-Forwarded-*, X-Real-IP). A Connection option from
// a trusted proxy never removes them: a client behind it could otherwise
// have the proxy's X-Forwarded-Proto or X-Forwarded-Host dropped (and
// replaced by this hop's view) just by naming it in a Connection header
// the proxy passes on.
func forwarding(name []byte) bool {
	const xf = "x-forwarded-"
	return eqFold(name, "forwarded") || eqFold(name, "x-real-ip") ||
		(len(name) > len(xf) && eqFold(name[:len(xf)], xf))
}

// appendTrusted appends a trusted client's values of a list field, each
// followed by ", ".
func (cc *clientConn) appendTrusted(w, b []byte, lname string) []byte {
	if !cc.trusted {
		return w
	}
	for _, fl := range cc.req.fields {
		if eqFold(fl.name.of(b), lname) {
			w = append(w, fl.value.of(b)...)
			w = append(w, ", "...)
		}
	}
	return w
}

// appendQuotedIfNeeded appends an RFC 7239 value, quoted when it is not
// a token (a host with a port has a colon).
func appendQuotedIfNeeded(w, s []byte) []byte {
	token := true
	for _, c := range s {
		if !tchar[c] {
			token = false
			break
		}
	}
	if token {
		return append(w, s...)
	}
	w = append(w, '"')
	for _, c := range s {
		if c == '\\' || c == '"' {
			w = append(w, '\\')
		}
		w = append(w, c)
	}
	return append(w, '"')
}

// Why an exchange with a server failed, for the answer and the metrics.
var (
	errStale      = errors.New("kept-alive server connection closed before answering")
	errClientGone = errors.New("client went away")
	errTimeout    = errors.New("server did not answer within server_timeout")
	errUpgrade    = errors.New("server switched protocols not as asked")
)

// exchange sends the request on pc, relays the response and returns
// whether the client connection can go on. A kept-alive connection
// that the server had closed is replaced by a new one and a replayable
// request (idempotent, no body) sent again.
func (cc *clientConn) exchange(bp *backendProxy, s *upstream.Server, pc *poolConn, reused, keep bool) bool {
	req := &cc.req
	replayable := !req.hasBody() && idempotent(req.method.of(cc.reqBytes()))
	for {
		ok, err := cc.roundTrip(bp, s, pc, reused, replayable, keep)
		if err == nil {
			return ok
		}
		pc.c.Close()
		if err == errStale && reused && replayable {
			var derr error
			if pc, derr = bp.dial(s, cc); derr != nil {
				s.ConnectFailed(derr)
				cc.f.m.errConnect.Inc()
				cc.count(bp, 503)
				return cc.fail(503, "cannot connect to a server of backend "+bp.b.Name, keep)
			}
			reused = false
			continue
		}
		return cc.answerError(bp, err, ok)
	}
}

// answerError answers a request whose exchange failed before any of the
// response reached the client: 504 for a server that did not answer in
// time, 502 for anything else, nothing for a client that left. keep is
// false when the request body was not (entirely) read, so the client
// connection closes after.
func (cc *clientConn) answerError(bp *backendProxy, err error, keep bool) bool {
	f := cc.f
	switch {
	case err == errClientGone:
		bp.count(499) // no answer (the access log's status -1): the client left
		return false
	case err == errTimeout:
		f.m.errTimeout.Inc()
		cc.count(bp, 504)
		return cc.fail(504, "the server of backend "+bp.b.Name+" did not answer in time", keep)
	default:
		f.m.errBad.Inc()
		cc.count(bp, 502)
		f.log.Debug("bad gateway", "backend", bp.b.Name, "err", err)
		return cc.fail(502, "the server of backend "+bp.b.Name+" failed to answer", keep)
	}
}

// roundTrip is one attempt: request out, response back. A nil error
// means the response was relayed (ok: the client connection goes on);
// otherwise nothing reached the client yet, ok says whether the client
// connection could still go on, and the caller closes pc.
func (cc *clientConn) roundTrip(bp *backendProxy, s *upstream.Server, pc *poolConn, reused, replayable, keep bool) (bool, error) {
	t := trip{cc: cc, bp: bp, s: s, pc: pc, keep: keep}
	if err := t.sendHead(); err != nil {
		return false, err
	}
	if !t.expect {
		if err := t.sendBody(); err != nil {
			return cc.bodyFailed(err)
		}
	}
	if ok, err := t.readResponseHead(reused, replayable); err != nil {
		return ok, err
	}
	return t.relayResponse()
}

// trip is the state of one roundTrip, shared by its steps: request head
// out, body out (at once, or when the server asks with 100 Continue),
// response head in, response relayed.
type trip struct {
	cc       *clientConn
	bp       *backendProxy
	s        *upstream.Server
	pc       *poolConn
	keep     bool  // the client connection can go on after this exchange
	expect   bool  // the body waits for 100 Continue
	bodyLeft int64 // Content-Length body bytes not yet sent
	bodySent bool  // the whole request body went out (or there is none)
	// serverStopped: the server stopped reading the body and may have
	// answered already (413, 401...); then that answer is passed on, and
	// both connections close after it.
	serverStopped bool
	// Remembered from the request head, whose spans are not needed after
	// it went out.
	isHead      bool
	clientMinor int
}

// sendHead writes the request head, and as much of a Content-Length body
// as is here and fits, in one write. A failed write is errStale.
func (t *trip) sendHead() error {
	cc, req, in := t.cc, &t.cc.req, &t.cc.in
	head := cc.bw
	t.bodyLeft = max(req.contentLength, 0)
	t.expect = req.expect100 && req.hasBody() && req.minor >= 1
	bodyHere := int64(0)
	if !req.chunked && !t.expect && t.bodyLeft > 0 {
		bodyHere = min(int64(len(in.buffered())), t.bodyLeft, int64(writeBufSize))
		head = append(head, in.buffered()[:bodyHere]...)
		cc.bw = head
	}
	if _, err := t.pc.out.Write(head); err != nil {
		return errStale
	}
	if bodyHere > 0 {
		in.consume(int(bodyHere))
		t.bodyLeft -= bodyHere
		t.s.BytesToServer.Add(uint64(bodyHere))
	}
	t.bodySent = !req.hasBody() || (!req.chunked && t.bodyLeft == 0)
	t.isHead = cc.isHead
	t.clientMinor = req.minor
	return nil
}

// sendBody copies the rest of the request body to the server, once. A
// server that stops reading it is not an error (serverStopped); a client
// that fails to send it is.
func (t *trip) sendBody() error {
	if t.bodySent {
		return nil
	}
	t.bodySent = true
	cc, in, s := t.cc, &t.cc.in, t.s
	cc.toSrv.w, cc.toSrv.b, cc.toSrv.werr = &t.pc.out, cc.toSrv.b[:0], nil
	in.progress = cc.f.cfg.ClientTimeout.Duration
	defer func() { in.progress = 0 }()
	var err error
	if cc.req.chunked {
		var n int64
		n, err = copyChunked(&cc.toSrv, in, false, int(cc.f.cfg.MaxHeaderBytes))
		s.BytesToServer.Add(uint64(n))
	} else {
		err = copyN(&cc.toSrv, in, t.bodyLeft)
		s.BytesToServer.Add(uint64(t.bodyLeft))
	}
	if err == nil {
		err = cc.toSrv.flush()
	}
	if err != nil && cc.toSrv.werr != nil {
		t.serverStopped, t.keep = true, false
		return nil
	}
	return err
}

// readResponseHead waits for the final response head (into cc.resp),
// passing 1xx answers on to an HTTP/1.1 client. It waits in slices of a
// second: between them the client is checked (one that left cancels the
// request), and a server silent on Expect: 100-continue gets the body
// anyway. A non-nil error ends the round trip with (ok, err).
func (t *trip) readResponseHead(reused, replayable bool) (ok bool, err error) {
	cc, resp := t.cc, &t.cc.resp
	timeout := t.bp.b.Config().ServerTimeout.Duration
	start := time.Now()
	srv := &t.pc.in
	srv.progress = 0
	scan := 0
	got := false // any byte of a response
	slice := time.Second
	if timeout > 0 {
		slice = min(slice, timeout)
	}
	// Usually a deadline a kept-alive connection has from a request
	// moments ago does: it may wake the wait early, which then goes on.
	srv.setDeadline(start.Add(slice), slice/8)
	for {
		b := srv.buffered()
		end := findHeadEnd(b, scan)
		if end < 0 {
			if bareLF(b, scan) {
				return t.bodySent && t.keep, errBadResponse
			}
			scan = len(b)
			err := srv.fill()
			if err == nil {
				got = true
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ok, err := t.sliceEnded(start, timeout); err != nil {
					return ok, err
				}
				continue
			}
			if !got && reused && replayable {
				return false, errStale
			}
			if t.serverStopped {
				err = cc.toSrv.werr
			}
			return t.bodySent && t.keep, err
		}
		if err := parseResponse(b[:end], resp); err != nil {
			return t.bodySent && t.keep, err
		}
		if resp.status >= 200 || resp.status == 101 {
			return false, nil
		}
		// 1xx: pass it on to an HTTP/1.1 client and read on.
		if t.clientMinor >= 1 {
			cc.writeRespHead(b, resp, false, true, false)
			if err := cc.out.flush(); err != nil {
				return false, errClientGone
			}
		}
		srv.consume(end)
		scan = 0
		if resp.status == 100 && !t.bodySent {
			if err := t.sendBody(); err != nil {
				return cc.bodyFailed(err)
			}
		}
	}
}

// sliceEnded runs between the slices of readResponseHead's wait (start:
// when it began): it gives up at server_timeout, cancels for a client
// that left, sends a body held for Expect: 100-continue to a server
// silent for a second (RFC 9110 10.1.1), and sets the next deadline. A
// non-nil error ends the round trip with (ok, err).
func (t *trip) sliceEnded(start time.Time, timeout time.Duration) (ok bool, err error) {
	cc := t.cc
	elapsed := time.Since(start)
	if timeout > 0 && elapsed >= timeout {
		return t.bodySent && t.keep, errTimeout
	}
	if cc.clientGone() {
		return false, errClientGone
	}
	if !t.bodySent && t.expect && elapsed >= time.Second {
		// The server says nothing: send the body as if it had said 100
		// Continue.
		if t.clientMinor >= 1 {
			cc.out.writeString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := cc.out.flush(); err != nil {
				return false, errClientGone
			}
		}
		if err := t.sendBody(); err != nil {
			return cc.bodyFailed(err)
		}
	}
	next := time.Second
	if timeout > 0 {
		next = min(next, timeout-elapsed)
	}
	t.pc.in.setDeadline(time.Now().Add(next), 0)
	return false, nil
}

// Response body framings, in relayResponse.
const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyUntilClose
)

// bodyFraming says how a response body is delimited: none for HEAD,
// 204 and 304, else chunked, Content-Length or until the server closes.
func bodyFraming(resp *head, isHead bool) int {
	switch {
	case isHead || resp.status == 204 || resp.status == 304:
		return bodyNone
	case resp.chunked:
		return bodyChunked
	case resp.contentLength >= 0:
		return bodyLength
	}
	return bodyUntilClose
}

// copyResponseBody copies a response body framed as mode from srv to the
// client (re-framed when decode) and returns the bytes it counted.
func (cc *clientConn) copyResponseBody(srv *rbuf, resp *head, mode int, decode bool) (n int64, err error) {
	switch mode {
	case bodyLength:
		n = resp.contentLength
		err = copyN(&cc.out, srv, n)
	case bodyChunked:
		n, err = copyChunked(&cc.out, srv, decode, maxRespHead)
	case bodyUntilClose:
		n, err = copyUntilEOF(&cc.out, srv)
	}
	return n, err
}

// relayResponse passes the final response head in cc.resp and its body
// on to the client, or tunnels an accepted upgrade, and keeps the server
// connection for reuse when it can be.
func (t *trip) relayResponse() (bool, error) {
	cc, bp, s, pc, resp := t.cc, t.bp, t.s, t.pc, &t.cc.resp
	srv := &pc.in
	b := srv.buffered()
	if resp.status == 101 {
		if len(cc.upTok) == 0 || !eqFoldBytes(resp.upgrade.of(b), cc.upTok) || !t.bodySent {
			return false, errUpgrade
		}
		cc.count(bp, 101)
		cc.writeRespHead(b, resp, false, true, true)
		srv.consume(resp.n)
		cc.tunnel(s, pc)
		return false, nil
	}
	keep := t.keep
	// A final answer before the body was asked for: the body stays
	// unread, so the client connection closes after this response.
	if !t.bodySent {
		keep = false
	}
	mode := bodyFraming(resp, t.isHead)
	decode := mode == bodyChunked && t.clientMinor == 0
	if mode == bodyUntilClose || decode || !cc.mayKeep() {
		keep = false
	}
	srvKeep := t.bodySent && !t.serverStopped && mode != bodyUntilClose && s.SendProxy == 0 &&
		(resp.minor >= 1 && !resp.connClose || resp.minor == 0 && resp.connKeepAlive)
	// A chunked body is checked as it is copied: one the server botches
	// before any byte of the answer left for the client gets 502
	// instead (HAProxy's answer), so its status is counted only as its
	// first byte leaves (beforeSend).
	held := mode == bodyChunked
	if held {
		if err := cc.out.flush(); err != nil { // nothing of an earlier answer in the way
			return false, errClientGone
		}
		cc.heldBP, cc.heldStatus, cc.out.before = bp, resp.status, cc
	} else {
		cc.count(bp, resp.status)
	}
	if cc.logging {
		cc.rec.Response = time.Since(cc.rec.Start)
	}
	sent := cc.out.sent
	cc.writeRespHead(b, resp, decode, keep, false)
	srv.consume(resp.n)
	if mode != bodyNone && (mode != bodyLength || int64(len(srv.buffered())) < resp.contentLength) {
		srv.setDeadline(time.Time{}, 0) // a body may take its time
	}
	n, err := cc.copyResponseBody(srv, resp, mode, decode)
	if n > 0 {
		s.BytesFromServer.Add(uint64(n))
	}
	if held && err != nil && cc.out.sent == sent {
		// Nothing left yet: the buffered head and body are dropped and
		// the caller answers 502 (the server's fault: its connection is
		// closed, the client's after the answer).
		cc.out.b, cc.out.before, cc.heldBP = cc.out.b[:0], nil, nil
		return false, err
	}
	cc.rec.Bytes = n
	if err == nil {
		err = cc.out.flush()
	}
	if held {
		cc.beforeSend() // counted by now (the last chunk was written), unless flush found nothing
	}
	if err != nil || !srvKeep || len(srv.buffered()) > 0 {
		pc.c.Close()
	} else {
		bp.put(s, pc)
	}
	// An answer that said Connection: close, perhaps before the body
	// was read (a server's early 413): the connection closes lingering.
	cc.linger = !keep && err == nil
	return keep && err == nil, nil
}

// beforeSend counts a chunked response whose count relayResponse held,
// just before its first byte leaves for the client.
func (cc *clientConn) beforeSend() {
	cc.out.before = nil
	if bp := cc.heldBP; bp != nil {
		cc.heldBP = nil
		cc.count(bp, cc.heldStatus)
	}
}

// bodyFailed: the request body could not be read from the client (a
// server that stopped reading it is handled in roundTrip). A client that
// sent a malformed chunked body gets 400; one that went away, reset the
// connection or stalled past client_timeout, nothing.
func (cc *clientConn) bodyFailed(err error) (bool, error) {
	if errors.Is(err, errBadChunk) {
		cc.reject(400, errBadChunk.Error())
	}
	return false, errClientGone
}

// clientGone peeks at the client's socket without blocking: an orderly
// close or a reset means nobody waits for the answer.
func (cc *clientConn) clientGone() bool {
	if len(cc.in.buffered()) > 0 {
		return false
	}
	sc, ok := cc.raw.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var one [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true
	})
	return gone
}

// writeRespHead writes a response head to the client: the server's
// status line as HTTP/1.1, its fields without the hop-by-hop ones, and
// the proxy's own Connection. With decode (an HTTP/1.0 client and a
// chunked body) Transfer-Encoding goes too. upgrade keeps the Upgrade
// field of a 101.
func (cc *clientConn) writeRespHead(b []byte, resp *head, decode, keep, upgrade bool) {
	w := cc.out.b
	if cap(w)-len(w) < 512 {
		cc.out.flush()
		w = cc.out.b
	}
	w = append(w, "HTTP/1.1 "...)
	w = appendInt(w, int64(resp.status))
	w = append(w, ' ')
	w = append(w, resp.reason.of(b)...)
	w = append(w, "\r\n"...)
	cc.out.b = w
	for _, fl := range resp.fields {
		name := fl.name.of(b)
		switch {
		case eqFold(name, "transfer-encoding"):
			if decode {
				continue
			}
		case eqFold(name, "upgrade"):
			if !upgrade {
				continue
			}
		case eqFold(name, "content-length"):
			if resp.te {
				continue
			}
		case hopByHop(name) || resp.connNames(b, name):
			continue
		case len(cc.f.respSet) > 0 && resp.status >= 200 && cc.f.respSet.has(name):
			continue
		}
		cc.fieldLine(name, fl.value.of(b))
	}
	if resp.status >= 200 {
		for _, h := range cc.f.respSet {
			if h.value != "" {
				cc.out.write(h.line)
			}
		}
	}
	switch {
	case upgrade:
		cc.out.writeString("Connection: Upgrade\r\n\r\n")
		return
	case resp.status < 200:
	default:
		cc.out.writeString(cc.connectionField(keep))
	}
	cc.out.writeString("\r\n")
}

// connectionField is the Connection field line a final answer needs:
// close when the connection ends after it, keep-alive for an HTTP/1.0
// client it stays open for, none otherwise.
// mayKeep reports whether an answer may leave the connection open: not
// once the frontend is shutting down or retiring (a reload replaced it),
// whose answers end their connections, wharf's own (fail, redirectHTTPS)
// as relayed ones (relayResponse), so the client reconnects to the new
// frontend.
func (cc *clientConn) mayKeep() bool {
	return !cc.f.shutting.Load() && !cc.f.retiring.Load()
}

func (cc *clientConn) connectionField(keep bool) string {
	switch {
	case !keep:
		return "Connection: close\r\n"
	case cc.req.minor == 0:
		return "Connection: keep-alive\r\n"
	}
	return ""
}

func (cc *clientConn) fieldLine(name, value []byte) {
	if len(cc.out.b)+len(name)+len(value)+4 > cap(cc.out.b) {
		cc.out.write(name)
		cc.out.writeString(": ")
		cc.out.write(value)
		cc.out.writeString("\r\n")
		return
	}
	w := append(cc.out.b, name...)
	w = append(w, ": "...)
	w = append(w, value...)
	cc.out.b = append(w, "\r\n"...)
}

// tunnel copies bytes both ways after a 101 until either side closes,
// then closes both.
func (cc *clientConn) tunnel(s *upstream.Server, pc *poolConn) {
	if err := cc.out.flush(); err != nil {
		pc.c.Close()
		return
	}
	// A tunnel (WebSocket...) may be quiet for long: no deadline either
	// way, the ends decide.
	cc.c.SetDeadline(time.Time{})
	pc.c.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Client to server: what the client sent after the request
		// first, then the stream.
		in := &cc.in
		for {
			if p := in.buffered(); len(p) > 0 {
				n, err := pc.c.Write(p)
				s.BytesToServer.Add(uint64(n))
				if err != nil {
					break
				}
				in.consume(len(p))
			}
			in.r, in.w = 0, 0
			n, err := cc.c.Read(in.b)
			in.w = n
			if err != nil && n == 0 {
				break
			}
		}
		pc.c.Close()
		cc.c.Close()
	}()
	srv := &pc.in
	for {
		if p := srv.buffered(); len(p) > 0 {
			n, err := cc.c.Write(p)
			s.BytesFromServer.Add(uint64(n))
			if err != nil {
				break
			}
			srv.consume(len(p))
		}
		srv.r, srv.w = 0, 0
		n, err := pc.c.Read(srv.b)
		srv.w = n
		if err != nil && n == 0 {
			break
		}
	}
	pc.c.Close()
	cc.c.Close()
	<-done
}

// fail answers with a short plain-text error and returns keep.
func (cc *clientConn) fail(code int, msg string, keep bool) bool {
	keep = keep && cc.mayKeep()
	w := cc.out.b[:0]
	text := statusText(code)
	w = append(w, "HTTP/1.1 "...)
	w = appendInt(w, int64(code))
	w = append(w, ' ')
	w = append(w, text...)
	w = append(w, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nContent-Length: "...)
	bodyLen := len(strconv.Itoa(code)) + 1 + len(text) + 2 + len(msg) + 1
	w = appendInt(w, int64(bodyLen))
	w = append(w, "\r\n"...)
	w = append(w, cc.connectionField(keep)...)
	w = append(w, "\r\n"...)
	if cc.isHead {
		bodyLen = 0
	} else {
		w = appendInt(w, int64(code))
		w = append(w, ' ')
		w = append(w, text...)
		w = append(w, ": "...)
		w = append(w, msg...)
		w = append(w, '\n')
	}
	return cc.sendOwn(w, code, bodyLen, keep)
}

// sendOwn sends w, an answer the proxy made itself (code, with bodyLen
// bytes of body), notes it for the access log and returns keep.
func (cc *clientConn) sendOwn(w []byte, code, bodyLen int, keep bool) bool {
	cc.out.b = w
	if cc.rec.Status == 0 {
		cc.rec.Status = code
	}
	cc.rec.Bytes = int64(bodyLen)
	cc.isHead = false
	if err := cc.out.flush(); err != nil {
		return false
	}
	cc.linger = !keep
	return keep
}

// redirectHTTPS answers 301 with the request's URL over https: the host
// without its port (https has its own), the path and query as sent.
func (cc *clientConn) redirectHTTPS(host, path []byte, keep bool) bool {
	if len(host) == 0 {
		return cc.fail(400, "no Host to redirect to", keep)
	}
	if i := lastByte(host, ':'); i >= 0 && lastByte(host, ']') < i {
		host = host[:i]
	}
	keep = keep && cc.mayKeep()
	w := append(cc.out.b[:0], "HTTP/1.1 301 Moved Permanently\r\nLocation: https://"...)
	w = append(w, host...)
	if len(path) == 0 || path[0] != '/' {
		w = append(w, '/')
	}
	w = append(w, path...)
	w = append(w, "\r\nContent-Length: 0\r\n"...)
	w = append(w, cc.connectionField(keep)...)
	return cc.sendOwn(append(w, "\r\n"...), 301, 0, keep)
}

func lastByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// reject answers a request the proxy refuses before forwarding (bad
// head, unsupported method) and closes.
func (cc *clientConn) reject(code int, msg string) {
	cc.fail(code, msg, false)
}

// lingerClose closes gracefully: the write side first (close_notify on
// TLS, then TCP's FIN), then what the client still sends is dropped for
// a while (lingerDrain), so an answer sent before the whole request was
// read is not lost to a reset. The drain reads the socket under TLS and
// is bounded in bytes and time, not in reads (64 reads were a few KiB
// from a client writing small TLS records).
func (cc *clientConn) lingerClose() {
	if tc, ok := cc.c.(*tls.Conn); ok && tc.CloseWrite() != nil {
		return
	}
	lingerDrain(cc.raw.Conn)
}

// A lingering close, as Go's net/http (closeWriteAndWait) and nginx
// (lingering_close) do: a socket closed with input unread is reset, and
// the reset drops what is still queued to send (a last answer, a
// GOAWAY) and may reach the client before it read what did arrive.
const (
	lingerTime     = time.Second // the longest a closing connection is drained
	lingerMaxBytes = 256 << 10   // the most read from it meanwhile
)

var lingerBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// lingerDrain shuts down c's write side (a TCP connection; what is queued
// is sent, then FIN) and reads and drops what the peer still sends until
// it closes too, lingerTime has passed or lingerMaxBytes were read. The
// caller closes c.
func lingerDrain(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(lingerTime))
	bp := lingerBufs.Get().(*[]byte)
	defer lingerBufs.Put(bp)
	for n := 0; n < lingerMaxBytes; {
		m, err := c.Read(*bp)
		if err != nil {
			return
		}
		n += m
	}
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 405:
		return "Method Not Allowed"
	case 431:
		return "Request Header Fields Too Large"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}

// conn returns a connection to s: an idle one from its pool, else a new
// one. reused says which (a reused one may turn out to be closed).
func (bp *backendProxy) conn(s *upstream.Server, cc *clientConn) (pc *poolConn, reused bool, err error) {
	if p := bp.pools[s]; p != nil {
		var maxAge time.Duration
		if cc.req.hasBody() || !idempotent(cc.req.method.of(cc.reqBytes())) {
			maxAge = freshEnough
		}
		pc = p.getIdleWithin(maxAge)
	}
	if reused = pc != nil; !reused {
		if pc, err = bp.dial(s, cc); err != nil {
			return nil, false, err
		}
	}
	pc.out.timeout = bp.b.Config().ServerTimeout.Duration // may change by reload
	return pc, reused, nil
}

// freshEnough is how long a connection may have been idle to carry a
// request that cannot be replayed: well below the few seconds after
// which servers commonly close idle keep-alive connections (Apache 5 s,
// nginx 75 s, Go unlimited), so the race with such a close is rare.
const freshEnough = 2 * time.Second

// dial connects to s within connect_timeout; a server with send_proxy
// gets the PROXY header naming the client first.
func (bp *backendProxy) dial(s *upstream.Server, cc *clientConn) (*poolConn, error) {
	timeout := bp.b.Config().ConnectTimeout.Duration
	c, err := net.DialTimeout("tcp", s.Addr, timeout)
	if err != nil {
		return nil, err
	}
	if s.SendProxy != 0 {
		dest := acl.AddrPortOf(cc.raw.LocalAddr())
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(proxyproto.Append(nil, s.SendProxy, cc.client, dest)); err != nil {
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: c.RemoteAddr(), Err: err}
		}
		c.SetWriteDeadline(time.Time{})
	}
	return newPoolConn(c), nil
}

// put returns a connection whose response was read to its end.
func (bp *backendProxy) put(s *upstream.Server, pc *poolConn) {
	if p := bp.pools[s]; p != nil {
		p.put(pc)
		return
	}
	pc.c.Close()
}

// resume takes over, on a goroutine, a client connection an event loop
// was serving (evloop.go) in the middle of an exchange: the request went
// to server s of bp on srv, and the response (srvBuf: what the loop had
// read of it) is one the loop does not relay itself. It relays the
// response as roundTrip would and goes on serving the connection. raw
// reads pending first (the client's next requests, if any).
//
// request, if not nil, is the request's head, sent on a kept-alive
// connection that has not answered yet: if the server had closed it, the
// request is served again from the start, as exchange does.
func (f *Frontend) resume(raw *conn, srv net.Conn, srvBuf, request []byte, bp *backendProxy, s *upstream.Server, keep, isHead bool, minor int) {
	defer f.wg.Done()
	cc := f.newClientConn(raw, raw)
	defer cc.release()
	cc.setClient()
	cc.isHead = isHead
	cc.req.minor = minor // connectionField reads it
	pc := newPoolConn(srv)
	if len(srvBuf) > len(pc.in.b) {
		pc.in.b = make([]byte, len(srvBuf))
	}
	pc.in.w = copy(pc.in.b, srvBuf)
	pc.out.timeout = bp.b.Config().ServerTimeout.Duration
	cc.upTok = cc.upTok[:0]
	t := trip{cc: cc, bp: bp, s: s, pc: pc, keep: keep, bodySent: true, isHead: isHead, clientMinor: minor}
	ok, err := t.readResponseHead(request != nil, request != nil)
	if err == errStale {
		pc.c.Close()
		s.Release()
		raw.pending = append(request, raw.pending...)
		cc.serveRequests(false)
		return
	}
	if err == nil {
		ok, err = t.relayResponse()
	}
	if err != nil {
		pc.c.Close()
		ok = cc.answerError(bp, err, ok)
	}
	s.Release()
	if ok && !f.shutting.Load() {
		cc.serveRequests(false)
	}
}
