// Package ingest runs the syslog listeners: one gnet engine per bind
// (tcp:// binds accept in Go and enroll connections into it, stream.go).
//
// This layer only knows sockets and per-connection state. It hands bytes
// to ingest/framing (pure frame splitting) and ingest/parse (header
// parsing), then asks the route table where each message goes and
// enqueues it on those sinks' runners. It never blocks on the network.
//
// Hand-over: the messages of one read (one OnTraffic call or recvmmsg
// batch, one TLS read) are collected per destination in an outbox and
// handed to each sink runner with one EnqueueBatch at the end of the read,
// in arrival order: one queue lock per runner and read, not per message.
//
// Backpressure: on TCP binds EnqueueBatch is called with block=true, so a full
// sink queue stalls the event loop that read the message; the loop stops
// reading, the kernel's receive buffers fill and TCP flow control slows the
// senders. On UDP binds a full queue drops the message and counts it
// (there is no way to slow a UDP sender down).
package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"wharf/acl"
	"wharf/conf"
	"wharf/ingest/framing"
	"wharf/ingest/parse"
	"wharf/internal/gnetlog"
	"wharf/message"
	"wharf/metrics"
	"wharf/route"
)

// udpRecvBuffer is the kernel receive buffer asked for on UDP binds. Bursts
// of 100k msg/s of 300 B arrive at 30 MB/s: 8 MiB absorbs a quarter second
// of scheduling hiccup, where the Linux default (208 KiB) absorbs 7 ms.
const udpRecvBuffer = 8 << 20

// Listener is one bind of a syslog frontend.
type Listener struct {
	gnet.BuiltinEventEngine

	frontend string
	bind     conf.Bind
	tcp      bool        // a stream bind (tcp or tls): enqueue blocks
	tls      *tlsBind    // tls:// binds only, served by tls.go instead of gnet
	relp     *relpBind   // relp:// and relp+tls:// binds (relp.go)
	stream   *streamBind // tcp:// binds: accepted in Go, read by gnet (stream.go)
	settings atomic.Pointer[settings]
	routes   *route.Holder
	log      *slog.Logger
	tap      Tap
	dead     DeadLetter

	port uint16
	// udpLocal is a UDP bind's bound address (OnBoot), for
	// raiseUDPBuffers.
	udpLocal  unix.Sockaddr
	transport message.Transport

	received, bytes, truncated *metrics.Counter
	conns                      *metrics.Gauge
	connsTotal                 *metrics.Counter
	reg                        *metrics.Registry
	labels                     []string
	reasons                    atomic.Pointer[map[reasonKey]*metrics.Counter] // see reason
	reasonsMu                  sync.Mutex

	open    sync.Map  // gnet.Conn -> *conn, for the timeout sweep
	perIP   acl.PerIP // open TCP/TLS connections per source (maxconn_per_ip)
	batches sync.Map  // UDP socket fd -> *udpBatch, one per event loop
	// udpEpoch is raised by Drain; a UDP socket read until it was empty
	// after that records it in its udpBatch (see Drain).
	udpEpoch atomic.Uint64

	rate     rateLimiter // buckets and counters of the rate limits (ratelimit.go)
	stopping atomic.Bool // Stop began: held-back connections stop waiting

	eng     gnet.Engine
	booted  chan struct{}
	done    chan error
	exited  chan struct{} // closed when gnet.Run has returned (see Wait)
	addr    string
	stopped bool
}

// settings are the frontend options a listener applies per message. A
// reload swaps them atomically; the event loops load them once per read.
type settings struct {
	format   parse.Format
	full     bool         // parse = "full": structured data and MSG even when no sink needs them
	mode     framing.Mode // for new TCP connections; open ones keep theirs
	max      int
	truncate bool
	forward  bool      // on_error = forward_raw
	acl      *acl.List // nil: everyone
	maxConn  int64     // 0: unlimited
	perIP    int       // maxconn_per_ip; 0: unlimited
	// idle closes a TCP connection that sent nothing for this long; frame
	// closes one that kept a frame incomplete for this long (slow sender).
	// 0 disables either.
	idle, frame time.Duration
	// open closes a RELP session that has not sent its open command this
	// long after it connected (after the TLS handshake for relp+tls://):
	// header_timeout.
	open time.Duration
	rate *rateSettings // nil: no rate limit (ratelimit.go)
	// relpWindow and relpAck apply to RELP sessions opened from now on.
	relpWindow int
	relpAck    relpAckLevel
}

func newSettings(fe *conf.Frontend) (*settings, error) {
	format, err := parse.ParseFormat(orDefault(fe.Format, "auto"))
	if err != nil {
		return nil, fmt.Errorf("ingest: frontend %q: %w", fe.Name, err)
	}
	mode, err := framing.ParseMode(orDefault(fe.Framing, "auto"))
	if err != nil {
		return nil, fmt.Errorf("ingest: frontend %q: %w", fe.Name, err)
	}
	max := int(fe.MaxMessageSize)
	if max <= 0 {
		max = 64 << 10
	}
	list, err := acl.New(fe.Allow, fe.Deny)
	if err != nil {
		return nil, fmt.Errorf("ingest: frontend %q: %w", fe.Name, err)
	}
	return &settings{
		format: format, full: fe.Parse == "full", mode: mode, max: max,
		truncate: fe.Oversize != "drop", forward: fe.OnError == "forward_raw",
		acl: list, maxConn: int64(fe.MaxConn), perIP: fe.MaxConnPerIP,
		idle: fe.ClientTimeout.Duration, frame: fe.FrameTimeout.Duration,
		open:       cmp.Or(fe.HeaderTimeout.Duration, tlsDefaultHandshakeTimeout),
		relpWindow: relpWindowOrDefault(fe.RELPWindow), relpAck: parseRELPAck(fe.RELPAck),
	}, nil
}

// Update applies changed frontend options (format, framing, sizes, error
// policy) without closing the socket: the reload path for a bind present
// in the old and the new config. Open TCP connections keep their framing
// mode; everything else applies from the next read on.
func (l *Listener) Update(fe *conf.Frontend) error {
	if fe.Name != l.frontend {
		return fmt.Errorf("ingest: bind %s://%s moved from frontend %q to %q: restart the listener instead", l.bind.Scheme, l.bind.Addr, l.frontend, fe.Name)
	}
	s, err := newSettings(fe)
	if err != nil {
		return err
	}
	l.attachRates(s, fe)
	l.settings.Store(s)
	if l.tls != nil {
		l.updateTLS(fe)
	}
	if l.relp != nil {
		l.updateRELP(fe)
	}
	return nil
}

// New prepares a listener for bind b of frontend fe. It does not open the
// socket: Start does.
func New(fe *conf.Frontend, b conf.Bind, routes *route.Holder, reg *metrics.Registry, log *slog.Logger) (*Listener, error) {
	st, err := newSettings(fe)
	if err != nil {
		return nil, err
	}
	bindName := b.Scheme + "://" + b.Addr
	l := &Listener{
		frontend: fe.Name,
		bind:     b,
		tcp:      b.Network() == "tcp",
		routes:   routes,
		log:      log.With("frontend", fe.Name, "bind", bindName),
		reg:      reg,
		labels:   []string{"frontend", fe.Name, "bind", bindName},
		booted:   make(chan struct{}),
		done:     make(chan error, 1),
		exited:   make(chan struct{}),
	}
	l.attachRates(st, fe)
	l.settings.Store(st)
	if l.tcp {
		l.transport = message.TransportTCP
	}
	if b.Scheme == "tls" {
		l.transport = message.TransportTLS
		if l.tls, err = newTLSBind(fe); err != nil {
			return nil, err
		}
	}
	if b.IsRELP() {
		l.transport = message.TransportRELP
		if b.Scheme == "relp+tls" {
			l.transport = message.TransportRELPTLS
		}
		if l.relp, err = newRELPBind(fe, b, reg, l.labels); err != nil {
			return nil, err
		}
	}
	l.received = reg.Counter("wharf_frontend_received_total", "Messages received, per frontend bind.", l.labels...)
	l.bytes = reg.Counter("wharf_frontend_received_bytes_total", "Message bytes received (without framing).", l.labels...)
	l.truncated = reg.Counter("wharf_frontend_truncated_total", "Oversize messages truncated to max_message_size and delivered.", l.labels...)
	l.conns = reg.Gauge("wharf_frontend_connections", "Open TCP connections.", l.labels...)
	l.connsTotal = reg.Counter("wharf_frontend_connections_total", "TCP connections accepted.", l.labels...)
	l.zeroReasons()
	return l, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Start opens the socket and starts the event loops. It returns once the
// bind is listening, or with the bind error (address in use, permission).
func (l *Listener) Start() error {
	if l.tls != nil {
		return l.startTLS()
	}
	if l.relp != nil {
		return l.startRELP()
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithReusePort(!l.tcp), // one UDP socket per event loop
		gnet.WithReadBufferCap(max(64<<10, l.settings.Load().max+16)),
		gnet.WithLogger(gnetlog.Logger{Log: l.log.With("component", "gnet")}),
	}
	if l.tcp {
		// Keepalive is set per connection in OnOpen, not with
		// gnet.WithTCPKeepAlive: gnet 2.9.7 applies that option to the
		// listening socket even after a failed bind, replacing the real
		// error ("address in use") with "bad file descriptor".
		opts = append(opts, gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithTicker(true))
	} else {
		opts = append(opts, gnet.WithSocketRecvBuffer(udpRecvBuffer))
	}
	if l.tcp {
		return l.startStream(opts)
	}
	if err := udpPortTaken(l.bind.Addr); err != nil {
		return fmt.Errorf("ingest: frontend %q: bind %s://%s: %w", l.frontend, l.bind.Scheme, l.bind.Addr, err)
	}
	go func() {
		err := gnet.Run(l, gnetUDPAddr(l.bind), opts...)
		close(l.exited)
		l.done <- err
	}()
	select {
	case <-l.booted:
		if local := l.udpLocal; local != nil {
			// Every event loop's socket, the others opening after OnBoot.
			go func() {
				if n, err := raiseUDPBuffers(local, 2*time.Second); err != nil {
					l.log.Warn("could not raise the UDP receive buffer; bursts may be dropped by the kernel (raise net.core.rmem_max, or run with CAP_NET_ADMIN)", "sockets_raised", n, "err", err)
				}
			}()
		}
		return nil
	case err := <-l.done:
		if err == nil {
			err = errors.New("engine stopped before it started")
		}
		return fmt.Errorf("ingest: frontend %q: bind %s://%s: %w (is another process listening there? ports below 1024 need CAP_NET_BIND_SERVICE)", l.frontend, l.bind.Scheme, l.bind.Addr, err)
	}
}

// Tap lets an operator watch the messages passing a bind (`wharf tap`).
// Active is called for every message and must be one atomic load; only
// when it reports true is Publish called. Publish runs on the event loop:
// it must copy what it keeps out of m and never block.
type Tap interface {
	Active() bool
	Publish(m *message.Message)
}

// SetTap installs t. Call before Start.
func (l *Listener) SetTap(t Tap) { l.tap = t }

// DeadLetter keeps the raw bytes of dropped messages (package deadletter).
// Put copies raw and must not block.
type DeadLetter interface {
	Put(frontend, bind, reason string, peer netip.AddrPort, raw []byte)
}

// SetDeadLetter installs d (nil: none). Call before Start.
func (l *Listener) SetDeadLetter(d DeadLetter) { l.dead = d }

// reject hands a dropped message's bytes to the dead-letter file, if any.
func (l *Listener) reject(reason string, peer netip.AddrPort, raw []byte) {
	if l.dead != nil {
		l.dead.Put(l.frontend, l.labels[3], reason, peer, raw)
	}
}

// Addr returns the bound address (with the real port when the config said 0).
func (l *Listener) Addr() string { return l.addr }

// Frontend returns the frontend name.
func (l *Listener) Frontend() string { return l.frontend }

// Bind returns the configured bind.
func (l *Listener) Bind() conf.Bind { return l.bind }

// Stop closes the socket and every connection, waiting for the event loops
// to finish the reads in progress (and so their enqueues) until ctx ends.
func (l *Listener) Stop(ctx context.Context) error {
	if l.stopped {
		return nil
	}
	l.stopped = true
	l.stopping.Store(true)
	if l.tls != nil {
		return l.stopTLS(ctx)
	}
	if l.relp != nil {
		return l.stopRELP(ctx)
	}
	if l.stream != nil {
		return l.stopStream(ctx)
	}
	// Engine.Stop begins the shutdown at once but notices its end only on
	// a 500 ms poll; gnet.Run returning (l.done) says it sooner. Each
	// bind's stop took up to that half second: an idle wharf with a UDP
	// and a TCP bind took 1.0 s to exit on SIGTERM, now a few ms.
	stopped := make(chan error, 1)
	go func() { stopped <- l.eng.Stop(ctx) }()
	for {
		select {
		case err := <-l.done:
			return err
		case err := <-stopped:
			if err != nil {
				return fmt.Errorf("ingest: stop %s://%s: %w", l.bind.Scheme, l.addr, err)
			}
			stopped = nil // shut down: l.done follows
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Wait waits until no goroutine of the listener can deliver a message any
// more: the event loops (or the TLS/RELP connection goroutines) have
// returned. Call it after Stop, and after the sinks began closing, when
// Stop ran out of time: an event loop blocked in a full sink's queue
// finishes only once that sink refuses (drops as "closed") what it holds.
// The shutdown's totals line is written after Wait, so its counters are
// final and consistent (received = delivered + dropped).
func (l *Listener) Wait(ctx context.Context) error {
	var done <-chan struct{}
	switch {
	case l.tls != nil:
		done = waitGroupDone(&l.tls.wg)
	case l.relp != nil:
		done = waitGroupDone(&l.relp.wg)
	default:
		select {
		case <-l.booted:
		default:
			return nil // never started (or failed to: then Run has returned)
		}
		done = l.exited
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest: %s://%s still running: %w", l.bind.Scheme, l.addr, ctx.Err())
	}
}

func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}

// OnBoot records the engine and the bound address; Start then raises the
// receive buffer of every socket of a UDP bind past rmem_max
// (raiseUDPBuffers: SO_RCVBUFFORCE works as root or with CAP_NET_ADMIN;
// otherwise the kernel's cap stays and we say so). A tcp:// bind's engine
// has no socket: listenStream recorded the address.
func (l *Listener) OnBoot(eng gnet.Engine) gnet.Action {
	l.eng = eng
	if l.tcp {
		close(l.booted)
		return gnet.None
	}
	l.addr = l.bind.Addr
	defer l.registerKernelDrops()
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			l.addr = sockaddrString(sa, l.bind.Addr)
			p, _ := strconv.Atoi(portOf(l.addr))
			l.port = uint16(p)
			l.udpLocal = sa
		}
		unix.Close(fd)
	}
	close(l.booted)
	return gnet.None
}

// registerKernelDrops exports the kernel's receive-buffer drops for a UDP
// bind, read from /proc at scrape time: the loss no socket read can see.
func (l *Listener) registerKernelDrops() {
	if l.tcp || l.port == 0 {
		return
	}
	port := l.port
	var last atomic.Uint64 // a counter never goes back: a failed read repeats the last value
	l.reg.CounterFunc("wharf_frontend_udp_kernel_drops_total", "Datagrams the kernel dropped on this UDP port because the socket receive buffer was full (from /proc/net/udp; counts since the sockets opened).", func() float64 {
		if n, err := udpKernelDrops("/proc", port); err == nil && n >= last.Load() {
			last.Store(n)
		}
		return float64(last.Load())
	}, l.labels...)
}

func sockaddrString(sa unix.Sockaddr, fallback string) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return fallback
}

func portOf(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "0"
	}
	return p
}

// conn is the per-TCP-connection state kept in gnet's connection context.
// framer and peer belong to the event loop; the two times are also read
// by the timeout sweep (OnTick), hence atomic.
type conn struct {
	framer framing.Framer
	peer   netip.AddrPort
	// lastRead is when the connection last delivered bytes (monoNow).
	lastRead atomic.Int64
	// busy is set while OnTraffic handles the connection (it may wait
	// for queue space): Drain waits for it.
	busy atomic.Bool
	// partialSince is when the oldest incomplete frame started waiting
	// with no whole frame since (Unix ns), 0 when none is pending.
	partialSince atomic.Int64

	// Rate limiting (ratelimit.go), event loop only but for wakePending:
	// held is set while the next message waits for tokens (it is counted
	// once), paused while the loop is paused for this connection, wake is
	// the wake-up timer and wakePending says it is armed.
	held, paused bool
	wake         *time.Timer
	wakePending  atomic.Bool

	// out collects a read's messages for their runners (event loop only).
	out outbox
	// left is how many bytes OnTraffic left unconsumed when it last
	// returned, which gnet then keeps in its ring (see stitchBytes).
	left int
}

// OnOpen opens a TCP connection the accept loop admitted (allow/deny,
// maxconn, maxconn_per_ip: acceptLoop) and enrolled with its state.
func (l *Listener) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	st, ok := c.Context().(*conn)
	if !ok {
		return nil, gnet.Close // not enrolled by enroll: never happens
	}
	l.open.Store(c, st)
	return nil, gnet.None
}

// OnClose counts the connection gone. Whole messages a rate limit held
// back are delivered (charged to the buckets, see flushHeld); a partial
// frame left in the buffer is a truncated message: counted, not delivered.
func (l *Listener) OnClose(c gnet.Conn, err error) gnet.Action {
	st, ok := c.Context().(*conn)
	if !ok {
		return gnet.None
	}
	l.open.Delete(c)
	l.conns.Add(-1)
	l.perIP.Release(st.peer.Addr())
	if st.wake != nil {
		st.wake.Stop()
	}
	if c.InboundBuffered() > 0 {
		l.flushHeld(c, st)
	}
	if n := c.InboundBuffered(); n > 0 {
		l.reason("dropped", "incomplete_frame_at_close").Inc()
	}
	return gnet.None
}

// OnTick sweeps TCP connections for the idle and slow-sender timeouts.
// It runs on gnet's ticker goroutine; Close is asynchronous and safe there.
func (l *Listener) OnTick() (time.Duration, gnet.Action) {
	s := l.settings.Load()
	if s.idle <= 0 && s.frame <= 0 {
		return time.Second, gnet.None
	}
	now := monoNow() // timeouts run on the monotonic clock: a wall-clock step closes nothing
	l.open.Range(func(k, v any) bool {
		c, st := k.(gnet.Conn), v.(*conn)
		switch {
		case s.idle > 0 && now-st.lastRead.Load() > int64(s.idle):
			l.reason("closed", "idle_timeout").Inc()
			c.Close()
		case s.frame > 0 && st.partialSince.Load() != 0 && now-st.partialSince.Load() > int64(s.frame):
			l.frameTimedOut(&l.stream.frameWarn, st.peer, s)
			c.Close()
		}
		return true
	})
	tick := time.Second
	for _, d := range []time.Duration{s.idle / 4, s.frame / 4} {
		if d > 0 && d < tick {
			tick = max(d, 10*time.Millisecond)
		}
	}
	return tick, gnet.None
}

// OnTraffic frames and dispatches what arrived. Frames alias gnet's
// buffer, so each is copied into a pooled message.Message before it leaves
// the loop; the buffer is discarded up to the last whole frame. A message
// over a rate limit stays in gnet's buffer until tokens are due (see
// holdTCP in ratelimit.go).
func (l *Listener) OnTraffic(c gnet.Conn) gnet.Action {
	tab := l.routes.Load()
	var fe *route.Frontend
	if tab != nil {
		fe = tab.Frontend(l.frontend)
	}
	now := time.Now().UnixNano()
	s := l.settings.Load()
	if !l.tcp {
		buf, _ := c.Next(-1)
		var peer netip.AddrPort
		if a, ok := c.RemoteAddr().(*net.UDPAddr); ok {
			peer = a.AddrPort()
		}
		epoch := l.udpEpoch.Load() // before reading: see Drain
		b := l.udpBatchFor(c.Fd(), s)
		l.datagram(&b.out, s, fe, buf, false, now, peer)
		if l.drainUDP(b, c.Fd(), s, fe, now) {
			b.emptied.Store(epoch)
		}
		return gnet.None
	}

	st := c.Context().(*conn)
	mnow := monoNow()
	st.lastRead.Store(mnow)
	st.busy.Store(true)
	defer func() {
		st.left = c.InboundBuffered()
		st.busy.Store(false)
	}()
	progress := false
	for {
		st.framer.Max, st.framer.Truncate = s.max, s.truncate
		// A bounded window: a held-back connection (ratelimit.go) can
		// have far more buffered than one read brought.
		total := c.InboundBuffered()
		win := peekWindow(s, st.paused)
		stitched := 0 < st.left && st.left < total && st.left+stitchBytes < win
		if stitched {
			win = st.left + stitchBytes
		}
		st.left = 0
		buf, _ := c.Peek(min(total, win))
		off, p, wait := l.framesTo(&st.out, s, fe, &st.framer, buf, now, st.peer, &st.held)
		progress = progress || p
		if off > 0 { // Discard(0) would drop everything buffered (gnet treats n <= 0 as "all")
			_, _ = c.Discard(off)
		}
		if wait > 0 {
			// Whole frames wait for tokens: not the sender's fault.
			st.partialSince.Store(0)
			if !l.holdTCP(c, st, s, wait) {
				return gnet.None
			}
			now, mnow = time.Now().UnixNano(), monoNow()
			st.lastRead.Store(mnow)
			s = l.settings.Load()
			continue
		}
		st.paused = false
		if len(buf) < total && (off > 0 || stitched) {
			continue // the rest of a held-back buffer, or of a read after a stitch
		}
		switch {
		case off == len(buf):
			st.partialSince.Store(0)
		case progress || st.partialSince.Load() == 0:
			st.partialSince.Store(mnow)
		}
		return gnet.None
	}
}

// stitchBytes bounds the first Peek of a read that follows a frame cut in
// two. gnet keeps what a read left unconsumed (the cut frame's start) in
// its ring and the new read in its buffer; a Peek across both copies
// them into one, so a 64 KiB window copied the whole read again (#16:
// one more copy of every byte relayed). The first window is therefore
// the cut frame's start and stitchBytes of the read, which completes a
// cut frame of up to that many more bytes; once it is consumed, the ring
// is empty and the rest of the read is framed where it lies. A longer
// cut frame takes one more Peek, at the full window.
const stitchBytes = 4 << 10

// datagram handles one UDP datagram: ACL, rate limits, size, then deliver.
// The message goes into out; the caller flushes it.
func (l *Listener) datagram(out *outbox, s *settings, fe *route.Frontend, buf []byte, cut bool, now int64, peer netip.AddrPort) {
	if !s.acl.Permit(peer.Addr()) {
		l.reason("rejected", "acl").Inc()
		return
	}
	if s.rate != nil && !s.rate.allowDatagram(peer.Addr(), monoNow()) {
		return
	}
	frame := framing.TrimEnd(buf)
	if len(frame) == 0 && !cut {
		l.reason("malformed", "empty").Inc()
		return
	}
	if len(frame) > s.max || cut {
		l.reason("malformed", "oversize").Inc()
		if !s.truncate {
			l.reason("dropped", "oversize").Inc()
			l.reject("oversize", peer, frame)
			return
		}
		l.truncated.Inc()
		frame = framing.CutUTF8(frame[:min(len(frame), s.max)])
	}
	l.received.Inc()
	l.bytes.Add(uint64(len(frame)))
	l.deliver(out, s, fe, frame, now, peer, nil)
}

// udpBatchFor returns the recvmmsg buffers and outbox of socket fd (see
// udpbatch.go), made or grown for s. It runs on the event loop that owns
// fd; b.out must be empty (it is, between reads).
func (l *Listener) udpBatchFor(fd int, s *settings) *udpBatch {
	slot := min(s.max+1, 64<<10)
	var b *udpBatch
	if v, ok := l.batches.Load(fd); ok {
		b = v.(*udpBatch)
	}
	if b == nil || b.slot < slot {
		b = newUDPBatch(slot)
		l.batches.Store(fd, b)
	}
	return b
}

// drainUDP reads what else is waiting on the socket in recvmmsg batches
// (see udpbatch.go) and hands each batch's messages over together with
// what b.out already holds. It runs on the event loop that owns fd. It
// reports whether it read the socket empty.
func (l *Listener) drainUDP(b *udpBatch, fd int, s *settings, fe *route.Frontend, now int64) (empty bool) {
	defer b.out.flush(l, s, false)
	for range udpMaxBatches {
		n := b.read(fd)
		for i := range n {
			data, cut, peer := b.datagram(i)
			l.datagram(&b.out, s, fe, data, cut, now, peer)
		}
		if n < udpBatchSize {
			return true
		}
		b.out.flush(l, s, false)
	}
	return false
}

// deliver turns one frame into a message and adds it to out for its
// routes; the caller flushes out at the end of the read. With a nil out
// it enqueues on each route at once.
//
// The caller counts the message in l.received and l.bytes (per read, see
// frames).
func (l *Listener) deliver(out *outbox, s *settings, fe *route.Frontend, frame []byte, now int64, peer netip.AddrPort, ack message.Acker) {
	var m *message.Message
	switch {
	case out == nil:
		m = message.New(frame)
	case ack == nil:
		// Routed within the read: the outbox's scratch message over the
		// read's buffer, copied only for a target that queues messages
		// (see outbox.route).
		m = out.borrow(frame)
	default:
		m = out.cache.New(frame)
	}
	m.Ack = ack
	l.stamp(m, now, peer)
	var perr error
	tapped := l.tap != nil && l.tap.Active()
	if s.format != parse.Raw {
		// Header only unless something downstream reads the structured
		// data or MSG (see route.Frontend.FullParse).
		if s.full || fe == nil || fe.FullParse || tapped {
			perr = parse.Parse(m, s.format)
		} else {
			perr = parse.ParseHeader(m, s.format)
		}
	} else if out != nil && m == &out.scratch {
		_ = parse.Parse(m, parse.Raw) // clears the previous message's fields (see borrow)
	}
	// The tap sees malformed messages too (unparsed, Format raw): they are
	// what an operator tapping a port at 3 a.m. most wants to look at.
	if tapped {
		l.tap.Publish(m)
	}
	if perr != nil {
		l.reason("malformed", parseReason(perr)).Inc()
		if !s.forward {
			l.reason("dropped", "parse_error").Inc()
			l.reject("parse_error", peer, m.Raw)
			out.discard(m) // dropped by policy: nothing to send again
			return
		}
	}
	var (
		dests []route.Dest
		drop  bool
	)
	if fe != nil {
		dests, drop = fe.Match(m)
	}
	if drop {
		// action = "drop": the operator asked for it, so no dead letter,
		// and nothing to send again (a RELP sender is answered 200).
		l.reason("dropped", "route_drop").Inc()
		out.discard(m)
		return
	}
	if len(dests) == 0 {
		l.reason("dropped", "no_route").Inc()
		l.reject("no_route", peer, m.Raw)
		out.discard(m) // dropped by policy: nothing to send again
		return
	}
	if out != nil {
		out.route(dests, m)
		return
	}
	if len(dests) > 1 {
		m.Retain(int32(len(dests) - 1))
	}
	for _, d := range dests {
		d.Target.Enqueue(m, l.tcp)
	}
}

// stamp sets the fields of receipt: when, on which bind, from whom.
func (l *Listener) stamp(m *message.Message, now int64, peer netip.AddrPort) {
	m.Received = now
	m.Frontend = l.frontend
	m.Port = l.port
	m.Transport = l.transport
	m.Peer = peer
}

// parseReason is the counter reason of a Parse error. Parse returns a
// parse.Error itself, so a type assertion finds it without the
// allocation errors.As costs (this runs for every malformed message).
func parseReason(err error) string {
	if e, ok := err.(parse.Error); ok {
		return e.Reason()
	}
	return "parse_error"
}

// zeroReasons creates the reason series this bind's kind can count, so
// they are exported as 0 from the start (as the sink ones are) and a rate
// or an alert on them works before the first event. Malformed reasons
// from the framer and parser (bad_length_prefix, no_pri...) are many and
// still appear at their first occurrence.
func (l *Listener) zeroReasons() {
	for _, why := range []string{"oversize", "framing_error", "parse_error", "no_route", "route_drop"} {
		l.reason("dropped", why)
	}
	for _, why := range []string{"empty", "oversize"} {
		l.reason("malformed", why)
	}
	l.reason("rejected", "acl")
	if !l.tcp {
		l.reason("dropped", "rate_limit")
		return
	}
	l.reason("dropped", "incomplete_frame_at_close")
	l.reason("rejected", "fd_limit")
	l.reason("rejected", "maxconn")
	l.reason("rejected", "maxconn_per_ip")
	l.reason("closed", "idle_timeout")
	l.reason("closed", "frame_timeout")
	if l.tls != nil || (l.relp != nil && l.relp.tls != nil) {
		l.reason("rejected", "tls_handshake")
	}
	if l.relp != nil { // relpSession.fail's reasons
		for _, why := range []string{"frame", "datalen", "txnr", "sequence", "offer", "not_delivered", "write", "open_timeout"} {
			l.reason("closed", "relp_"+why)
		}
	}
}

// Stats is a snapshot of a bind's counters: what its wharf_frontend_*
// series hold, typed, for the status page.
type Stats struct {
	// Received and ReceivedBytes count messages and their bytes (without
	// framing); Truncated the oversize ones cut and delivered.
	Received, ReceivedBytes, Truncated uint64
	// Connections is open TCP connections now; ConnectionsTotal accepted.
	Connections      int64
	ConnectionsTotal uint64
	// Malformed, Dropped, Rejected and Closed count by reason; every
	// reason the bind can count is present, zero or not (see zeroReasons).
	Malformed, Dropped, Rejected, Closed map[string]uint64
	// RELP is set on relp:// and relp+tls:// binds: open sessions,
	// unanswered transactions, messages acknowledged.
	RELP *RELPStats
}

// RELPStats are a RELP bind's session counters (its wharf_relp_* series).
type RELPStats struct {
	Sessions, InFlight int64
	AcksSent           uint64
}

// Stats returns a snapshot of the bind's counters. Safe for concurrent use.
func (l *Listener) Stats() Stats {
	st := Stats{
		Received:         l.received.Load(),
		ReceivedBytes:    l.bytes.Load(),
		Truncated:        l.truncated.Load(),
		Connections:      l.conns.Load(),
		ConnectionsTotal: l.connsTotal.Load(),
		Malformed:        map[string]uint64{},
		Dropped:          map[string]uint64{},
		Rejected:         map[string]uint64{},
		Closed:           map[string]uint64{},
	}
	if r := l.relp; r != nil {
		st.RELP = &RELPStats{Sessions: r.open.Load(), InFlight: r.inFlight.Load(), AcksSent: r.acks.Load()}
	}
	if m := l.reasons.Load(); m != nil {
		for k, c := range *m {
			switch k.kind {
			case "malformed":
				st.Malformed[k.why] = c.Load()
			case "rejected":
				st.Rejected[k.why] = c.Load()
			case "closed":
				st.Closed[k.why] = c.Load()
			default:
				st.Dropped[k.why] = c.Load()
			}
		}
	}
	return st
}

// reasonKey names one malformed/rejected/closed/dropped counter.
type reasonKey struct{ kind, why string }

// reason returns the counter for a malformed/dropped reason, creating it
// on first use. Only error paths call it, but a flood of garbage calls it
// for every message, so a hit allocates nothing: the counters sit in an
// immutable map that is copied when a reason is first seen (a handful
// per bind).
func (l *Listener) reason(kind, why string) *metrics.Counter {
	k := reasonKey{kind, why}
	if m := l.reasons.Load(); m != nil {
		if c, ok := (*m)[k]; ok {
			return c
		}
	}
	l.reasonsMu.Lock()
	defer l.reasonsMu.Unlock()
	old := l.reasons.Load()
	if old != nil {
		if c, ok := (*old)[k]; ok {
			return c
		}
	}
	var c *metrics.Counter
	switch kind {
	case "malformed":
		c = l.reg.Counter("wharf_frontend_malformed_total", "Malformed input by reason (oversize, framing and parse errors).", append(l.labels, "reason", why)...)
	case "rejected":
		c = l.reg.Counter("wharf_frontend_rejected_total", "Connections (TCP) or datagrams (UDP) refused before reading, by reason (acl, maxconn, maxconn_per_ip, tls_handshake).", append(l.labels, "reason", why)...)
	case "closed":
		c = l.reg.Counter("wharf_frontend_closed_total", "TCP connections closed by wharf, by reason (idle_timeout, frame_timeout).", append(l.labels, "reason", why)...)
	default:
		c = l.reg.Counter("wharf_frontend_dropped_total", "Messages dropped at the frontend by reason.", append(l.labels, "reason", why)...)
	}
	m := map[reasonKey]*metrics.Counter{}
	if old != nil {
		m = maps.Clone(*old)
	}
	m[k] = c
	l.reasons.Store(&m)
	return c
}
