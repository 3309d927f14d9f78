package ingest

// Syslog over TLS (RFC 5425) on tls:// binds.
//
// gnet has no TLS, so a tls:// bind is served by crypto/tls over a
// net.Listener with one goroutine per connection. Each goroutine reads
// into one fixed buffer of max_message_size+16 bytes (the framer never
// needs more than Max+10 to decide), taken from a pool while bytes are
// pending and given back when none are (an idle connection waits in a
// 1-byte read and holds no buffer), frames it with ingest/framing exactly
// as the gnet handler does (RFC 5425 uses octet counting; auto detection
// stays on) and hands frames to Listener.deliver: parse, tap, route,
// enqueue. Enqueue blocks when a sink queue is full, which stops that
// connection's reads: TCP backpressure, as on tcp:// binds.
//
// Admission (allow/deny, maxconn, maxconn_per_ip) is decided on the raw TCP connection
// before the handshake, so a refused client costs no crypto. A handshake
// that fails or does not finish within header_timeout (a client without
// an acceptable certificate under tls_client_ca, a plaintext sender, a
// port scanner) is counted as rejected{reason="tls_handshake"} and logged
// with the peer and the reason, one line a second per bind; a peer that
// closed before sending a byte (a TCP health check, a port scan) only at
// debug level.
//
// Certificates are served through tls.Config.GetCertificate from an
// atomic pointer, and the per-handshake config (client CAs, minimum
// version) through GetConfigForClient from another: Update (config reload,
// SIGHUP) swaps both, so new handshakes see new files while open
// connections keep the session they negotiated.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"wharf/conf"
	"wharf/ingest/framing"
	"wharf/internal/logthrottle"
	"wharf/route"
)

// tlsDefaultHandshakeTimeout applies when header_timeout is unset (configs
// built in code; Load fills conf.DefaultTLSHandshakeTimeout).
const tlsDefaultHandshakeTimeout = conf.DefaultTLSHandshakeTimeout

// tlsBind is the state of a tls:// bind. cert and config are swapped by
// Update; conns is guarded by mu and lets Stop close every connection.
type tlsBind struct {
	cert      atomic.Pointer[tls.Certificate]
	config    atomic.Pointer[tls.Config] // per handshake: CAs, versions
	handshake atomic.Int64               // timeout, ns
	base      *tls.Config                // handed to tls.Server; defers to config

	ln     net.Listener
	wg     sync.WaitGroup // accept loop and connection goroutines
	states sync.Map       // raw net.Conn -> *tlsConn after the handshake, for Drain
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	// closing is set by Stop before it closes the connections, so the
	// goroutines do not count their forced close as a timeout.
	closing atomic.Bool
	// stop is closed by Stop: connections held back by a rate limit stop
	// waiting for tokens.
	stop chan struct{}
	// failWarn throttles the "TLS handshake failed" warning, frameWarn
	// the frame_timeout one (tls:// binds; relp+tls:// has its own).
	failWarn, frameWarn logthrottle.Throttle
}

// newTLSBind loads the frontend's certificate, key and client CA.
func newTLSBind(fe *conf.Frontend) (*tlsBind, error) {
	t := &tlsBind{conns: map[net.Conn]struct{}{}, stop: make(chan struct{})}
	if err := t.load(fe); err != nil {
		return nil, err
	}
	t.base = &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.config.Load(), nil },
	}
	return t, nil
}

// load reads the TLS files of fe and swaps them in; on error nothing changes.
func (t *tlsBind) load(fe *conf.Frontend) error {
	if fe.TLSCert == "" || fe.TLSKey == "" {
		return fmt.Errorf("ingest: frontend %q: a tls:// bind needs tls_cert and tls_key", fe.Name)
	}
	cert, err := conf.LoadKeyPair(fe.TLSCert, fe.TLSKey)
	if err != nil {
		return fmt.Errorf("ingest: frontend %q: tls: %w", fe.Name, err)
	}
	minVersion, err := conf.ParseTLSVersion(fe.TLSMinVersion)
	if err != nil {
		return fmt.Errorf("ingest: frontend %q: tls_min_version: %w", fe.Name, err)
	}
	ciphers, _, err := conf.ParseTLSCiphers(fe.TLSCiphers)
	if err != nil {
		return fmt.Errorf("ingest: frontend %q: tls_ciphers: %w", fe.Name, err)
	}
	cfg := &tls.Config{
		MinVersion:     minVersion,
		CipherSuites:   ciphers,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.cert.Load(), nil },
	}
	if fe.TLSClientCA != "" {
		pool, err := conf.LoadCertPool(fe.TLSClientCA)
		if err != nil {
			return fmt.Errorf("ingest: frontend %q: tls_client_ca: %w", fe.Name, err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	hs := fe.HeaderTimeout.Duration
	if hs <= 0 {
		hs = tlsDefaultHandshakeTimeout
	}
	t.cert.Store(&cert)
	t.config.Store(cfg)
	t.handshake.Store(int64(hs))
	return nil
}

// updateTLS reloads the certificate files on a config reload or SIGHUP. A
// file that fails to load leaves the running certificate in place (the
// bind keeps serving) and is logged; validation has already checked them,
// so this is a file replaced badly between check and load.
func (l *Listener) updateTLS(fe *conf.Frontend) {
	if err := l.tls.load(fe); err != nil {
		l.log.Error("TLS files not reloaded; the previous certificate stays in use", "err", err)
		return
	}
	l.log.Info("TLS certificate loaded", "cert", fe.TLSCert)
}

// startTLS opens the TCP socket and starts the accept loop.
func (l *Listener) startTLS() error {
	ln, err := l.listenStream()
	if err != nil {
		return err
	}
	l.tls.ln = ln
	l.tls.wg.Add(1)
	go func() {
		defer l.tls.wg.Done()
		l.acceptLoop(ln, func(c net.Conn, peer netip.AddrPort, _ *settings) bool {
			if !l.tls.track(c) { // Stop is closing everything
				return false
			}
			l.tls.wg.Add(1)
			go l.serveTLS(c, peer)
			return true
		})
	}()
	return nil
}

// track registers an open connection; false once Stop began.
func (t *tlsBind) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *tlsBind) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// tlsBuffers holds read buffers of closed connections for reuse; each
// buffer is max_message_size+16 bytes of the settings it was made for.
var tlsBuffers sync.Pool // *[]byte

func getTLSBuffer(size int) *[]byte {
	if p, ok := tlsBuffers.Get().(*[]byte); ok && len(*p) == size {
		return p
	}
	b := make([]byte, size)
	return &b
}

// serveTLS runs one connection: handshake, then read, frame and deliver
// until the peer closes, a timeout fires or Stop closes the socket.
func (l *Listener) serveTLS(raw net.Conn, peer netip.AddrPort) {
	defer l.tls.wg.Done()
	defer l.conns.Add(-1)
	defer l.perIP.Release(peer.Addr())
	defer l.tls.untrack(raw)
	defer raw.Close()

	hc := &handshakeConn{Conn: raw}
	tc := tls.Server(hc, l.tls.base)
	_ = raw.SetDeadline(time.Now().Add(time.Duration(l.tls.handshake.Load())))
	if err := tc.Handshake(); err != nil {
		if !l.tls.closing.Load() {
			l.handshakeFailed(l.tls, hc, peer, err)
		}
		return
	}
	_ = raw.SetDeadline(time.Time{})

	s := l.settings.Load()
	c := &tlsConn{l: l, raw: raw, tc: tc, peer: peer, fr: framing.Framer{Mode: s.mode, Max: s.max, Truncate: s.truncate}}
	defer c.release()
	l.tls.states.Store(raw, c)
	defer l.tls.states.Delete(raw)
	for {
		s = l.settings.Load()
		idleHit := c.prepare(s)
		c.waiting.Store(true)
		k, err := c.read(s)
		c.waiting.Store(false)
		if k > 0 {
			c.lastRead.Store(monoNow())
			c.consume(s, k)
		}
		if err != nil {
			c.closed(err, idleHit)
			return
		}
	}
}

// tlsConn is one tls:// connection's state between reads.
type tlsConn struct {
	l    *Listener
	raw  net.Conn
	tc   *tls.Conn
	peer netip.AddrPort
	fr   framing.Framer
	// bp is the read buffer, held only while bytes are pending: an idle
	// connection blocks in a 1-byte read and holds none, so thousands of
	// quiet senders do not pin max_message_size each.
	bp           *[]byte
	n            int // bytes held at the start of *bp
	first        [1]byte
	out          outbox // this connection's messages of one read, per destination
	partialSince time.Time
	held         bool        // the next message waits for rate-limit tokens
	hold         *time.Timer // sleeps while held, made on first use
	// waiting is set while the goroutine waits in Read; lastRead is when
	// a Read last returned bytes (Unix ns). Drain reads both.
	waiting  atomic.Bool
	lastRead atomic.Int64
}

// release gives back what the connection holds when it ends.
func (c *tlsConn) release() {
	if c.bp != nil {
		tlsBuffers.Put(c.bp)
	}
	if c.hold != nil {
		c.hold.Stop()
	}
}

// prepare applies settings s (a reload may change them between reads) and
// sets the read deadline. It reports whether the deadline is the idle one
// rather than the frame one.
func (c *tlsConn) prepare(s *settings) (idleHit bool) {
	if c.bp != nil && s.max+16 > len(*c.bp) { // max_message_size grew on reload
		nb := getTLSBuffer(s.max + 16)
		copy(*nb, (*c.bp)[:c.n])
		tlsBuffers.Put(c.bp)
		c.bp = nb
	}
	c.fr.Max, c.fr.Truncate = s.max, s.truncate
	// Deadlines stand in for the gnet ticker's sweep: idle from now,
	// frame from when the pending partial frame started.
	var deadline time.Time
	if s.idle > 0 {
		deadline, idleHit = time.Now().Add(s.idle), true
	}
	if s.frame > 0 && !c.partialSince.IsZero() {
		if d := c.partialSince.Add(s.frame); deadline.IsZero() || d.Before(deadline) {
			deadline, idleHit = d, false
		}
	}
	_ = c.raw.SetReadDeadline(deadline)
	return idleHit
}

// read reads into the buffer, taking one from the pool when the first
// byte arrives.
func (c *tlsConn) read(s *settings) (int, error) {
	if c.bp != nil {
		return c.tc.Read((*c.bp)[c.n:])
	}
	k, err := c.tc.Read(c.first[:])
	if k > 0 {
		c.bp = getTLSBuffer(s.max + 16)
		(*c.bp)[0] = c.first[0]
	}
	return k, err
}

// consume frames and delivers the k bytes just read with what was
// pending, keeps the partial frame at the front of the buffer and gives
// the buffer back when nothing is pending. Over a rate limit it reads
// nothing until the held messages passed, so the kernel's window closes
// on the sender.
func (c *tlsConn) consume(s *settings, k int) {
	l, buf := c.l, *c.bp
	now := time.Now()
	c.n += k
	var fe *route.Frontend
	if tab := l.routes.Load(); tab != nil {
		fe = tab.Frontend(l.frontend)
	}
	off, progress, wait := l.framesTo(&c.out, s, fe, &c.fr, buf[:c.n], now.UnixNano(), c.peer, &c.held)
	c.n = copy(buf, buf[off:c.n])
	for wait > 0 {
		if c.hold == nil {
			c.hold = time.NewTimer(time.Hour)
		}
		if !l.waitTLS(c.hold, wait) { // Stop: deliver what was read
			off, _, _ = l.framesTo(&c.out, s.closing(), fe, &c.fr, buf[:c.n], time.Now().UnixNano(), c.peer, &c.held)
			c.n = copy(buf, buf[off:c.n])
			break
		}
		s = l.settings.Load()
		c.fr.Max, c.fr.Truncate = s.max, s.truncate
		now = time.Now()
		var p bool
		off, p, wait = l.framesTo(&c.out, s, fe, &c.fr, buf[:c.n], now.UnixNano(), c.peer, &c.held)
		c.n = copy(buf, buf[off:c.n])
		progress = progress || p
	}
	switch {
	case c.n == 0:
		c.partialSince = time.Time{}
	case progress || c.partialSince.IsZero():
		c.partialSince = now
	}
	if c.n == len(buf) { // cannot happen: the framer decides within Max+10
		l.reason("malformed", framing.ReasonOversize).Inc()
		l.reason("dropped", "framing_error").Inc()
		c.n = 0
		c.fr.Reset()
	}
	if c.n == 0 {
		tlsBuffers.Put(c.bp)
		c.bp = nil
	}
}

// closed counts why the connection ended (read error err).
func (c *tlsConn) closed(err error, idleHit bool) {
	l := c.l
	var ne net.Error
	switch {
	case l.tls.closing.Load():
	case errors.As(err, &ne) && ne.Timeout():
		if idleHit {
			l.reason("closed", "idle_timeout").Inc()
		} else {
			l.frameTimedOut(&l.tls.frameWarn, c.peer, l.settings.Load())
		}
	}
	if c.n > 0 {
		l.reason("dropped", "incomplete_frame_at_close").Inc()
	}
}

// handshakeConn is the raw connection under a TLS server. It counts what
// the peer sent, so a peer that closed before its first byte (a TCP
// health check, a port scan) is told apart from a TLS client that failed.
// The count is read once the handshake has ended.
type handshakeConn struct {
	net.Conn
	read int64
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read += int64(n)
	return n, err
}

// handshakeFailed counts a failed TLS handshake on a tls:// or
// relp+tls:// bind (t its TLS state) and logs it, one line a second per
// bind: an operator debugging a sender that cannot connect finds the
// peer and the reason at the default level (a client that offers only
// TLS 1.2 to tls_min_version 1.3, a certificate the client refuses,
// plaintext syslog). A peer that closed without sending anything tried
// no TLS at all and is logged at debug level only.
func (l *Listener) handshakeFailed(t *tlsBind, hc *handshakeConn, peer netip.AddrPort, err error) {
	l.reason("rejected", "tls_handshake").Inc()
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	if hc.read == 0 && !timeout {
		l.log.Debug("TLS handshake failed: the peer closed before sending anything (a TCP health check or port scan?)", "peer", peer, "err", err)
		return
	}
	reason := err.Error()
	if timeout {
		reason = fmt.Sprintf("no complete handshake within header_timeout %v", time.Duration(t.handshake.Load()))
	}
	if ok, n := t.failWarn.Allow(time.Now(), time.Second); ok {
		l.log.Warn("TLS handshake failed; connection closed", "peer", peer, "reason", reason, "suppressed", n-1)
	}
}

// stopTLS closes the listener, then every connection, and waits for the
// connection goroutines to finish what they read (and its enqueues)
// until ctx ends.
func (l *Listener) stopTLS(ctx context.Context) error {
	if l.tls.ln == nil { // never started
		return nil
	}
	l.tls.mu.Lock()
	l.tls.closing.Store(true)
	close(l.tls.stop)
	err := l.tls.ln.Close()
	for c := range l.tls.conns {
		c.Close()
	}
	l.tls.mu.Unlock()
	done := make(chan struct{})
	go func() { l.tls.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("ingest: stop tls://%s: %w", l.addr, ctx.Err())
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ingest: stop tls://%s: %w", l.addr, err)
	}
	return nil
}
