// Package syslog is the sink that forwards messages to downstream syslog
// collectors over TCP (RFC6587 octet counting or LF framing), TLS (RFC
// 5425) or UDP, with failover across an ordered list of servers.
package syslog

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"wharf/conf"
	"wharf/internal/ascii"
	"wharf/message"
	"wharf/relp"
	"wharf/sinks"
)

const (
	// FailbackInterval is how often, while sending to a later server, the
	// first server is tried again.
	FailbackInterval = 30 * time.Second
	// serverBackoff is the first pause after a server failed; it doubles
	// per consecutive failure up to serverMaxBackoff, so a dead server is
	// not dialled on every batch retry.
	serverBackoff    = 500 * time.Millisecond
	serverMaxBackoff = 15 * time.Second
	// replayBytes is how much of what was last written (whole batches,
	// the fewest that reach it) is written again after a connection died
	// under it (see send), beyond what wharf's own kernel still held
	// unacknowledged: what a collector that reads promptly can hold
	// unread when it dies, a few batches written back to back; replaying
	// only the last one or two batches still lost 115-575 messages over 80
	// resets (collector resetting after 256 KiB per connection).
	replayBytes = 1 << 20
	// maxReplay bounds the batches kept for it: one writev takes 1024
	// buffers. 64 kept far less than replayBytes of small batches (a low
	// rate, or the first batches after a reconnect), and a collector
	// resetting after every 8 KiB lost what slid out unread (audit: 380
	// of 196,676 at 5k msg/s over a 20 s flap; TestFlappingCollectorLosesNothing).
	maxReplay = 1024
	// smallKept is the size of the chunks small batches (up to a
	// quarter of it) are copied into for the replay (see keep), so 1024
	// kept batches hold about what they are, not 1024 framing buffers.
	smallKept = 64 << 10
	// outqEvery is how many bytes are written between two looks at the
	// kernel's send queue for the replay (one ioctl per batch cost the
	// relay 1-3% of its CPU).
	outqEvery = 256 << 10
	// maxDatagram is the largest UDP payload over IPv4; longer encoded
	// messages are truncated (a collector would drop them otherwise).
	maxDatagram = 65507
)

// Framing is how messages are delimited on a TCP stream.
type Framing uint8

// TCP framings (conf key out_framing).
const (
	// FramingOctetCounting is RFC6587 3.4.1: "LEN SP MSG". Messages may
	// contain newlines.
	FramingOctetCounting Framing = iota
	// FramingLF terminates each message with "\n" (RFC6587 3.4.2). A
	// newline inside a message splits it at the collector.
	FramingLF
)

// server is one downstream collector and its failure state. Only touched
// with Syslog.mu held.
type server struct {
	url       string      // as configured, for messages
	network   string      // "tcp" or "udp"
	addr      string      // host:port
	tls       *tls.Config // tls:// servers: TCP, then a TLS handshake
	relp      bool        // relp:// and relp+tls:// servers (relp.go)
	downUntil time.Time
	backoff   time.Duration
	stats     *serverStats // read without mu (Servers)
}

// serverStats mirror a server's state for readers that must not wait
// for mu (a write holds it for up to write_timeout).
type serverStats struct {
	failures  atomic.Uint64
	downUntil atomic.Int64 // Unix ns
}

// ServerState is one downstream server of a syslog sink as last seen.
type ServerState struct {
	URL string
	// Active is the server batches go to now.
	Active bool
	// Down is set while the server is skipped after a failed dial or
	// write (its backoff, up to 30 s).
	Down bool
	// Failures counts failed dials and writes.
	Failures uint64
}

// Syslog forwards batches to the first working server of its list.
//
// Concurrency: Write (one Runner goroutine) and Check serialise on mu;
// Close follows the Sink contract. Failovers may be read at any time.
type Syslog struct {
	name         string
	enc          sinks.Encoding
	framing      Framing
	dialTimeout  time.Duration
	writeTimeout time.Duration
	window       int // relp_window: unanswered RELP messages at most
	failback     time.Duration
	log          *slog.Logger

	mu      sync.Mutex
	servers []server
	cur     int      // index of the server conn is connected to
	conn    net.Conn // nil when not connected
	// nowBudget is what WriteNow may still write before the send queue
	// could pass nowBytes (it only shrinks on its own); 0 after a Write
	// or a new connection.
	nowBudget    int
	nextFailback time.Time
	buf          []byte // reused: one batch (TCP) or one message (UDP)
	probe        [1]byte
	// prev holds the last batches written over TCP, framed, oldest first,
	// the fewest reaching replayBytes (prevBytes in all); replay says they
	// are written again, before the next batch, on the next connection:
	// set when a connection they went out on turned out dead (see send).
	prev      [][]byte
	prevBytes int
	spare     [][]byte // framing buffers of batches dropped from prev
	// prevChunk says which of prev are smallKept chunks holding copies
	// of small batches; chunks are the dropped ones, for reuse.
	prevChunk []bool
	chunks    [][]byte
	replay    bool
	// replayed says prev was replayed and nothing written since: Probe
	// does not replay it again on another idle reset.
	replayed bool
	// outq is the send queue's unacknowledged bytes at the last look,
	// sinceOutq what was written since (see send).
	outq, sinceOutq int

	// RELP (relp.go): the batch being written, the unanswered messages,
	// an encoding buffer. The session is conn itself (a *relpConn).
	relpBatch  relpBatch
	relpWindow []relpInFlight
	ebuf       []byte

	relpAcks, relpResent atomic.Uint64
	relpInFlight         atomic.Int64

	failovers, replays atomic.Uint64
	active             atomic.Int32 // cur, for Servers
}

// New builds a syslog sink from its config section, with defaults
// applied and validated (sinks.New does both). Servers are tried in
// order. It does not connect.
func New(name string, cfg *conf.Sink) (sinks.Sink, error) {
	c, ok := cfg.Options.(*Config)
	if !ok {
		return nil, fmt.Errorf("sinks/syslog: sink %q: options are %T, want *syslog.Config", name, cfg.Options)
	}
	s := &Syslog{
		name:         name,
		dialTimeout:  c.DialTimeout.Duration,
		writeTimeout: c.WriteTimeout.Duration,
		window:       cmp.Or(c.RELPWindow, relp.DefaultWindow),
		failback:     FailbackInterval,
		log:          slog.Default().With("sink", name),
		buf:          make([]byte, 0, 64<<10),
	}
	var err error
	if s.enc, err = sinks.ParseEncoding(cfg.Encoding); err != nil {
		return nil, fmt.Errorf("sinks/syslog: sink %q: encoding: %w", name, err)
	}
	switch c.OutFraming {
	case "octet-counting":
	case "lf":
		s.framing = FramingLF
	default:
		return nil, fmt.Errorf("sinks/syslog: sink %q: out_framing %q: want octet-counting or lf", name, c.OutFraming)
	}
	if len(c.Servers) == 0 {
		return nil, fmt.Errorf("sinks/syslog: sink %q: servers is empty; set servers = [\"tcp://host:514\"]", name)
	}
	var base *tls.Config
	for i, u := range c.Servers {
		scheme, addr, ok := strings.Cut(u, "://")
		if !ok || (scheme != "tcp" && scheme != "udp" && scheme != "tls" && scheme != "relp" && scheme != "relp+tls") {
			return nil, fmt.Errorf("sinks/syslog: sink %q: servers[%d] %q: want tcp://host:port, tls://host:port, udp://host:port, relp://host:port or relp+tls://host:port", name, i, u)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return nil, fmt.Errorf("sinks/syslog: sink %q: servers[%d] %q: want tcp://host:port, tls://host:port, udp://host:port, relp://host:port or relp+tls://host:port", name, i, u)
		}
		srv := server{url: u, network: scheme, addr: addr}
		if scheme == "relp" || scheme == "relp+tls" {
			srv.network, srv.relp = "tcp", true
		}
		if scheme == "tls" || scheme == "relp+tls" {
			if base == nil {
				if base, err = clientTLS(&c.ClientTLS); err != nil {
					return nil, fmt.Errorf("sinks/syslog: sink %q: %w", name, err)
				}
			}
			srv.network = "tcp"
			srv.tls = base.Clone()
			if srv.tls.ServerName == "" {
				srv.tls.ServerName = host
			}
		}
		srv.stats = &serverStats{}
		s.servers = append(s.servers, srv)
	}
	return s, nil
}

// clientTLS builds the TLS client config shared by a sink's tls:// servers:
// tls_ca (else the system roots) verifies the server, tls_cert/tls_key is
// the client certificate for collectors that require one, tls_ciphers the
// TLS 1.2 suites offered. Files are read
// once, when the sink is built (a config reload rebuilds changed sinks).
func clientTLS(cfg *conf.ClientTLS) (*tls.Config, error) {
	ciphers, err := cfg.CipherSuites()
	if err != nil {
		return nil, fmt.Errorf("tls_ciphers: %w", err)
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       ciphers, // ECDHE AEAD only unless tls_ciphers says more
		ServerName:         cfg.TLSServerName,
		InsecureSkipVerify: cfg.TLSInsecureSkipVerify, // documented as for tests only; wharf check warns
	}
	if cfg.TLSCA != "" {
		pool, err := conf.LoadCertPool(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		c.RootCAs = pool
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("set both tls_cert and tls_key, or neither")
	}
	if cfg.TLSCert != "" {
		pair, err := conf.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// Failovers counts switches from one server to another (including
// failing back to the first).
func (s *Syslog) Failovers() uint64 { return s.failovers.Load() }

// Replays counts batches written a second time because the connection
// they went out on was found closed or reset by the collector.
func (s *Syslog) Replays() uint64 { return s.replays.Load() }

// Servers returns each server's state, in configured order. It does not
// wait for a write in progress: safe to call at any time.
func (s *Syslog) Servers() []ServerState {
	out := make([]ServerState, len(s.servers)) // the list never changes after New
	for i := range s.servers {
		out[i] = s.ServerState(i)
	}
	return out
}

// ServerState returns the state of the i-th configured server (0 <= i <
// len(Servers())), like Servers.
func (s *Syslog) ServerState(i int) ServerState {
	srv := &s.servers[i]
	return ServerState{
		URL: srv.url, Active: i == int(s.active.Load()),
		Down:     srv.stats.downUntil.Load() > time.Now().UnixNano(),
		Failures: srv.stats.failures.Load(),
	}
}

// Server returns the URL of the server currently in use.
func (s *Syslog) Server() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers[s.cur].url
}

// Write sends the batch to the current server; on a dial or write error it
// moves on to the next server in order (wrapping around once) and sends
// the whole batch there. A successful write of every byte counts as
// accepted: plain syslog has no acknowledgements, so bytes in flight when
// a collector dies may be lost or, after a retry, duplicated.
func (s *Syslog) Write(ctx context.Context, batch []*message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	reuse, err := s.write(ctx, batch, nil)
	if err == nil && reuse != nil {
		s.buf = reuse
	}
	return err
}

// WriteFramed is Write for bytes framed by AppendFrame (sinks.Framer:
// a runner over this sink queues bytes when every server is TCP or TLS).
// What it keeps of b for a replay it returns other storage for.
func (s *Syslog) WriteFramed(ctx context.Context, b []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(ctx, nil, b)
}

// Framed reports whether every server takes a stream of frames (plain
// TCP or TLS): RELP answers each message, UDP sends each as a datagram.
func (s *Syslog) Framed() bool {
	for i := range s.servers {
		if srv := &s.servers[i]; srv.relp || srv.network != "tcp" {
			return false
		}
	}
	return true
}

// PassesOctetFrames reports whether AppendFrame is octet counting of the
// bytes as received (sinks.OctetPasser): encoding raw with out_framing
// octet-counting, so a listener may queue a message's frame as it read
// it.
func (s *Syslog) PassesOctetFrames() bool {
	return s.framing == FramingOctetCounting && s.enc == sinks.EncodingRaw
}

// FrameKey names the sink's encoding and framing (sinks.Framer).
func (s *Syslog) FrameKey() string {
	return fmt.Sprintf("syslog/%d/%d", s.enc, s.framing)
}

// write is Write for a batch or, when framed is not nil, for bytes
// already framed (the batch is then nil). On success it returns the
// storage for the next batch's frames (see keep). Called with mu held.
func (s *Syslog) write(ctx context.Context, batch []*message.Message, framed []byte) ([]byte, error) {
	now := time.Now()
	if s.cur != 0 && !now.Before(s.nextFailback) {
		s.tryFailback(ctx, now)
	}
	var errs []error
	n := len(s.servers)
	for k := 0; k < n; k++ {
		i := (s.cur + k) % n
		srv := &s.servers[i]
		if i != s.cur || s.conn == nil {
			if wait := time.Until(srv.downUntil); wait > 0 {
				errs = append(errs, fmt.Errorf("server %s: skipped for %s after a failure", srv.url, wait.Round(time.Millisecond)))
				continue
			}
		}
		if i != s.cur {
			s.switchTo(i)
		}
		reuse, err := s.send(ctx, srv, batch, framed)
		if err == nil {
			srv.backoff = 0
			return reuse, nil
		}
		s.failed(srv)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sinks/syslog: sink %q: server %s: %w", s.name, srv.url, err)
		}
		serr := &serverError{url: srv.url, err: err}
		if k < n-1 {
			s.log.Warn(fmt.Sprintf("sinks/syslog: sink %q: %v; trying next server", s.name, serr))
		}
		errs = append(errs, serr)
	}
	return nil, fmt.Errorf("sinks/syslog: sink %q: no server accepted the batch: %w", s.name, errors.Join(errs...))
}

// switchTo makes server i current; the caller has closed or will open conn.
func (s *Syslog) switchTo(i int) {
	s.closeConn()
	from := s.servers[s.cur].url
	s.cur = i
	s.active.Store(int32(i))
	s.failovers.Add(1)
	if i != 0 {
		s.nextFailback = time.Now().Add(s.failback)
	}
	s.log.Warn(fmt.Sprintf("sinks/syslog: sink %q: switching from server %s to %s", s.name, from, s.servers[i].url))
}

// tryFailback dials the first server; if that works it becomes current.
func (s *Syslog) tryFailback(ctx context.Context, now time.Time) {
	s.nextFailback = now.Add(s.failback)
	srv := &s.servers[0]
	if now.Before(srv.downUntil) {
		return
	}
	c, err := s.dial(ctx, srv)
	if err != nil {
		s.markDown(srv)
		return
	}
	s.switchTo(0)
	s.conn = c
	srv.backoff = 0
}

func (s *Syslog) markDown(srv *server) {
	if srv.backoff == 0 {
		srv.backoff = serverBackoff
	} else {
		srv.backoff = min(srv.backoff*2, serverMaxBackoff)
	}
	srv.downUntil = time.Now().Add(srv.backoff)
	srv.stats.downUntil.Store(srv.downUntil.UnixNano())
	srv.stats.failures.Add(1)
}

func (s *Syslog) closeConn() {
	s.nowBudget = 0
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func (s *Syslog) dial(ctx context.Context, srv *server) (net.Conn, error) {
	d := net.Dialer{Timeout: s.dialTimeout}
	c, err := d.DialContext(ctx, srv.network, srv.addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// No Nagle: each batch is one write already, and holding a small
		// one until the previous is acknowledged (up to the receiver's
		// delayed-ACK time) made p50 latency at 25k msg/s 2.4ms.
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	if srv.tls != nil {
		cfg, asked := srv.tls, false
		if len(cfg.Certificates) == 0 {
			// Note whether the collector asks for a client certificate
			// we do not have (see certRefused).
			cfg = cfg.Clone()
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked = true
				return &tls.Certificate{}, nil // none: it may be optional
			}
		}
		tc := tls.Client(c, cfg)
		hctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		if asked {
			if err := certRefused(tc, min(s.dialTimeout, certWait)); err != nil {
				c.Close()
				return nil, err
			}
		}
		c = tc
	}
	if srv.relp {
		rc, err := s.relpOpen(c)
		if err != nil {
			c.Close()
			return nil, err
		}
		return rc, nil
	}
	return c, nil
}

// certWait is how long a dial waits for a collector that asked for a
// client certificate to refuse the connection without one.
const certWait = 300 * time.Millisecond

// certRefused waits up to wait for the collector to refuse a connection
// whose handshake sent no client certificate though it asked for one.
// With TLS 1.3 the client's handshake ends before the server has seen
// the (empty) certificate; a server that requires one then sends an
// alert and closes. Without this wait every batch was written into such
// connections and counted sent, while the collector dropped them all. A
// collector that asked but does not require one says nothing (collectors
// never send): the wait ends and the connection is used.
func certRefused(tc *tls.Conn, wait time.Duration) error {
	tc.SetReadDeadline(time.Now().Add(wait))
	defer tc.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := tc.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	if err == nil {
		err = errors.New("it sent data")
	}
	return fmt.Errorf("tls: the collector asked for a client certificate and closed the connection without one (%v): set tls_cert and tls_key", err)
}

// Connection states alive finds.
const (
	connOpen   = iota
	connClosed // orderly close (FIN, TLS close_notify)
	connReset  // RST or another error: unread data was discarded
)

// alive reports whether an idle TCP connection is still open: collectors
// never send, so a readable connection means FIN or RST arrived. Without
// this check the first batch after a collector closed would be written
// into a dead socket without error and lost. It peeks without blocking
// (a read deadline would not do: Go fails an expired read without asking
// the kernel). A reset is told from an orderly close: a collector's
// kernel answers with RST when it closes a socket holding unread data
// (or data arrives after the close), so only then may the last batches
// have been lost.
func (s *Syslog) alive() int {
	tc, isTLS := s.conn.(*tls.Conn)
	rc, err := rawSocket(s.conn)
	if err != nil {
		return connReset
	}
	if rc == nil {
		return connOpen // no socket to ask (a test's pipe)
	}
	state := connOpen
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), s.probe[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
			isTLS = false // nothing arrived: no TLS record to look at
		case rerr != nil:
			state = connReset
		case n == 0: // orderly shutdown (EOF)
			state = connClosed
		}
		return true
	})
	if err != nil {
		return connReset
	}
	if state != connOpen {
		return state
	}
	if isTLS && !tlsAlive(tc) {
		return connClosed
	}
	return connOpen
}

// checkConn probes conn before a write (alive) and acts on what it
// learns, which the probe consumes (a reset is reported once): a
// connection the collector closed is dropped; after a reset the last
// batches are also replayed on the next connection. It reports whether
// conn is still there.
func (s *Syslog) checkConn() bool {
	if st := s.alive(); st != connOpen {
		s.closeConn()
		s.replay = st == connReset
		return false
	}
	return true
}

// failed drops the connection a write to srv failed on and marks srv
// down; over plain TCP the last batches are replayed on the next
// connection (the collector may have lost them unread: see send).
func (s *Syslog) failed(srv *server) {
	if s.conn != nil && srv.network == "tcp" && !srv.relp {
		s.replay = true
	}
	s.closeConn()
	s.markDown(srv)
}

// rawSocket returns the socket under c (under TLS too), nil if c has
// none.
func rawSocket(c net.Conn) (syscall.RawConn, error) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	return sc.SyscallConn()
}

// tlsAlive reads what a TLS collector sent: TLS 1.3 session tickets (read
// and dropped by crypto/tls; the connection stays good) or a close_notify
// alert before the FIN (EOF: the collector closed). The short deadline
// asks the kernel once; a read timeout leaves a tls.Conn usable.
func tlsAlive(tc *tls.Conn) bool {
	var b [1]byte
	tc.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer tc.SetReadDeadline(time.Time{})
	_, err := tc.Read(b[:])
	var ne net.Error
	return err == nil || (errors.As(err, &ne) && ne.Timeout())
}

// send writes the batch to srv, connecting first if needed. Over TCP and
// TLS the whole batch is framed into s.buf and written with one write(2):
// copying the messages into one buffer costs less than the kernel's
// per-segment work for a writev of two iovecs per message
// (BenchmarkWriteTCP: 7.7-8.7M -> 17.7-18.0M msgs/s).
//
// A write that returned only put the batch into the kernel: a collector
// that dies after that discards what its kernel held unread (and says so
// with an RST), usually the tail of the last batch or two. So when the
// connection is found reset before the next write, or a write on it
// fails, the last batches (replayBytes worth) are written again first on the
// next connection (to the same server or the next): at-least-once,
// duplicates rather than loss. TestFaultCollectorReset (a collector that
// resets each connection after reading 2 MiB, 29 resets under 20k
// msg/s): 1,800 of 159,800 messages lost before, 0 after, at about 5,000
// duplicates per reset. What a collector held unread beyond replayBytes
// is still lost: plain TCP syslog has no acknowledgements (RELP has).
func (s *Syslog) send(ctx context.Context, srv *server, batch []*message.Message, framed []byte) ([]byte, error) {
	if srv.relp {
		// No liveness probe: a dead session shows as a missing answer,
		// and what was not answered is sent again. (Framed says no
		// framed bytes come here.)
		return nil, s.sendRELP(ctx, srv, batch)
	}
	if s.conn != nil && srv.network == "tcp" {
		s.checkConn()
	}
	if s.conn == nil {
		c, err := s.dial(ctx, srv)
		if err != nil {
			return nil, err
		}
		s.conn = c
		s.outq, s.sinceOutq = 0, 0 // a new, empty send queue
	}
	stop, err := s.armWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if srv.network == "udp" {
		return nil, s.sendUDP(batch)
	}
	b := framed
	if b == nil {
		b = s.frame(batch)
	}
	if s.replay && len(s.prev) > 0 {
		err = s.writeReplay(b)
	} else {
		_, err = s.conn.Write(b)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("write: %w", ctx.Err())
		}
		return nil, fmt.Errorf("write: %w", err)
	}
	s.replay = false
	s.nowBudget = 0 // what this write left queued is unknown: WriteNow asks
	// What our kernel still holds unacknowledged is lost too when the
	// collector resets: the replay covers it on top of replayBytes. It is
	// asked (an ioctl) once per outqEvery bytes written; meanwhile the
	// last answer plus what was written since stands for it.
	if s.sinceOutq += len(b); s.sinceOutq >= outqEvery {
		s.sinceOutq = 0
		if q, ok := s.unsent(); ok {
			s.outq = q
		}
	}
	return s.keep(b, s.outq+s.sinceOutq), nil
}

// frame encodes and frames batch into s.buf for one TCP write and returns
// it (valid until the next frame or keep).
func (s *Syslog) frame(batch []*message.Message) []byte {
	b := s.buf[:0]
	for _, m := range batch {
		b = s.AppendFrame(b, m)
	}
	s.buf = b
	return b
}

// AppendFrame appends m encoded and framed as the sink sends it over a
// stream (sinks.Framer). It reads only settings fixed at New: runners
// call it from producers, concurrently with Write.
func (s *Syslog) AppendFrame(b []byte, m *message.Message) []byte {
	switch {
	case s.PassesOctetFrames():
		// The length is known before encoding: no shifting.
		b = ascii.AppendUint(b, uint64(len(m.Raw)))
		b = append(b, ' ')
		return append(b, m.Raw...)
	case s.framing == FramingOctetCounting:
		start := len(b)
		b = s.enc.Append(b, m)
		// Prefix the length: encode first, then shift in "LEN SP".
		n := len(b) - start
		var pre [12]byte
		p := ascii.AppendUint(pre[:0], uint64(n))
		p = append(p, ' ')
		b = append(b, p...)
		copy(b[start+len(p):], b[start:start+n])
		copy(b[start:], p)
		return b
	default:
		return s.enc.AppendLine(b, m) // a LF inside would end the frame early
	}
}

// nowBytes bounds what WriteNow writes, counting what the connection
// still holds unsent or unacknowledged: half the smallest send buffer
// Linux starts a TCP socket with (tcp_wmem's default, 16 KiB), so the
// kernel takes the write whole, at once, even for a TLS record's overhead.
const nowBytes = 8 << 10

// WriteFramedNow does not keep the runner's bytes because keep copies a
// batch of up to smallKept/4, and WriteNow writes at most nowBytes: this
// fails to compile should the two ever cross.
const _ = uint(smallKept/4 - nowBytes)

// WriteNow is Write for a small batch on the caller's goroutine
// (sinks.Immediate): it writes only over an established connection to the
// current server, with no failback due, no replay pending and no other
// write in progress, and only when the connection's send queue leaves
// room, so the write does not wait for the collector. Otherwise it
// declines and Write delivers the batch. A failed write is handled as in
// Write (the server is marked down, the last batches are replayed on the
// next connection) and the batch goes to Write.
func (s *Syslog) WriteNow(batch []*message.Message) bool {
	return s.writeNow(batch, nil)
}

// WriteFramedNow is WriteNow for bytes framed by AppendFrame
// (sinks.Framer). It does not keep b: what it writes is at most nowBytes,
// which keep copies.
func (s *Syslog) WriteFramedNow(b []byte) bool {
	return s.writeNow(nil, b)
}

// writeNow is WriteNow for a batch or, when framed is not nil, for bytes
// already framed.
func (s *Syslog) writeNow(batch []*message.Message, framed []byte) bool {
	if !s.mu.TryLock() {
		return false
	}
	defer s.mu.Unlock()
	srv := &s.servers[s.cur]
	now := time.Now()
	if s.conn == nil || srv.relp || s.replay || (s.cur != 0 && !now.Before(s.nextFailback)) {
		return false
	}
	var err error
	if srv.network == "udp" {
		err = s.sendUDP(batch)
	} else {
		if !s.checkConn() {
			return false // Write reconnects (and replays after a reset)
		}
		b := framed
		if b == nil {
			b = s.frame(batch)
		}
		if len(b) > s.nowBudget {
			queued, ok := s.unsent()
			if !ok {
				return false
			}
			if s.nowBudget = nowBytes - queued; len(b) > s.nowBudget {
				return false
			}
		}
		if err = s.conn.SetWriteDeadline(now.Add(s.writeTimeout)); err == nil {
			_, err = s.conn.Write(b)
		}
		if err == nil {
			s.nowBudget -= len(b)
			// The queue held at most nowBytes; b, as short, is copied
			// (keep returns it).
			if reuse := s.keep(b, nowBytes); framed == nil {
				s.buf = reuse
			}
		}
	}
	if err == nil {
		srv.backoff = 0
		return true
	}
	s.failed(srv)
	s.log.Warn(fmt.Sprintf("sinks/syslog: sink %q: %v; the batch goes to the next attempt", s.name, &serverError{url: srv.url, err: fmt.Errorf("write: %w", err)}))
	return false
}

// unsent returns the bytes the connection's kernel send queue holds (not
// yet sent or not yet acknowledged; SIOCOUTQ), and false if it cannot
// tell. WriteNow asks only when its budget runs out.
func (s *Syslog) unsent() (int, bool) {
	rc, err := rawSocket(s.conn)
	if rc == nil || err != nil {
		return 0, false
	}
	n, ierr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}

// keep makes b, just written, the newest batch of prev, drops the oldest
// ones not needed to reach replayBytes plus queued (what the kernel's
// send queue still holds unacknowledged), and returns storage for the
// next batch: b itself when it was copied (a small batch, up to
// smallKept/4), else a spare framing buffer or a new one.
//
// A small batch (a low rate, or natural batching at a moderate one) is
// copied into the newest smallKept chunk of prev, so that maxReplay of
// them hold about what they are rather than a framing buffer each, and
// s.buf, still in the cache, frames the next one. A large batch keeps
// its buffer, and s.buf becomes a spare framing buffer or a new one.
// Chunks and framing buffers dropped from prev are reused each for its
// own kind, so the steady state allocates nothing (d217070 made a new
// chunk per 64 KiB of small batches and handed chunks out as framing
// buffers: the garbage collector ran all the time, 23% more CPU per
// message at 1M msg/s).
func (s *Syslog) keep(b []byte, queued int) []byte {
	s.replayed = false
	if len(b) <= smallKept/4 {
		n := len(s.prev)
		if n == 0 || !s.prevChunk[n-1] || len(s.prev[n-1])+len(b) > cap(s.prev[n-1]) {
			s.prev, s.prevChunk = append(s.prev, s.chunk()), append(s.prevChunk, true)
			n++
		}
		s.prev[n-1] = append(s.prev[n-1], b...)
		s.prevBytes += len(b)
		s.trim(queued)
		return b[:0]
	}
	s.prev, s.prevChunk = append(s.prev, b), append(s.prevChunk, false)
	s.prevBytes += len(b)
	s.trim(queued)
	if n := len(s.spare); n > 0 {
		reuse := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return reuse
	}
	return make([]byte, 0, cap(b))
}

// chunk returns an empty smallKept chunk for small batches, a reused one
// when there is.
func (s *Syslog) chunk() []byte {
	if n := len(s.chunks); n > 0 {
		c := s.chunks[n-1]
		s.chunks = s.chunks[:n-1]
		return c
	}
	return make([]byte, 0, smallKept)
}

// trim drops the oldest kept batches not needed to reach replayBytes
// plus queued, or beyond maxReplay; their storage is kept for reuse, up
// to maxSpare buffers of each kind.
func (s *Syslog) trim(queued int) {
	window := replayBytes + queued
	for len(s.prev) > 1 && (s.prevBytes-len(s.prev[0]) >= window || len(s.prev) > maxReplay) {
		s.prevBytes -= len(s.prev[0])
		switch {
		case s.prevChunk[0] && len(s.chunks) < maxSpare:
			s.chunks = append(s.chunks, s.prev[0][:0])
		case !s.prevChunk[0] && len(s.spare) < maxSpare:
			s.spare = append(s.spare, s.prev[0][:0])
		}
		s.prev[0] = nil
		s.prev, s.prevChunk = s.prev[1:], s.prevChunk[1:]
	}
}

// maxSpare bounds the buffers of each kind kept for reuse.
const maxSpare = 64

func (s *Syslog) sendUDP(batch []*message.Message) error {
	for _, m := range batch {
		b := s.enc.Append(s.buf[:0], m)
		s.buf = b
		if len(b) > maxDatagram {
			b = b[:maxDatagram]
		}
		if _, err := s.conn.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// Check connects to the first reachable server (in order) if not
// connected, so a sink whose collectors are all down is not ready at
// start. A replay that is due (the last connection was found reset) is
// written on the new connection at once, not with the next batch, which
// may be long in coming on a quiet link.
func (s *Syslog) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkLocked(ctx)
}

// Probe is called while the sink is ready and idle (sinks.Prober): over
// plain TCP it looks at the connection, and one the collector closed or
// reset meanwhile is replaced at once, with the replay written on it
// (Check). Without it a collector that died with the last batches unread
// lost them until the next message came, and for good if wharf stopped
// first (audit: 300 messages \"sent\", the collector reset, no more
// traffic: 0 of 300 at the restarted collector). A write in progress
// checks the connection itself: Probe then does nothing.
func (s *Syslog) Probe(ctx context.Context) error {
	if !s.mu.TryLock() {
		return nil
	}
	defer s.mu.Unlock()
	srv := &s.servers[s.cur]
	if s.conn == nil || srv.relp || srv.network != "tcp" || s.checkConn() {
		return nil
	}
	if s.replayed {
		// Nothing written since the last replay: replaying it on every
		// idle reset (a balancer or firewall resetting quiet flows) would
		// duplicate it each time. The next write still replays.
		s.replay = false
	}
	s.log.Info(fmt.Sprintf("sinks/syslog: sink %q: the idle connection to %s was closed by the collector; reconnecting", s.name, srv.url), "replay", s.replay)
	return s.checkLocked(ctx)
}

func (s *Syslog) checkLocked(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	var errs []error
	for i := range s.servers {
		srv := &s.servers[i]
		c, err := s.dial(ctx, srv)
		if err != nil {
			s.markDown(srv)
			serr := &serverError{url: srv.url, err: err}
			if i < len(s.servers)-1 {
				s.log.Warn(fmt.Sprintf("sinks/syslog: sink %q: %v; trying next server", s.name, serr))
			}
			errs = append(errs, serr)
			continue
		}
		if i != s.cur {
			s.switchTo(i)
		}
		s.conn = c
		s.outq, s.sinceOutq = 0, 0 // a new, empty send queue
		if err := s.replayNow(ctx, srv); err != nil {
			s.failed(srv)
			serr := &serverError{url: srv.url, err: err}
			errs = append(errs, serr)
			continue
		}
		return nil
	}
	return fmt.Errorf("sinks/syslog: sink %q: no server reachable: %w", s.name, errors.Join(errs...))
}

// Close closes the connection. Everything written was already handed to
// the kernel; TCP delivers it after close.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	s.relpClose()
	err := s.conn.Close()
	s.conn = nil
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("sinks/syslog: sink %q: close: %w", s.name, err)
	}
	return nil
}

// replayNow writes the last batches on a new plain TCP connection when
// the previous one was found reset (see send), so they do not wait for
// the next batch.
func (s *Syslog) replayNow(ctx context.Context, srv *server) error {
	if !s.replay || len(s.prev) == 0 || srv.relp || srv.network != "tcp" {
		return nil
	}
	stop, err := s.armWrite(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if err := s.writeReplay(nil); err != nil {
		return fmt.Errorf("write (replay): %w", err)
	}
	return nil
}

// armWrite bounds the next writes on s.conn by write_timeout and ctx's
// deadline; cancelling ctx (a shutdown) interrupts a blocked write until
// stop is called.
func (s *Syslog) armWrite(ctx context.Context) (stop func() bool, err error) {
	deadline := time.Now().Add(s.writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	conn := s.conn
	return context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Unix(1, 0)) }), nil
}

// writeReplay writes the kept batches again, then next (the batch that
// found the connection reset, or nil), with one writev.
func (s *Syslog) writeReplay(next []byte) error {
	bufs := make(net.Buffers, 0, len(s.prev)+1)
	bufs = append(bufs, s.prev...)
	if next != nil {
		bufs = append(bufs, next)
	}
	if _, err := bufs.WriteTo(s.conn); err != nil {
		return err
	}
	s.replays.Add(1)
	s.replay, s.replayed = false, true
	return nil
}

// serverError is a failure of one server: "server URL: dial: connection
// refused". It unwraps to the underlying error.
type serverError struct {
	url string
	err error
}

func (e *serverError) Error() string { return "server " + e.url + ": " + short(e.err) }
func (e *serverError) Unwrap() error { return e.err }

// short renders err without Go's "dial tcp 127.0.0.1:1: connect:" noise:
// "dial: connection refused".
func short(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		op, _, _ := strings.Cut(err.Error(), ":")
		return op + ": " + se.Err.Error()
	}
	if errors.Is(err, io.EOF) {
		return "connection closed by server"
	}
	return err.Error()
}

var (
	_ sinks.Sink    = (*Syslog)(nil)
	_ sinks.Checker = (*Syslog)(nil)
)
