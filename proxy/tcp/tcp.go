// Package tcp is the proxy's TCP mode: it accepts connections on a
// frontend's binds and forwards each, byte for byte, to a server of a
// backend.
//
// Per connection, in order: the allow/deny lists are checked on the
// socket address before anything is read; then, on binds that ask for
// it, the PROXY header is read (only from trusted proxies) and the TLS
// ClientHello is peeked to route by server name (sni_routing). What was
// read is replayed to the server, after a PROXY header if the server
// wants one. From then on both directions are copied by
// (*net.TCPConn).ReadFrom between two *net.TCPConn, which on Linux is
// splice(2): the payload never enters user space. A FIN from one side is
// passed on with CloseWrite; the connection ends when both directions
// have, or when it has been idle (no byte either way) for the client or
// server timeout.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"wharf/acl"
	"wharf/conf"
	"wharf/internal/acceptretry"
	"wharf/metrics"
	"wharf/proxy/accesslog"
	"wharf/proxy/internal/front"
	"wharf/proxy/proxyproto"
	"wharf/proxy/sni"
	"wharf/proxy/upstream"
)

// Frontend is one running tcp-mode frontend.
type Frontend struct {
	name string
	cfg  *conf.Frontend
	// rt is the routing (default backend, sni rules), read once per
	// connection; a reload swaps it (Reroute), and connections already
	// forwarding keep the backend they chose.
	rt       atomic.Pointer[routing]
	access   acl.Access
	trusted  acl.Set
	log      *slog.Logger
	sem      chan struct{}      // maxconn tokens
	sources  *front.SourceLimit // maxconn_per_ip
	m        frontendMetrics
	common   *front.Common
	wg       sync.WaitGroup // accept loops and connections
	mu       sync.Mutex
	binds    front.Binds
	conns    map[*net.TCPConn]struct{} // client sockets, for forced close
	closing  chan struct{}
	force    chan struct{} // closed when Shutdown's deadline passed
	stopOnce sync.Once
	alog     *accesslog.Logger // nil: no access_log
}

// SetAccessLog makes the frontend log each connection to l (see
// proxy/accesslog). Call it before Serve.
func (f *Frontend) SetAccessLog(l *accesslog.Logger) { f.alog = l }

type sniRule struct {
	pattern string
	b       *upstream.Backend
}

// routing is where a frontend's connections go: the first sni rule that
// matches, else the default backend (nil if none).
type routing struct {
	def   *upstream.Backend
	rules []sniRule
}

// bind is one listening socket the frontend accepts on. stop ends its
// accept loop (Release, Shutdown); done is closed when the loop has.
type frontendMetrics struct {
	accepted, bytesIn, bytesOut *metrics.Counter
	active                      *metrics.Gauge
	rejACL, rejUntrusted        *metrics.Counter
	rejProxyHeader, rejTimeout  *metrics.Counter
	rejNoBackend, rejNoServer   *metrics.Counter
	rejQueueTimeout             *metrics.Counter
	rejQueueFull                *metrics.Counter
	rejConnect, idleClosed      *metrics.Counter
}

// New builds a tcp frontend from its (validated) config. backends holds
// every backend by name; the frontend only reads it here.
func New(cfg *conf.Frontend, backends map[string]*upstream.Backend, reg *metrics.Registry, log *slog.Logger) (*Frontend, error) {
	g, err := front.New("proxy/tcp", "tcp", cfg, reg)
	if err != nil {
		return nil, err
	}
	cfg = g.Cfg
	f := &Frontend{name: cfg.Name, cfg: cfg, access: g.Access, trusted: g.Trusted, sem: g.Sem, sources: g.Sources,
		log: log.With("frontend", cfg.Name), conns: map[*net.TCPConn]struct{}{}, closing: make(chan struct{}), force: make(chan struct{}), common: g}
	rt, err := f.routing(cfg, backends)
	if err != nil {
		return nil, err
	}
	f.rt.Store(rt)
	l := g.Labels
	f.m = frontendMetrics{
		accepted:       g.Accepted,
		bytesIn:        reg.Counter("wharf_proxy_frontend_bytes_in_total", "Bytes received from clients (PROXY header excluded).", l...),
		bytesOut:       reg.Counter("wharf_proxy_frontend_bytes_out_total", "Bytes sent to clients.", l...),
		active:         reg.Gauge("wharf_proxy_frontend_active", "Client connections open.", l...),
		rejACL:         g.RejACL,
		rejUntrusted:   g.RejUntrusted,
		rejProxyHeader: g.RejProxyHeader,
		rejTimeout:     g.Rejected("header_timeout"),
		rejNoBackend:   g.Rejected("no_backend"),
		rejNoServer:    g.Rejected("no_server"),
		// Every server at maxconn: waited queue_timeout in the backend's
		// queue, or found it full.
		rejQueueTimeout: g.Rejected("queue_timeout"),
		rejQueueFull:    g.Rejected("queue_full"),
		rejConnect:      g.Rejected("connect_failed"),
		idleClosed:      reg.Counter("wharf_proxy_frontend_idle_closed_total", "Connections closed by client_timeout or server_timeout.", l...),
	}
	return f, nil
}

// routing resolves cfg's default backend and sni rules in backends.
func (f *Frontend) routing(cfg *conf.Frontend, backends map[string]*upstream.Backend) (*routing, error) {
	rt := &routing{}
	var err error
	if cfg.Backend != "" {
		if rt.def, err = f.common.Backend(backends, cfg.Backend); err != nil {
			return nil, err
		}
	}
	for _, u := range cfg.Use {
		b, err := f.common.Backend(backends, u.Backend)
		if err != nil {
			return nil, err
		}
		rt.rules = append(rt.rules, sniRule{pattern: u.SNI, b: b})
	}
	return rt, nil
}

// Reroute resolves cfg's backend and use rules (the rest of cfg is
// ignored: it must equal the running config's) in backends, for a
// reload. It changes nothing until commit is called; from then on new
// connections are routed by cfg while open ones keep their server.
func (f *Frontend) Reroute(cfg *conf.Frontend, backends map[string]*upstream.Backend) (commit func(), err error) {
	rt, err := f.routing(cfg, backends)
	if err != nil {
		return nil, err
	}
	return func() { f.rt.Store(rt) }, nil
}

// Start listens on every bind and starts accepting. On error the binds
// opened so far are closed.
func (f *Frontend) Start() error {
	lns, err := front.Listen("proxy/tcp", f.cfg)
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
	b := f.binds.Add(ln)
	f.wg.Add(1)
	go f.acceptLoop(b)
}

// Release stops accepting on ln and returns once the accept loop has
// ended (see front.Binds.Release).
func (f *Frontend) Release(ln *net.TCPListener, closeIt bool) { f.binds.Release(ln, closeIt) }

// Addrs returns the bound addresses (useful with port 0).
func (f *Frontend) Addrs() []net.Addr { return f.binds.Addrs() }

// Name is the frontend's config name.
func (f *Frontend) Name() string { return f.name }

func (f *Frontend) acceptLoop(b *front.Bind) {
	defer f.wg.Done()
	defer b.Ended()
	ln := b.LN
	var backoff acceptretry.Backoff
	for {
		// maxconn: take a token before accepting, so excess connections
		// wait in the kernel's accept queue.
		select {
		case f.sem <- struct{}{}:
		case <-f.closing:
			return
		case <-b.Stopping():
			return
		}
		c, err := ln.AcceptTCP()
		if err != nil {
			<-f.sem
			select {
			case <-b.Stopping(): // released: the deadline or the close woke us
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-time.After(backoff.Failed(f.log, err)):
			case <-f.closing:
				return
			case <-b.Stopping():
				return
			}
			continue
		}
		backoff.OK()
		f.m.accepted.Inc()
		peer := acl.AddrOf(c.RemoteAddr())
		if !f.access.Permits(peer) {
			f.m.rejACL.Inc()
			c.SetLinger(0)
			c.Close()
			<-f.sem
			continue
		}
		if !f.sources.Admit(peer) {
			c.SetLinger(0)
			c.Close()
			<-f.sem
			continue
		}
		if !f.track(c, true) { // shut down while accepting
			c.Close()
			f.sources.Leave(peer)
			<-f.sem
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer func() { <-f.sem }()
			defer f.sources.Leave(peer)
			defer f.track(c, false)
			f.m.active.Add(1)
			defer f.m.active.Add(-1)
			f.handle(c)
		}()
	}
}

// track adds or removes a client socket; adding fails once Shutdown has
// force-closed the frontend.
func (f *Frontend) track(c *net.TCPConn, add bool) bool {
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

// errReject carries the counter of a refused connection.
type errReject struct {
	c   *metrics.Counter
	err error
}

func (e *errReject) Error() string { return e.err.Error() }

// handshake reads what must be read before a backend can be chosen: the
// PROXY header and, with sni_routing, the ClientHello. It returns the
// client's address (from the PROXY header when there is one), the
// address it connected to, and the bytes read past the PROXY header.
func (f *Frontend) handshake(c *net.TCPConn) (client, dest netip.AddrPort, pending []byte, b *upstream.Backend, err error) {
	client, dest = acl.AddrPortOf(c.RemoteAddr()), acl.AddrPortOf(c.LocalAddr())
	rt := f.rt.Load()
	b = rt.def
	if !f.cfg.AcceptProxy && !f.cfg.SNIRouting {
		return client, dest, nil, b, nil
	}
	if f.cfg.AcceptProxy && !f.trusted.Contains(client.Addr()) {
		return client, dest, nil, nil, &errReject{f.m.rejUntrusted, fmt.Errorf("PROXY header expected from %s, which is not in trusted_proxies", client.Addr())}
	}
	c.SetReadDeadline(time.Now().Add(f.cfg.HeaderTimeout.Duration))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 2048)
	needProxy := f.cfg.AcceptProxy
	for {
		if needProxy {
			h, n, perr := proxyproto.Parse(buf)
			switch {
			case perr == nil:
				needProxy = false
				if !h.Local {
					client, dest = h.Source, h.Dest
					if !f.access.Permits(client.Addr()) {
						return client, dest, nil, nil, &errReject{f.m.rejACL, fmt.Errorf("client %s (from the PROXY header) is not allowed", client.Addr())}
					}
				}
				buf = buf[n:]
				if !f.cfg.SNIRouting {
					return client, dest, buf, b, nil
				}
				continue
			case !errors.Is(perr, proxyproto.ErrNeedMore):
				return client, dest, nil, nil, &errReject{f.m.rejProxyHeader, perr}
			}
		} else {
			name, serr := sni.ServerName(buf)
			switch {
			case serr == nil:
				return client, dest, buf, rt.route(name), nil
			case !errors.Is(serr, sni.ErrNeedMore):
				// Not TLS, or a hello we cannot read: the default backend
				// decides (as HAProxy's default_backend does).
				return client, dest, buf, b, nil
			}
		}
		if len(buf) == cap(buf) {
			if len(buf) >= sni.MaxHelloLen+proxyproto.MaxV1Len+2064 {
				return client, dest, nil, nil, &errReject{f.m.rejProxyHeader, errors.New("ClientHello larger than 64KiB")}
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil && n == 0 {
			if errors.Is(rerr, os.ErrDeadlineExceeded) {
				return client, dest, nil, nil, &errReject{f.m.rejTimeout, fmt.Errorf("no complete header within header_timeout %s", f.cfg.HeaderTimeout)}
			}
			if needProxy {
				return client, dest, nil, nil, &errReject{f.m.rejProxyHeader, fmt.Errorf("connection ended before the PROXY header: %w", rerr)}
			}
			return client, dest, nil, nil, rerr
		}
	}
}

// route picks the backend for a TLS server name: the first matching
// rule, else the default.
func (rt *routing) route(name string) *upstream.Backend {
	if name != "" {
		for _, r := range rt.rules {
			if sni.Match(r.pattern, name) {
				return r.b
			}
		}
	}
	return rt.def
}

func (f *Frontend) handle(c *net.TCPConn) {
	defer c.Close()
	start := time.Now()
	client, dest, pending, b, err := f.handshake(c)
	if err != nil {
		var rej *errReject
		if errors.As(err, &rej) {
			rej.c.Inc()
			f.log.Debug("connection refused", "client", client, "reason", rej.err)
			c.SetLinger(0)
		}
		return
	}
	rec := accesslog.Conn{Start: start, Client: client, Connect: -1}
	if b == nil {
		f.m.rejNoBackend.Inc()
		f.log.Debug("no backend for connection and no default backend", "client", client)
		f.alog.TCP(&rec)
		return
	}
	rec.Backend = b.Name
	// A connect is cut short only when Shutdown forces: a connection
	// accepted just before its listener closed or was handed to another
	// frontend (a reload) is still forwarded.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-f.force:
		case <-ctx.Done():
		}
		cancel()
	}()
	hdr := make([]byte, 0, 64+len(pending))
	// A connection waiting in the backend's queue holds its maxconn
	// token, so this frontend never queues more than maxconn; as the
	// queue's bound it caps what all frontends of the backend queue.
	srv, s, err := b.Connect(ctx, client.Addr(), f.cfg.MaxConn, func(s *upstream.Server) []byte {
		hdr = hdr[:0]
		if s.SendProxy != 0 {
			hdr = proxyproto.Append(hdr, s.SendProxy, client, dest)
		}
		return append(hdr, pending...)
	})
	cancel()
	if err != nil {
		switch {
		case errors.Is(err, upstream.ErrNoServer):
			f.m.rejNoServer.Inc()
			f.log.Debug("no server up in backend; client closed", "backend", b.Name, "client", client)
		case errors.Is(err, upstream.ErrQueueTimeout):
			f.m.rejQueueTimeout.Inc()
			f.log.Debug("every server at maxconn for queue_timeout; client closed", "backend", b.Name, "client", client)
		case errors.Is(err, upstream.ErrQueueFull):
			f.m.rejQueueFull.Inc()
			f.log.Debug("every server at maxconn and the queue full; client closed", "backend", b.Name, "client", client)
		case ctx.Err() != nil: // forced shutdown while connecting or queued
		default:
			f.m.rejConnect.Inc()
			f.log.Warn("cannot reach any server", "backend", b.Name, "client", client, "err", err)
		}
		c.SetLinger(0)
		f.alog.TCP(&rec)
		return
	}
	defer s.Release()
	defer srv.Close()
	rec.Server, rec.Connect = s.Name, time.Since(start)
	f.m.bytesIn.Add(uint64(len(pending)))
	s.BytesToServer.Add(uint64(len(pending)))
	rec.BytesIn, rec.BytesOut = f.pipe(c, srv, s, b.Config().ServerTimeout.Duration)
	rec.BytesIn += int64(len(pending))
	f.alog.TCP(&rec)
}

// pipe copies both ways until both directions ended or the connection
// has been idle for the client or server timeout, and returns the bytes
// moved from and to the client.
func (f *Frontend) pipe(client, server *net.TCPConn, s *upstream.Server, serverTimeout time.Duration) (in, out int64) {
	var last atomic.Int64 // unix nanos of the last byte moved either way
	last.Store(time.Now().UnixNano())
	var once sync.Once
	abort := func(idle bool) { // first caller closes both sockets and counts
		once.Do(func() {
			if idle {
				f.m.idleClosed.Inc()
			}
			client.SetLinger(0)
			client.Close()
			server.Close()
		})
	}
	// Both directions read in windows of a quarter of the shorter
	// timeout: last is when a window that moved bytes ended, up to one
	// window after the byte, so each direction's check (once per window)
	// closes an idle connection within 1.25x its timeout. With each its
	// own window, a long server_timeout's window delayed the client
	// side's close up to server_timeout/4 more (3s closed at 4.5s).
	window := max(min(f.cfg.ClientTimeout.Duration, serverTimeout)/4, 10*time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		in = f.copy(server, client, f.cfg.ClientTimeout.Duration, window, &last, abort, f.m.bytesIn, s.BytesToServer)
	}()
	out = f.copy(client, server, serverTimeout, window, &last, abort, s.BytesFromServer, f.m.bytesOut)
	<-done
	return in, out
}

// copy moves src to dst with dst.ReadFrom (splice on Linux) in windows
// (see pipe), so idleness is noticed without waking up per chunk. On EOF
// it half-closes dst. It returns the bytes moved.
func (f *Frontend) copy(dst, src *net.TCPConn, idle, window time.Duration, last *atomic.Int64, abort func(idle bool), c1, c2 *metrics.Counter) (total int64) {
	for {
		src.SetReadDeadline(time.Now().Add(window))
		n, err := dst.ReadFrom(src)
		total += n
		if n > 0 {
			last.Store(time.Now().UnixNano())
			c1.Add(uint64(n))
			c2.Add(uint64(n))
		}
		switch {
		case err == nil: // EOF from src: pass the FIN on
			if cerr := dst.CloseWrite(); cerr != nil {
				abort(false)
			}
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			select {
			case <-f.closing:
				if f.forced() {
					abort(false)
					return
				}
			default:
			}
			if time.Since(time.Unix(0, last.Load())) >= idle {
				abort(true)
				return
			}
		default: // reset, or the other direction aborted
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				f.log.Debug("connection ended", "err", err)
			}
			abort(false)
			return
		}
	}
}

// forced reports whether Shutdown's deadline passed; set by Shutdown.
func (f *Frontend) forced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns == nil
}

// Shutdown stops accepting, lets open connections finish until ctx ends,
// then closes what is left. It returns ctx's error if it had to force.
func (f *Frontend) Shutdown(ctx context.Context) error {
	f.stopOnce.Do(func() {
		close(f.closing)
		f.binds.CloseAll()
	})
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	left := len(f.conns)
	for c := range f.conns {
		c.SetLinger(0)
		c.Close()
	}
	if f.conns != nil {
		close(f.force)
	}
	f.conns = nil
	f.mu.Unlock()
	f.log.Warn("shutdown timeout: closed open connections", "count", left)
	<-done
	return ctx.Err()
}

// BeginRetire does nothing: a tcp connection has no answer to end it
// after; Retire lets it finish.
func (f *Frontend) BeginRetire() {}

// Retire stops a frontend a reload replaced or removed: as Shutdown, open
// connections finish until ctx ends.
func (f *Frontend) Retire(ctx context.Context) error { return f.Shutdown(ctx) }

// Stats returns a snapshot of the frontend's counters.
func (f *Frontend) Stats() front.Stats {
	st := f.common.Stats()
	st.Active = f.m.active.Load()
	st.BytesIn, st.BytesOut, st.IdleClosed = f.m.bytesIn.Load(), f.m.bytesOut.Load(), f.m.idleClosed.Load()
	return st
}
