// Package httpproxy is the proxy's HTTP mode: a reverse proxy that
// routes requests by Host and path prefix to backends, keeps a keep-alive
// pool per server, streams bodies, passes WebSocket and other Upgrade
// requests through, and sets X-Forwarded-For/-Host/-Proto and Forwarded.
//
// It is a lean HTTP/1.1 server of its own (serve.go, h1.go), not
// net/http: one goroutine per client connection reads request heads in
// place from a pooled buffer (no maps, no strings per field), writes the
// rewritten head to a pooled server connection, copies the body
// (Content-Length exactly, chunked chunk by chunk, never buffered whole),
// reads the response head in place and relays it. A bodiless keep-alive
// GET allocates nothing. Clients may pipeline; requests are answered in
// order, one at a time.
//
// What it serves: HTTP/1.1 and HTTP/1.0 (keep-alive only when asked
// for; a chunked response is decoded for it and the connection closed
// after), any method but CONNECT, origin-form, absolute-form (its
// authority replaces Host) and "*" targets, Expect: 100-continue (the
// server's 100 is passed on; a server silent for a second gets the body
// anyway), 1xx responses, Upgrade (after a 101 the connection is a byte
// pipe both ways), responses framed by length, chunked or the server's
// close, and a server's answer sent before it read the whole body (413,
// 401: passed on, then both connections close). TLS is terminated with
// ALPN offering h2 (unless http2 = false) and http/1.1; an h2 connection
// is served by h2.go, each stream forwarded to the servers as an
// HTTP/1.1 request by the same routing and rewriting code. An h2c
// upgrade request is passed on like any Upgrade (servers that do not
// switch answer it as HTTP/1.1).
//
// What it refuses, answering and closing: HTTP/2 without TLS (the
// prior-knowledge preface and any other version than 1.x: 505),
// CONNECT (405), heads past max_header_bytes or with more than 256
// fields (431), and anything that could let the proxy and a server
// disagree on where a request ends (400): Content-Length together with
// Transfer-Encoding, differing Content-Length values, a Transfer-Encoding
// other than exactly "chunked" (or any on HTTP/1.0), malformed chunk
// sizes or chunk framing, a field name with whitespace before the colon,
// obs-fold, bare CR or LF, NUL and other control characters, a missing or
// repeated Host on HTTP/1.1.
//
// Timeouts: header_timeout bounds a new connection's first request head
// (with its PROXY header and TLS handshake) and every later head from
// its first byte; client_timeout bounds the wait for the next request on
// a kept-alive connection and each silence within a request body;
// server_timeout bounds the wait for a response head (504).
//
// Client-sent forwarding headers are removed unless the client is in
// trusted_proxies; then the proxy appends to them. A request that finds
// every server at its maxconn waits in the backend's queue (first come
// first served, up to queue_timeout), as HAProxy queues. Errors are
// short plain-text answers: 503 when no server is up (or none accepts a
// connection, or none freed a slot within queue_timeout), 504 when a server does not start its response within
// server_timeout, 502 for any other failure talking to a server. A failed
// connect counts against the server and is retried on the next one; a
// kept-alive server connection found closed is replaced and an
// idempotent bodiless request sent again.
package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wharf/acl"
	"wharf/conf"
	"wharf/internal/acceptretry"
	"wharf/metrics"
	"wharf/proxy/accesslog"
	"wharf/proxy/internal/front"
	"wharf/proxy/upstream"
)

// Frontend is one running http-mode frontend.
type Frontend struct {
	name string
	cfg  *conf.Frontend
	// rt is the routing (use rules, default backend), read once per
	// request; a reload swaps it (Reroute), and requests in flight finish
	// on the backend they chose.
	rt       atomic.Pointer[routing]
	reg      *metrics.Registry
	access   acl.Access
	trusted  acl.Set
	log      *slog.Logger
	tlsCfg   *tls.Config
	sem      chan struct{}
	sources  *front.SourceLimit // maxconn_per_ip
	m        frontendMetrics
	wg       sync.WaitGroup
	shutting atomic.Bool
	retiring atomic.Bool // Retire: every answer closes its connection
	mu       sync.Mutex
	binds    front.Binds
	conns    map[*conn]struct{}
	noRoute  [6]*metrics.Counter
	h2       bool // h2 is offered by ALPN
	h2m      [h2RNum]*metrics.Counter
	common   *front.Common
	alog     *accesslog.Logger // nil: no access_log
	// ev is the event-loop engine (engine = "event-loop"), started by
	// the first Serve; nil: every connection gets a goroutine.
	ev     atomic.Pointer[evEngine]
	evOnce sync.Once
	// respSet are the response_headers, sorted by name: set (value not
	// empty) or removed on every final response from a server; reqSet
	// the request_headers, on every request passed to a server.
	respSet, reqSet headerEdits
	// stopCtx ends (forceStop) when Shutdown gives up waiting: requests
	// waiting in a backend's queue stop waiting.
	stopCtx   context.Context
	forceStop context.CancelFunc
	// h2Streams counts HTTP/2 streams in flight per source, capped at
	// maxconn_per_ip as its connections are: without it one source could
	// hold 100 times as many requests (and server connections) over
	// HTTP/2 as over HTTP/1.1.
	h2Streams acl.PerIP
}

// headerEdit is one response_headers or request_headers entry.
type headerEdit struct {
	lower, value string
	line         []byte // "Name: value\r\n", as written in an HTTP/1.1 head
}

// headerEdits are a frontend's response_headers or request_headers,
// sorted by name.
type headerEdits []headerEdit

func newHeaderEdits(m map[string]string) headerEdits {
	var out headerEdits
	for name, value := range m {
		out = append(out, headerEdit{lower: strings.ToLower(name), value: value, line: []byte(name + ": " + value + "\r\n")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lower < out[j].lower })
	return out
}

// has reports whether a field name is one the edits set or remove.
func (e headerEdits) has(name []byte) bool {
	for i := range e {
		if eqFold(name, e[i].lower) {
			return true
		}
	}
	return false
}

// appendSet appends the fields the edits set, as HTTP/1.1 lines.
func (e headerEdits) appendSet(w []byte) []byte {
	for i := range e {
		if e[i].value != "" {
			w = append(w, e[i].line...)
		}
	}
	return w
}

// SetAccessLog makes the frontend log each request to l (see
// proxy/accesslog). Call it before Serve.
func (f *Frontend) SetAccessLog(l *accesslog.Logger) { f.alog = l }

// routing is where a frontend's requests go: the first use rule that
// matches, else the default backend (nil if none).
type routing struct {
	routes []route
	def    *backendProxy
	// servers are the servers of every backend routed to (the event
	// loops close idle connections to others).
	servers map[*upstream.Server]bool
}

// route is one use rule, its host lower-cased without a final dot.
type route struct {
	host, prefix string
	bp           *backendProxy
}

type frontendMetrics struct {
	accepted                                    *metrics.Counter
	rejACL, rejUntrusted, rejProxyHeader        *metrics.Counter
	rejHeaderTimeout                            *metrics.Counter // a request head begun and not finished in header_timeout (slowloris)
	rejTLS                                      *metrics.Counter // a TLS handshake failed or not finished in header_timeout
	errNoServer, errConnect, errTimeout, errBad *metrics.Counter
	// Every server at maxconn: the request waited queue_timeout in the
	// backend's queue, or found it full.
	errQueueTimeout, errQueueFull *metrics.Counter
}

// New builds an http frontend from its (validated) config; backends holds
// every backend by name.
func New(cfg *conf.Frontend, backends map[string]*upstream.Backend, reg *metrics.Registry, log *slog.Logger) (*Frontend, error) {
	g, err := front.New("proxy/http", "http", cfg, reg)
	if err != nil {
		return nil, err
	}
	cfg = g.Cfg
	f := &Frontend{name: cfg.Name, cfg: cfg, reg: reg, access: g.Access, trusted: g.Trusted, sem: g.Sem, sources: g.Sources, common: g,
		log: log.With("frontend", cfg.Name), conns: map[*conn]struct{}{}}
	herr := func(kind string) *metrics.Counter {
		return reg.Counter("wharf_proxy_http_errors_total", "Requests answered by the proxy itself with an error, by kind.", append(g.Labels, "kind", kind)...)
	}
	f.m = frontendMetrics{
		accepted:         g.Accepted,
		rejACL:           g.RejACL,
		rejUntrusted:     g.RejUntrusted,
		rejProxyHeader:   g.RejProxyHeader,
		rejHeaderTimeout: g.Rejected("header_timeout"),
		rejTLS:           g.Rejected("tls_handshake"),
		errNoServer:      herr("no_server"),
		errConnect:       herr("connect_failed"),
		errTimeout:       herr("timeout"),
		errBad:           herr("bad_gateway"),
		errQueueTimeout:  herr("queue_timeout"),
		errQueueFull:     herr("queue_full"),
	}
	f.stopCtx, f.forceStop = context.WithCancel(context.Background())
	f.respSet, f.reqSet = newHeaderEdits(cfg.ResponseHeaders), newHeaderEdits(cfg.RequestHeaders)
	f.noRoute = codeCounters(reg, cfg.Name, "")
	f.h2m = h2Counters(reg, g.Labels)
	rt, err := f.routing(cfg, backends, nil)
	if err != nil {
		return nil, err
	}
	f.rt.Store(rt)
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("proxy/http: frontend %s: cannot load tls_cert %s / tls_key %s: %w", cfg.Name, cfg.TLSCert, cfg.TLSKey, err)
		}
		ciphers, _, err := conf.ParseTLSCiphers(cfg.TLSCiphers)
		if err != nil {
			return nil, fmt.Errorf("proxy/http: frontend %s: tls_ciphers: %w", cfg.Name, err)
		}
		protos := []string{"http/1.1"}
		if cfg.HTTP2 == nil || *cfg.HTTP2 {
			f.h2 = true
			protos = []string{"h2", "http/1.1"}
		}
		f.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos, MinVersion: tls.VersionTLS12, CipherSuites: ciphers}
	}
	return f, nil
}

// routing resolves cfg's default backend and use rules in backends,
// reusing old's backendProxy (and so its connection pools) for a backend
// old routes to as well.
func (f *Frontend) routing(cfg *conf.Frontend, backends map[string]*upstream.Backend, old *routing) (*routing, error) {
	byB := map[*upstream.Backend]*backendProxy{}
	if old != nil {
		for _, bp := range old.proxies() {
			byB[bp.b] = bp
		}
	}
	get := func(name string) (*backendProxy, error) {
		b, err := f.common.Backend(backends, name)
		if err != nil {
			return nil, err
		}
		if bp := byB[b]; bp != nil {
			return bp, nil
		}
		bp := f.newBackendProxy(b, f.reg)
		byB[b] = bp
		return bp, nil
	}
	rt := &routing{}
	var err error
	if cfg.Backend != "" {
		if rt.def, err = get(cfg.Backend); err != nil {
			return nil, err
		}
	}
	for _, u := range cfg.Use {
		bp, err := get(u.Backend)
		if err != nil {
			return nil, err
		}
		rt.routes = append(rt.routes, route{host: strings.ToLower(strings.TrimSuffix(u.Host, ".")), prefix: u.PathPrefix, bp: bp})
	}
	rt.servers = map[*upstream.Server]bool{}
	for _, bp := range rt.proxies() {
		for _, s := range bp.b.Servers() {
			rt.servers[s] = true
		}
	}
	return rt, nil
}

// routedServers are the servers the current routing can send to.
func (f *Frontend) routedServers() map[*upstream.Server]bool { return f.rt.Load().servers }

// Reroute resolves cfg's backend and use rules (the rest of cfg is
// ignored: it must equal the running config's) in backends, for a
// reload. It changes nothing until commit is called; from then on new
// requests, on open connections too, are routed by cfg, while requests
// in flight finish where they are. A backend no longer routed to has
// its idle pooled connections closed at commit, and those of its
// requests in flight when they end.
func (f *Frontend) Reroute(cfg *conf.Frontend, backends map[string]*upstream.Backend) (commit func(), err error) {
	old := f.rt.Load()
	rt, err := f.routing(cfg, backends, old)
	if err != nil {
		return nil, err
	}
	return func() {
		f.rt.Store(rt)
		kept := map[*backendProxy]bool{}
		for _, bp := range rt.proxies() {
			kept[bp] = true
		}
		for _, bp := range old.proxies() {
			if !kept[bp] {
				bp.closeIdle()
			}
		}
	}, nil
}

// codeCounters are the request counters of one frontend/backend pair by
// status class, resolved once so a request costs one atomic add.
func codeCounters(reg *metrics.Registry, frontend, backend string) [6]*metrics.Counter {
	var out [6]*metrics.Counter
	for i := 1; i <= 5; i++ {
		out[i] = reg.Counter("wharf_proxy_http_requests_total", "HTTP requests by backend and status class (backend \"\" for requests no rule or default matched).",
			"frontend", frontend, "backend", backend, "code", fmt.Sprintf("%dxx", i))
	}
	out[0] = out[5]
	return out
}

// Start listens on every bind and serves.
func (f *Frontend) Start() error {
	lns, err := front.Listen("proxy/http", f.cfg)
	if err != nil {
		return err
	}
	for _, ln := range lns {
		f.Serve(ln)
	}
	return nil
}

// Serve starts accepting on ln, a listening socket opened for one of the
// frontend's binds (Start, or a reload that opened it or took it over
// from another frontend with Release).
func (f *Frontend) Serve(ln *net.TCPListener) {
	f.evOnce.Do(func() {
		if f.cfg.Engine == "goroutines" || f.tlsCfg != nil || f.cfg.AcceptProxy {
			return
		}
		ev, err := newEvEngine(f)
		if err != nil {
			f.log.Warn("cannot start the event loops; serving on goroutines", "err", err)
			return
		}
		f.ev.Store(ev)
	})
	l := &listener{Listener: ln, b: f.binds.Add(ln), f: f}
	f.wg.Add(1)
	go f.acceptLoop(l)
}

// Release stops accepting on ln and returns once the accept loop has
// ended (see front.Binds.Release).
func (f *Frontend) Release(ln *net.TCPListener, closeIt bool) { f.binds.Release(ln, closeIt) }

// acceptLoop hands each accepted connection (wrapped in TLS when the
// frontend terminates it) to its own serve goroutine.
func (f *Frontend) acceptLoop(l *listener) {
	defer f.wg.Done()
	defer l.b.Ended()
	var backoff acceptretry.Backoff
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.b.Stopped() {
				return
			}
			time.Sleep(backoff.Failed(f.log, err))
			continue
		}
		backoff.OK()
		pc := c.(*conn)
		if ev := f.ev.Load(); ev != nil {
			ev.enroll(pc)
			continue
		}
		var nc net.Conn = pc
		if f.tlsCfg != nil {
			nc = tls.Server(pc, f.tlsCfg)
		}
		f.wg.Add(1)
		go f.serve(nc, pc)
	}
}

// Addrs returns the bound addresses (useful with port 0).
func (f *Frontend) Addrs() []net.Addr { return f.binds.Addrs() }

// Name is the frontend's config name.
func (f *Frontend) Name() string { return f.name }

func (f *Frontend) track(c *conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	if add {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
	return true
}

// Shutdown stops accepting, closes idle keep-alive connections, lets
// requests in flight (and upgraded connections such as WebSockets)
// finish until ctx ends, then closes what is left. It returns ctx's error
// if it had to force.
func (f *Frontend) Shutdown(ctx context.Context) error {
	f.shutting.Store(true)
	f.mu.Lock()
	f.binds.CloseAll()
	for c := range f.conns {
		// A connection waiting for its next request is woken and, seeing
		// shutting, closes. One that stores idle after this sees shutting
		// itself (serve checks after doing so), so one pass is enough. A
		// new connection's first request is waited for (header_timeout)
		// and answered.
		if c.idle.Load() {
			c.Conn.SetReadDeadline(aLongTimeAgo)
		}
		c.stopH2() // GOAWAY; streams in flight finish
	}
	f.mu.Unlock()
	// f.wg counts the accept loops and the goroutine serving each
	// connection, which closes its connection before it ends.
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		f.forceStop()
		f.mu.Lock()
		left := len(f.conns)
		for c := range f.conns {
			if ev := c.ev.Load(); ev != nil {
				ev.gc.Close()
			} else {
				c.Conn.Close()
			}
		}
		f.conns = nil
		f.mu.Unlock()
		f.log.Warn("shutdown timeout: closed open connections", "count", left)
		<-done
	}
	for _, bp := range f.rt.Load().proxies() {
		bp.closeIdle()
	}
	f.stopEv()
	return err
}

// stopEv stops the event loops, once every connection has ended.
func (f *Frontend) stopEv() {
	if ev := f.ev.Load(); ev != nil {
		ev.stop()
	}
}

// BeginRetire makes every answer from now on carry Connection: close
// and end its connection (see Retire). A reload calls it before it
// answers, so the rebuilt frontend routes every request that follows.
func (f *Frontend) BeginRetire() { f.retiring.Store(true) }

// Retire stops a frontend a reload replaced or removed (its binds
// already handed on or closed) more gently than Shutdown: an idle
// keep-alive connection is not cut, since a request may be on its way on
// it, but its next answer carries Connection: close and the connection
// ends after it, so the client reconnects to the new frontend. Whatever
// is still open when ctx ends is closed as by Shutdown.
func (f *Frontend) Retire(ctx context.Context) error {
	f.BeginRetire()
	f.mu.Lock()
	for c := range f.conns {
		c.stopH2()
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		for _, bp := range f.rt.Load().proxies() {
			bp.closeIdle()
		}
		f.stopEv()
		return nil
	case <-ctx.Done():
		return f.Shutdown(ctx)
	}
}

// aLongTimeAgo is a deadline that has passed: setting it fails pending
// I/O at once.
var aLongTimeAgo = front.ALongTimeAgo

// proxies returns the routing's backendProxies, each once.
func (rt *routing) proxies() []*backendProxy {
	seen := map[*backendProxy]bool{}
	var out []*backendProxy
	add := func(bp *backendProxy) {
		if bp != nil && !seen[bp] {
			seen[bp] = true
			out = append(out, bp)
		}
	}
	add(rt.def)
	for _, r := range rt.routes {
		add(r.bp)
	}
	return out
}

// pick returns the backend for a request: the first rule whose host
// (port ignored) and path prefix match, else the default (nil if none).
func (f *Frontend) pick(host, path []byte) *backendProxy {
	host = hostOnly(host)
	rt := f.rt.Load()
	for i := range rt.routes {
		r := &rt.routes[i]
		if (r.host == "" || matchHost(r.host, host)) && hasPrefix(path, r.prefix) {
			return r.bp
		}
	}
	return rt.def
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// hostOnly drops the port as net.SplitHostPort would, and returns host
// unchanged when SplitHostPort would fail.
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		i := indexByte(h, ']')
		if i < 0 || i+1 >= len(h) || h[i+1] != ':' || indexByte(h[i+2:], ':') >= 0 {
			return h
		}
		return h[1:i]
	}
	i := -1
	for j, c := range h {
		switch c {
		case ':':
			if i >= 0 {
				return h // too many colons
			}
			i = j
		case '[', ']':
			return h
		}
	}
	if i < 0 {
		return h
	}
	return h[:i]
}

// matchHost is sni.Match over bytes: pattern (lower case, no final dot)
// exact or "*.suffix" for one label, case-insensitive.
func matchHost(pattern string, name []byte) bool {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		if len(name) <= len(suffix) || !eqFold(name[len(name)-len(suffix):], suffix) {
			return false
		}
		return indexByte(name[:len(name)-len(suffix)], '.') < 0
	}
	return eqFold(name, pattern)
}

// backendProxy is one backend as seen from one frontend: its servers'
// connection pools and its request counters.
type backendProxy struct {
	f     *Frontend
	b     *upstream.Backend
	pools map[*upstream.Server]*connPool // servers without send_proxy
	codes [6]*metrics.Counter
}

func (f *Frontend) newBackendProxy(b *upstream.Backend, reg *metrics.Registry) *backendProxy {
	bp := &backendProxy{f: f, b: b, pools: map[*upstream.Server]*connPool{}, codes: codeCounters(reg, f.name, b.Name)}
	bc := b.Config()
	for _, s := range b.Servers() {
		if s.SendProxy == 0 {
			bp.pools[s] = &connPool{
				addr:        s.Addr,
				dial:        (&net.Dialer{Timeout: bc.ConnectTimeout.Duration}).DialContext,
				maxIdle:     64,
				idleTimeout: 90 * time.Second,
			}
		}
	}
	return bp
}

func (bp *backendProxy) closeIdle() {
	for _, p := range bp.pools {
		p.closeIdle()
	}
}

// count counts a response (or the proxy's own answer, or 499 for a
// client that left) by status class.
func (bp *backendProxy) count(code int) { bp.codes[min(max(code/100, 0), 5)].Inc() }

// count counts code for bp and notes it in the access log record.
func (cc *clientConn) count(bp *backendProxy, code int) {
	bp.count(code)
	cc.rec.Status = code
}

// Stats returns a snapshot of the frontend's counters.
func (f *Frontend) Stats() front.Stats {
	st := f.common.Stats()
	st.HTTPErrors = map[string]uint64{
		"no_server": f.m.errNoServer.Load(), "connect_failed": f.m.errConnect.Load(),
		"timeout": f.m.errTimeout.Load(), "bad_gateway": f.m.errBad.Load(),
		"queue_timeout": f.m.errQueueTimeout.Load(), "queue_full": f.m.errQueueFull.Load(),
	}
	if ev := f.ev.Load(); ev != nil {
		st.EventLoop = map[string]uint64{"served": ev.served.Load(), "handoff": ev.handoffs.Load(), "resume": ev.resumed.Load()}
	}
	st.HTTPRequests = map[[2]string]uint64{}
	st.HTTP2Errors = map[string]uint64{}
	for i, r := range h2Reasons {
		st.HTTP2Errors[r] = f.h2m[i].Load()
	}
	add := func(backend string, codes [6]*metrics.Counter) {
		for i := 1; i <= 5; i++ { // codes[0] is codes[5]
			st.HTTPRequests[[2]string{backend, fmt.Sprintf("%dxx", i)}] = codes[i].Load()
		}
	}
	add("", f.noRoute)
	for _, bp := range f.rt.Load().proxies() {
		add(bp.b.Name, bp.codes)
	}
	return st
}
