// Package httpproxy is the proxy's HTTP mode: a reverse proxy
// (net/http/httputil.ReverseProxy with Rewrite) that routes requests by
// Host and path prefix to backends, keeps a keep-alive pool per server,
// streams bodies, passes WebSocket and other Upgrade requests through,
// and sets X-Forwarded-For/-Host/-Proto and Forwarded. Bodiless GET,
// HEAD and OPTIONS requests go to the server over connPool, in the
// handler's goroutine; everything else through an http.Transport per
// server (see pool.go for why).
//
// Client-sent forwarding headers are removed unless the client is in
// trusted_proxies; then the proxy appends to them. Errors are short
// plain-text answers: 503 when no server is up (or none accepts a
// connection), 504 when a server does not start its response within
// server_timeout, 502 for any other failure talking to a server.
package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"

	"wharf/acl"
	"wharf/conf"
	"wharf/metrics"
	"wharf/proxy/proxyproto"
	"wharf/proxy/sni"
	"wharf/proxy/upstream"
)

// Frontend is one running http-mode frontend.
type Frontend struct {
	name    string
	cfg     *conf.Frontend
	routes  []route
	def     *backendProxy
	access  acl.Access
	trusted acl.Set
	log     *slog.Logger
	tlsCfg  *tls.Config
	sem     chan struct{}
	m       frontendMetrics
	srv     *http.Server
	lns     []*listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[*conn]struct{}
	noRoute [6]*metrics.Counter
}

type route struct {
	host, prefix string
	bp           *backendProxy
}

type frontendMetrics struct {
	accepted                                    *metrics.Counter
	rejACL, rejUntrusted, rejProxyHeader        *metrics.Counter
	errNoServer, errConnect, errTimeout, errBad *metrics.Counter
}

// New builds an http frontend from its (validated) config; backends holds
// every backend by name.
func New(cfg *conf.Frontend, backends map[string]*upstream.Backend, reg *metrics.Registry, log *slog.Logger) (*Frontend, error) {
	if cfg.Mode != "http" {
		return nil, fmt.Errorf("proxy/http: frontend %s has mode %q, want http", cfg.Name, cfg.Mode)
	}
	c := *cfg // a copy with unset values defaulted (configs built in code)
	(&conf.Config{Frontends: map[string]*conf.Frontend{c.Name: &c}}).ApplyDefaults()
	cfg = &c
	f := &Frontend{name: cfg.Name, cfg: cfg, log: log.With("frontend", cfg.Name), conns: map[*conn]struct{}{}}
	var err error
	if f.access.Allow, err = acl.Parse("frontend "+cfg.Name+" allow", cfg.Allow); err != nil {
		return nil, err
	}
	if f.access.Deny, err = acl.Parse("frontend "+cfg.Name+" deny", cfg.Deny); err != nil {
		return nil, err
	}
	if f.trusted, err = acl.Parse("frontend "+cfg.Name+" trusted_proxies", cfg.TrustedProxies); err != nil {
		return nil, err
	}
	l := []string{"frontend", cfg.Name}
	rej := func(reason string) *metrics.Counter {
		return reg.Counter("wharf_proxy_frontend_rejected_total", "Client connections closed before forwarding, by reason.", append(l, "reason", reason)...)
	}
	herr := func(kind string) *metrics.Counter {
		return reg.Counter("wharf_proxy_http_errors_total", "Requests answered by the proxy itself with an error, by kind.", append(l, "kind", kind)...)
	}
	f.m = frontendMetrics{
		accepted:       reg.Counter("wharf_proxy_frontend_connections_total", "Client connections accepted.", l...),
		rejACL:         rej("acl"),
		rejUntrusted:   rej("proxy_untrusted"),
		rejProxyHeader: rej("proxy_header"),
		errNoServer:    herr("no_server"),
		errConnect:     herr("connect_failed"),
		errTimeout:     herr("timeout"),
		errBad:         herr("bad_gateway"),
	}
	f.noRoute = codeCounters(reg, cfg.Name, "")
	byName := map[string]*backendProxy{}
	get := func(name string) (*backendProxy, error) {
		if bp := byName[name]; bp != nil {
			return bp, nil
		}
		b := backends[name]
		if b == nil {
			return nil, fmt.Errorf("proxy/http: frontend %s: backend %q is not defined; add [backend.%s]", cfg.Name, name, name)
		}
		bp := f.newBackendProxy(b, reg)
		byName[name] = bp
		return bp, nil
	}
	if cfg.Backend != "" {
		if f.def, err = get(cfg.Backend); err != nil {
			return nil, err
		}
	}
	for _, u := range cfg.Use {
		bp, err := get(u.Backend)
		if err != nil {
			return nil, err
		}
		f.routes = append(f.routes, route{host: u.Host, prefix: u.PathPrefix, bp: bp})
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("proxy/http: frontend %s: cannot load tls_cert %s / tls_key %s: %w", cfg.Name, cfg.TLSCert, cfg.TLSKey, err)
		}
		f.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	maxConn := cfg.MaxConn
	if maxConn <= 0 {
		maxConn = conf.DefaultProxyMaxConn
	}
	f.sem = make(chan struct{}, maxConn)
	f.srv = &http.Server{
		Handler:           f,
		ReadHeaderTimeout: cfg.HeaderTimeout.Duration,
		IdleTimeout:       cfg.ClientTimeout.Duration,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	return f, nil
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
	for _, b := range f.cfg.Binds {
		ln, err := net.Listen("tcp", b.Addr)
		if err != nil {
			for _, l := range f.lns {
				l.Close()
			}
			f.lns = nil
			return fmt.Errorf("proxy/http: frontend %s: cannot listen on tcp://%s: %w", f.name, b.Addr, err)
		}
		f.lns = append(f.lns, &listener{Listener: ln, f: f, closing: make(chan struct{})})
	}
	for _, l := range f.lns {
		var ln net.Listener = l
		if f.tlsCfg != nil {
			ln = tls.NewListener(l, f.tlsCfg)
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := f.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				f.log.Error("serve stopped", "err", err)
			}
		}()
	}
	return nil
}

// Addrs returns the bound addresses (useful with port 0).
func (f *Frontend) Addrs() []net.Addr {
	out := make([]net.Addr, len(f.lns))
	for i, l := range f.lns {
		out[i] = l.Addr()
	}
	return out
}

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

// Shutdown stops accepting, lets requests in flight (and upgraded
// connections such as WebSockets) finish until ctx ends, then closes
// what is left. It returns ctx's error if it had to force.
func (f *Frontend) Shutdown(ctx context.Context) error {
	err := f.srv.Shutdown(ctx)
	if err == nil {
		// Hijacked connections are not the server's any more: wait for
		// them too.
		for {
			f.mu.Lock()
			n := len(f.conns)
			f.mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
	}
	if err != nil {
		f.srv.Close()
		f.mu.Lock()
		left := len(f.conns)
		for c := range f.conns {
			c.Conn.Close()
		}
		f.conns = nil
		f.mu.Unlock()
		f.log.Warn("shutdown timeout: closed open connections", "count", left)
	}
	f.wg.Wait()
	for _, bp := range f.backendProxies() {
		bp.closeIdle()
	}
	return err
}

func (f *Frontend) backendProxies() []*backendProxy {
	seen := map[*backendProxy]bool{}
	var out []*backendProxy
	for _, bp := range append([]*backendProxy{f.def}, routeProxies(f.routes)...) {
		if bp != nil && !seen[bp] {
			seen[bp] = true
			out = append(out, bp)
		}
	}
	return out
}

func routeProxies(rs []route) []*backendProxy {
	out := make([]*backendProxy, len(rs))
	for i, r := range rs {
		out[i] = r.bp
	}
	return out
}

// pick returns the backend for a request: the first rule whose host and
// path prefix match, else the default (nil if none).
func (f *Frontend) pick(r *http.Request) *backendProxy {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, rt := range f.routes {
		if (rt.host == "" || sni.Match(rt.host, host)) && strings.HasPrefix(r.URL.Path, rt.prefix) {
			return rt.bp
		}
	}
	return f.def
}

// ServeHTTP routes one request.
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bp := f.pick(r)
	if bp == nil {
		f.noRoute[5].Inc()
		f.m.errNoServer.Inc()
		plainError(w, http.StatusServiceUnavailable, "no backend for this host and path")
		return
	}
	// Codes are counted in countResponse and errorHandler: a wrapping
	// ResponseWriter would cost an allocation per request.
	bp.rp.ServeHTTP(w, r)
}

func plainError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), msg)
}

// backendProxy is one backend as seen from one frontend: a ReverseProxy
// whose transport picks a server per request.
type backendProxy struct {
	f     *Frontend
	b     *upstream.Backend
	rp    *httputil.ReverseProxy
	tr    map[*upstream.Server]*http.Transport
	pools map[*upstream.Server]*connPool // servers without send_proxy
	codes [6]*metrics.Counter
}

type ctxKey int

const clientKey ctxKey = 0

func (f *Frontend) newBackendProxy(b *upstream.Backend, reg *metrics.Registry) *backendProxy {
	bp := &backendProxy{f: f, b: b, tr: map[*upstream.Server]*http.Transport{}, pools: map[*upstream.Server]*connPool{}, codes: codeCounters(reg, f.name, b.Name)}
	bc := b.Config()
	for _, s := range b.Servers() {
		if s.SendProxy == 0 {
			bp.pools[s] = &connPool{
				addr:          s.Addr,
				dial:          bp.dialer(s, bc.ConnectTimeout.Duration),
				headerTimeout: bc.ServerTimeout.Duration,
				maxIdle:       64,
				idleTimeout:   90 * time.Second,
			}
		}
		bp.tr[s] = &http.Transport{
			DialContext:           bp.dialer(s, bc.ConnectTimeout.Duration),
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: bc.ServerTimeout.Duration,
			ExpectContinueTimeout: time.Second,
			// The PROXY header names one client: no reuse across clients.
			DisableKeepAlives: s.SendProxy != 0,
			// Pass Accept-Encoding through untouched; do not add gzip.
			DisableCompression: true,
		}
	}
	bp.rp = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      bp,
		ModifyResponse: bp.countResponse,
		ErrorHandler:   bp.errorHandler,
		BufferPool:     copyBuffers,
		ErrorLog:       slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	return bp
}

func (bp *backendProxy) closeIdle() {
	for _, t := range bp.tr {
		t.CloseIdleConnections()
	}
	for _, p := range bp.pools {
		p.closeIdle()
	}
}

// fwdHeaders are the forwarding headers a client may only set when it is
// a trusted proxy.
var fwdHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

// rewrite prepares the outbound request. ReverseProxy has already removed
// the forwarding headers and hop-by-hop headers from pr.Out. Every value
// it adds is a slice of one string built in a stack buffer, so a request
// costs two allocations here (that string and the value slices).
func (f *Frontend) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = "backend.invalid" // RoundTrip sends each request to its server
	out.Host = in.Host
	client, _ := netip.ParseAddrPort(in.RemoteAddr)
	ip := client.Addr().Unmap()
	h := out.Header
	if f.trusted.Contains(ip) {
		for _, k := range fwdHeaders {
			if v, ok := in.Header[k]; ok {
				h[k] = v
			}
		}
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	var stack [256]byte
	b := stack[:0]
	xffEnd := 0
	if ip.IsValid() {
		b = appendJoined(b, h["X-Forwarded-For"])
		b = ip.AppendTo(b)
		xffEnd = len(b)
	}
	b = appendJoined(b, h["Forwarded"])
	b = append(b, "for="...)
	switch {
	case !ip.IsValid():
		b = append(b, "unknown"...)
	case ip.Is6():
		b = append(b, `"[`...)
		b = ip.AppendTo(b)
		b = append(b, `]"`...)
	default:
		b = ip.AppendTo(b)
	}
	b = append(b, ";proto="...)
	b = append(b, proto...)
	if in.Host != "" {
		b = append(b, ";host="...)
		b = appendQuotedIfNeeded(b, in.Host)
	}
	s := string(b)
	vals := make([]string, 4)
	set := func(i int, k, v string) {
		vals[i] = v
		h[k] = vals[i : i+1 : i+1] // capacity 1: an Add elsewhere copies
	}
	if xffEnd > 0 {
		set(0, "X-Forwarded-For", s[:xffEnd])
	}
	set(1, "Forwarded", s[xffEnd:])
	if h.Get("X-Forwarded-Proto") == "" {
		set(2, "X-Forwarded-Proto", proto)
	}
	if in.Host != "" && h.Get("X-Forwarded-Host") == "" {
		set(3, "X-Forwarded-Host", in.Host)
	}
}

// appendJoined appends the values of a list header joined by ", ", and a
// final ", " when there are any.
func appendJoined(b []byte, vs []string) []byte {
	for _, v := range vs {
		b = append(b, v...)
		b = append(b, ", "...)
	}
	return b
}

// appendQuotedIfNeeded appends an RFC 7239 value, quoted when it is not
// a token (a host with a port has a colon).
func appendQuotedIfNeeded(b []byte, s string) []byte {
	token := true
	for i := 0; i < len(s) && token; i++ {
		c := s[i]
		token = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	}
	if token {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == '"' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// dialer connects to one server; servers with send_proxy get the PROXY
// header naming the request's client first.
func (bp *backendProxy) dialer(s *upstream.Server, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, network, s.Addr)
		if err != nil || s.SendProxy == 0 {
			return c, err
		}
		client, _ := ctx.Value(clientKey).(netip.AddrPort)
		var dest netip.AddrPort
		if la, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
			dest = acl.AddrPortOf(la)
		}
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(proxyproto.Append(nil, s.SendProxy, client, dest)); err != nil {
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: c.RemoteAddr(), Err: err}
		}
		c.SetWriteDeadline(time.Time{})
		return c, nil
	}
}

// RoundTrip picks a server and sends the request through that server's
// pool. A failed connect counts against the server and, when the request
// has no body to replay, is retried on the next server.
func (bp *backendProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	// ReverseProxy's outbound request keeps the client's RemoteAddr.
	client, _ := netip.ParseAddrPort(req.RemoteAddr)
	retries := bp.b.Config().Retries
	var triedBuf [4]*upstream.Server
	tried := triedBuf[:0]
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		s := bp.b.Pick(client.Addr(), tried)
		if s == nil {
			break
		}
		tried = append(tried, s)
		// Each server has its own Transport and dialer, so the URL's
		// host ("backend.invalid" from rewrite) only matters on the
		// wire when the request has no Host: then it must be the
		// server's address. The PROXY header's client travels to the
		// dialer in the context.
		r2 := req
		if req.Host == "" || s.SendProxy != 0 {
			r2 = new(http.Request)
			*r2 = *req
			u := *req.URL
			u.Host = s.Addr
			r2.URL = &u
			if s.SendProxy != 0 {
				r2 = r2.WithContext(context.WithValue(req.Context(), clientKey, client))
			}
		}
		var resp *http.Response
		var err error
		if p := bp.pools[s]; p != nil && simple(r2) {
			resp, err = p.roundTrip(r2)
		} else {
			resp, err = bp.tr[s].RoundTrip(r2)
		}
		if err == nil {
			s.ConnectOK()
			resp.Body = releaseOnClose(resp.Body, s)
			return resp, nil
		}
		s.Release()
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
		s.ConnectFailed(err)
		lastErr = &connectError{server: s.Name, err: err}
		if req.Body != nil && req.Body != http.NoBody {
			break // the transport has consumed or closed the body
		}
	}
	if lastErr == nil {
		bp.b.CountNoServer()
		return nil, upstream.ErrNoServer
	}
	return nil, lastErr
}

type connectError struct {
	server string
	err    error
}

func (e *connectError) Error() string { return "server " + e.server + ": " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// releaseOnClose ends the server's in-flight count when the body is
// closed. A 101 Switching Protocols body is the upgraded connection and
// must stay writable, so the wrapper keeps Write.
func releaseOnClose(body io.ReadCloser, s *upstream.Server) io.ReadCloser {
	rb := &releasingBody{ReadCloser: body, s: s}
	if rw, ok := body.(io.ReadWriteCloser); ok {
		return &releasingRWBody{releasingBody: rb, w: rw}
	}
	return rb
}

type releasingBody struct {
	io.ReadCloser
	s    *upstream.Server
	once sync.Once
}

func (b *releasingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.s.BytesFromServer.Add(uint64(n))
	return n, err
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.s.Release)
	return err
}

type releasingRWBody struct {
	*releasingBody
	w io.Writer
}

func (b *releasingRWBody) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.s.BytesToServer.Add(uint64(n))
	return n, err
}

// countResponse counts a server's (final) response by status class. A
// 101 whose upgrade then fails (the server switched to another protocol
// than asked) is counted twice: as 1xx here and as 502 in errorHandler.
func (bp *backendProxy) countResponse(resp *http.Response) error {
	bp.count(resp.StatusCode)
	return nil
}

func (bp *backendProxy) count(code int) { bp.codes[min(max(code/100, 0), 5)].Inc() }

// errorHandler answers a request the proxy could not forward.
func (bp *backendProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	f := bp.f
	code := http.StatusBadGateway
	defer func() { bp.count(code) }()
	var ce *connectError
	var ne net.Error
	switch {
	case errors.Is(err, upstream.ErrNoServer):
		f.m.errNoServer.Inc()
		code = http.StatusServiceUnavailable
		plainError(w, code, "no server is available in backend "+bp.b.Name)
	case errors.As(err, &ce):
		f.m.errConnect.Inc()
		f.log.Warn("cannot connect to any server", "backend", bp.b.Name, "err", err)
		code = http.StatusServiceUnavailable
		plainError(w, code, "cannot connect to a server of backend "+bp.b.Name)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		code = 499
		w.WriteHeader(code)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		f.m.errTimeout.Inc()
		code = http.StatusGatewayTimeout
		plainError(w, code, "the server of backend "+bp.b.Name+" did not answer in time")
	default:
		f.m.errBad.Inc()
		f.log.Debug("bad gateway", "backend", bp.b.Name, "err", err)
		plainError(w, code, "the server of backend "+bp.b.Name+" failed to answer")
	}
}

// copyBuffers recycles ReverseProxy's body copy buffers (32KiB each,
// otherwise allocated per request).
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

// Get returns a 32KiB buffer; it belongs to the caller until Put.
func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put takes a buffer back; the caller must not use it afterwards.
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var _ httputil.BufferPool = (*bufferPool)(nil)
var _ http.RoundTripper = (*backendProxy)(nil)
var _ http.Handler = (*Frontend)(nil)
