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
// Admission (allow/deny, maxconn) is decided on the raw TCP connection
// before the handshake, so a refused client costs no crypto. A handshake
// that fails or does not finish within header_timeout (a client without
// an acceptable certificate under tls_client_ca, a plaintext sender, a
// port scanner) is counted as rejected{reason="tls_handshake"}.
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

	ln    net.Listener
	wg    sync.WaitGroup // accept loop and connection goroutines
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// closing is set by Stop before it closes the connections, so the
	// goroutines do not count their forced close as a timeout.
	closing atomic.Bool
	// stop is closed by Stop: connections held back by a rate limit stop
	// waiting for tokens.
	stop chan struct{}
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
	cfg := &tls.Config{
		MinVersion:     minVersion,
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
	lc := net.ListenConfig{KeepAlive: time.Minute} // finds senders that vanished without a FIN
	ln, err := lc.Listen(context.Background(), "tcp", l.bind.Addr)
	if err != nil {
		return fmt.Errorf("ingest: frontend %q: bind tls://%s: %w (is another process listening there? ports below 1024 need CAP_NET_BIND_SERVICE)", l.frontend, l.bind.Addr, err)
	}
	l.tls.ln = ln
	l.addr = ln.Addr().String()
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		l.port = uint16(a.Port)
	}
	l.tls.wg.Add(1)
	go l.acceptTLS()
	return nil
}

// acceptTLS admits connections until the listener closes.
func (l *Listener) acceptTLS() {
	defer l.tls.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.tls.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait a little instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		var peer netip.AddrPort
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			peer = a.AddrPort()
		}
		s := l.settings.Load()
		if !s.acl.Permit(peer.Addr()) {
			l.reason("rejected", "acl").Inc()
			c.Close()
			continue
		}
		if s.maxConn > 0 && l.conns.Load() >= s.maxConn {
			l.reason("rejected", "maxconn").Inc()
			c.Close()
			continue
		}
		if !l.tls.track(c) { // Stop is closing everything
			c.Close()
			return
		}
		l.conns.Add(1)
		l.connsTotal.Inc()
		l.tls.wg.Add(1)
		go l.serveTLS(c, peer)
	}
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
	defer l.tls.untrack(raw)
	defer raw.Close()

	tc := tls.Server(raw, l.tls.base)
	_ = raw.SetDeadline(time.Now().Add(time.Duration(l.tls.handshake.Load())))
	if err := tc.Handshake(); err != nil {
		if !l.tls.closing.Load() {
			l.reason("rejected", "tls_handshake").Inc()
			l.log.Debug("TLS handshake failed", "peer", peer, "err", err)
		}
		return
	}
	_ = raw.SetDeadline(time.Time{})

	s := l.settings.Load()
	fr := framing.Framer{Mode: s.mode, Max: s.max, Truncate: s.truncate}
	// The read buffer is held only while bytes are pending: an idle
	// connection blocks in a 1-byte read and holds none, so thousands of
	// quiet senders do not pin max_message_size each.
	var bp *[]byte
	defer func() {
		if bp != nil {
			tlsBuffers.Put(bp)
		}
	}()
	var out outbox // this connection's messages of one read, per destination
	var first [1]byte
	n := 0 // bytes held at the start of *bp
	var partialSince time.Time
	var held bool        // the next message waits for rate-limit tokens
	var hold *time.Timer // sleeps while held, made on first use
	defer func() {
		if hold != nil {
			hold.Stop()
		}
	}()
	for {
		s = l.settings.Load()
		if bp != nil && s.max+16 > len(*bp) { // max_message_size grew on reload
			nb := getTLSBuffer(s.max + 16)
			copy(*nb, (*bp)[:n])
			tlsBuffers.Put(bp)
			bp = nb
		}
		fr.Max, fr.Truncate = s.max, s.truncate
		// Deadlines stand in for the gnet ticker's sweep: idle from now,
		// frame from when the pending partial frame started.
		var deadline time.Time
		idleHit := false
		if s.idle > 0 {
			deadline, idleHit = time.Now().Add(s.idle), true
		}
		if s.frame > 0 && !partialSince.IsZero() {
			if d := partialSince.Add(s.frame); deadline.IsZero() || d.Before(deadline) {
				deadline, idleHit = d, false
			}
		}
		_ = raw.SetReadDeadline(deadline)

		var k int
		var err error
		if bp == nil {
			if k, err = tc.Read(first[:]); k > 0 {
				bp = getTLSBuffer(s.max + 16)
				(*bp)[0] = first[0]
			}
		} else {
			k, err = tc.Read((*bp)[n:])
		}
		if k > 0 {
			buf := *bp
			now := time.Now()
			n += k
			var fe *route.Frontend
			if tab := l.routes.Load(); tab != nil {
				fe = tab.Frontend(l.frontend)
			}
			off, progress, wait := l.framesTo(&out, s, fe, &fr, buf[:n], now.UnixNano(), peer, &held)
			n = copy(buf, buf[off:n])
			// Over a rate limit: read nothing until the held messages
			// passed, so the kernel's window closes on the sender.
			for wait > 0 {
				if hold == nil {
					hold = time.NewTimer(time.Hour)
				}
				if !l.waitTLS(hold, wait) { // Stop: deliver what was read
					off, _, _ = l.framesTo(&out, s.closing(), fe, &fr, buf[:n], time.Now().UnixNano(), peer, &held)
					n = copy(buf, buf[off:n])
					break
				}
				s = l.settings.Load()
				fr.Max, fr.Truncate = s.max, s.truncate
				now = time.Now()
				var p bool
				off, p, wait = l.framesTo(&out, s, fe, &fr, buf[:n], now.UnixNano(), peer, &held)
				n = copy(buf, buf[off:n])
				progress = progress || p
			}
			switch {
			case n == 0:
				partialSince = time.Time{}
			case progress || partialSince.IsZero():
				partialSince = now
			}
			if n == len(buf) { // cannot happen: the framer decides within Max+10
				l.reason("malformed", framing.ReasonOversize).Inc()
				l.reason("dropped", "framing_error").Inc()
				n = 0
				fr.Reset()
			}
			if n == 0 {
				tlsBuffers.Put(bp)
				bp = nil
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case l.tls.closing.Load():
		case errors.As(err, &ne) && ne.Timeout():
			if idleHit {
				l.reason("closed", "idle_timeout").Inc()
			} else {
				l.reason("closed", "frame_timeout").Inc()
			}
		}
		if n > 0 {
			l.reason("dropped", "incomplete_frame_at_close").Inc()
		}
		return
	}
}

// frames is framesTo without an outbox: each message is enqueued on its
// routes at once (flushHeld at close, tests).
func (l *Listener) frames(s *settings, fe *route.Frontend, fr *framing.Framer, buf []byte, now int64, peer netip.AddrPort, held *bool) (off int, progress bool, wait int64) {
	return l.framesTo(nil, s, fe, fr, buf, now, peer, held)
}

// framesTo splits buf into frames and delivers them, for tcp://
// (OnTraffic) and tls:// binds: into out, which it flushes before it
// returns (one EnqueueBatch per destination and call). It returns how
// many bytes were consumed and whether a whole frame was among them. With
// rate limits it stops before the first message that finds no token,
// leaving fr as it was before that message, and returns how long until
// one is due (wait > 0, ns); held tracks that message so it is counted as
// rate limited once.
func (l *Listener) framesTo(out *outbox, s *settings, fe *route.Frontend, fr *framing.Framer, buf []byte, now int64, peer netip.AddrPort, held *bool) (off int, progress bool, wait int64) {
	var shadow framing.Framer // fr as it will be if the next message passes
	// Received counters are added once per read, not per message: both
	// event loops of a bind share them, and an atomic add per message
	// would bounce their cache line between the cores.
	var msgs, bytes uint64
	defer func() {
		if msgs > 0 {
			l.received.Add(msgs)
			l.bytes.Add(bytes)
			if out != nil {
				out.flush(l.tcp)
			}
		}
	}()
	for off < len(buf) {
		next := fr
		if s.rate != nil {
			shadow = *fr
			next = &shadow
		}
		frame, n, status := next.Next(buf[off:])
		if s.rate != nil {
			// NeedMore costs no token, but may have skipped bytes (the
			// rest of an oversize frame): its state is kept as well.
			if status != framing.NeedMore {
				switch wait = s.rate.take(peer.Addr(), now, !*held); {
				case wait == 0:
					*held = false
				case s.rate.closing:
					// Over the debt bound while closing: dropped, counted.
					*fr = shadow
					off += n
					wait = 0
					continue
				default:
					*held = true
					return off, progress, wait
				}
			}
			*fr = shadow
		}
		off += n
		switch status {
		case framing.OK:
			progress = true
			l.deliver(out, s, fe, frame, now, peer, nil)
			msgs, bytes = msgs+1, bytes+uint64(len(frame))
			continue
		case framing.Oversize:
			l.reason("malformed", "oversize").Inc()
			if frame != nil {
				l.truncated.Inc()
				l.deliver(out, s, fe, frame, now, peer, nil)
				msgs, bytes = msgs+1, bytes+uint64(len(frame))
			} else {
				l.reason("dropped", "oversize").Inc()
				l.reject("oversize", peer, buf[off-n:off]) // the part skipped in this read
			}
			continue
		case framing.Invalid:
			l.reason("malformed", fr.Reason()).Inc()
			l.reason("dropped", "framing_error").Inc()
			l.reject("framing_error", peer, buf[off-n:off])
			if n > 0 {
				continue
			}
		}
		break // NeedMore, or no progress
	}
	return off, progress, 0
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
