package ingest

// RELP input (relp:// and relp+tls:// binds), interoperating with
// rsyslog's omrelp (librelp).
//
// Like tls:// binds these are served by a net.Listener with goroutines
// per connection rather than by gnet: a RELP session must write answers
// that become due on other goroutines (a sink runner confirming a
// delivery), long after the read that brought the message. Each session
// has a reader, which reads, parses frames with package relp and hands
// messages on exactly as the other binds do (Listener.deliver, one
// EnqueueBatch per destination and read), and a writer, which sends the
// "rsp" answers in transaction order as they become due.
//
// When a message is answered depends on relp_ack:
//   - "queued": once the read's EnqueueBatch calls returned with the
//     message in every sink's queue (the reader completes it);
//   - "durable" and "delivered": the message carries its transaction as
//     message.Message.Ack; a sink runner confirms it when the message is in
//     its disk buffer or delivered, and the last Release completes the
//     transaction. conf makes sure "durable" only runs with a disk buffer
//     on every sink.
//
// A message a sink drops (queue full, retries exhausted, shutdown) is
// never answered: the session is closed instead, and the sender resends
// every unanswered message after it reconnects (librelp does).
//
// The window: a session holds at most relp_window unanswered
// transactions; at that point the reader hands over what it has read and
// waits for answers to go out before it reads on, so memory per session
// is bounded and TCP flow control holds the sender back.
//
// Protocol errors (a malformed frame, a DATALEN over max_message_size, a
// wrong transaction number, syslog before open) close the session with a
// log line and are counted as wharf_frontend_closed_total{reason=
// "relp_<what>"}; other sessions of the bind are not affected. On
// shutdown each session's answers that are due are written, then the
// "serverclose" hint, then the connection is closed.

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
	"wharf/message"
	"wharf/metrics"
	"wharf/relp"
	"wharf/route"
)

// relpSoftware is what wharf says it is in RELP offers.
const relpSoftware = "wharf"

// relpAckLevel is relp_ack.
type relpAckLevel uint8

const (
	relpAckQueued relpAckLevel = iota
	relpAckDurable
	relpAckDelivered
)

func parseRELPAck(s string) relpAckLevel {
	switch s {
	case "durable":
		return relpAckDurable
	case "delivered":
		return relpAckDelivered
	}
	return relpAckQueued
}

// relpBind is the state of a relp:// or relp+tls:// bind.
type relpBind struct {
	tls *tlsBind // relp+tls:// only: certificates, handshake config

	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	sessions map[*relpSession]struct{}
	closing  atomic.Bool

	open     *metrics.Gauge   // sessions past "open"
	inFlight *metrics.Gauge   // unanswered transactions, all sessions
	acks     *metrics.Counter // rsp 200 sent for syslog frames
	opened   *metrics.Counter // sessions opened
	// warn throttles the "RELP session closed" warning, frameWarn the
	// frame_timeout one.
	warn, frameWarn logthrottle.Throttle
}

func newRELPBind(fe *conf.Frontend, b conf.Bind, reg *metrics.Registry, labels []string) (*relpBind, error) {
	r := &relpBind{sessions: map[*relpSession]struct{}{}}
	if b.Scheme == "relp+tls" {
		var err error
		if r.tls, err = newTLSBind(fe); err != nil {
			return nil, err
		}
	}
	r.open = reg.Gauge("wharf_relp_sessions", "Open RELP sessions (past the open command), per bind.", labels...)
	r.opened = reg.Counter("wharf_relp_sessions_total", "RELP sessions opened, per bind.", labels...)
	r.inFlight = reg.Gauge("wharf_relp_window_in_flight", "RELP transactions received and not yet answered, over all sessions of the bind.", labels...)
	r.acks = reg.Counter("wharf_relp_acks_sent_total", "Messages acknowledged to RELP senders (rsp 200 to syslog), per bind.", labels...)
	return r, nil
}

// startRELP opens the TCP socket and starts the accept loop.
func (l *Listener) startRELP() error {
	ln, err := l.listenStream()
	if err != nil {
		return err
	}
	l.relp.ln = ln
	l.relp.wg.Add(1)
	go func() {
		defer l.relp.wg.Done()
		l.acceptLoop(ln, func(c net.Conn, peer netip.AddrPort, s *settings) bool {
			ss := newRELPSession(l, c, peer, s.relpWindow)
			if !l.relp.track(ss) {
				return false
			}
			l.relp.wg.Add(1)
			go l.serveRELP(ss)
			return true
		})
	}()
	return nil
}

func (r *relpBind) track(s *relpSession) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing.Load() {
		return false
	}
	r.sessions[s] = struct{}{}
	return true
}

func (r *relpBind) untrack(s *relpSession) {
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
}

// stopRELP closes the listener, then has every session stop reading,
// answer what is due, send serverclose and close; it waits for that until
// ctx ends.
func (l *Listener) stopRELP(ctx context.Context) error {
	if l.relp.ln == nil {
		return nil
	}
	l.relp.mu.Lock()
	l.relp.closing.Store(true)
	err := l.relp.ln.Close()
	for s := range l.relp.sessions {
		s.shutdown()
	}
	l.relp.mu.Unlock()
	done := make(chan struct{})
	go func() { l.relp.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.relp.mu.Lock()
		for s := range l.relp.sessions {
			s.conn.Close()
		}
		l.relp.mu.Unlock()
		return fmt.Errorf("ingest: stop %s://%s: %w", l.bind.Scheme, l.addr, ctx.Err())
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ingest: stop %s://%s: %w", l.bind.Scheme, l.addr, err)
	}
	return nil
}

// relpTxn is one received transaction waiting for its answer. It is the
// message.Acker of its message under relp_ack durable/delivered.
type relpTxn struct {
	s    *relpSession
	txnr uint32
	// pending counts what the answer still waits for: 1 while the message
	// is on its way (0 for open, close and unknown commands).
	pending atomic.Int32
	failed  atomic.Bool
	syslog  bool   // a syslog frame: counted as an ack
	code    int    // answer: 200, 500
	text    string // answer text (offers for open)
	close   bool   // close the session after this answer
}

// Done is the message.Acker hook: every holder of the message is done.
func (t *relpTxn) Done(ok bool) {
	if !ok {
		t.failed.Store(true)
	}
	if t.pending.Add(-1) == 0 {
		t.s.wakeWriter()
	}
}

// relpSession is one RELP connection.
type relpSession struct {
	l    *Listener
	raw  net.Conn // the TCP connection
	conn net.Conn // raw, or the TLS connection over it
	peer netip.AddrPort

	// mu guards the ring of unanswered transactions. The reader adds at
	// the tail; the writer answers and removes at the head. Slots are
	// reused only after their answer went out (their Done has come). The
	// ring starts at relpRingStart slots and doubles when the reader
	// finds it full, up to slots (relp_window+1): a session pays for the
	// window it uses, not the one it may use (at relp_window 65536 the
	// whole ring is 512 KiB of pointers).
	mu    sync.Mutex
	ring  []*relpTxn
	slots int
	head  int
	n     int
	space chan struct{} // closed (and replaced) by the writer when it frees slots

	wake     chan struct{} // cap 1: the writer has answers to look at
	readDone chan struct{} // closed when the reader stops
	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once
	stopping atomic.Bool   // shutdown: stop reading, serverclose
	dead     chan struct{} // closed by fail
	failed   atomic.Bool   // the session is closed for an error
	opened   bool          // counted in the open gauge (reader only)
}

func newRELPSession(l *Listener, c net.Conn, peer netip.AddrPort, window int) *relpSession {
	// The window, plus the close (or an unknown command) that may
	// follow a full window.
	slots := window + 1
	s := &relpSession{
		l: l, raw: c, conn: c, peer: peer,
		ring:     make([]*relpTxn, min(slots, relpRingStart)),
		slots:    slots,
		space:    make(chan struct{}),
		wake:     make(chan struct{}, 1),
		readDone: make(chan struct{}),
		stop:     make(chan struct{}),
		dead:     make(chan struct{}),
	}
	return s
}

func (s *relpSession) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// shutdown makes the reader stop (its blocked read fails at once); the
// writer then answers what is due and sends serverclose.
func (s *relpSession) shutdown() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		close(s.stop)
		_ = s.raw.SetReadDeadline(time.Unix(1, 0))
	})
}

// fail closes the session for err, counted by reason. Safe from the
// reader and the writer; the first call wins.
func (s *relpSession) fail(reason string, err error) {
	if s.failed.Swap(true) {
		return
	}
	close(s.dead)
	s.l.reason("closed", "relp_"+reason).Inc()
	// One line a second: a flood of senders of garbage would write one
	// per session. sessions is how many closed since the last line.
	if ok, n := s.l.relp.warn.Allow(time.Now(), time.Second); ok {
		s.l.log.Warn("RELP session closed", "peer", s.peer, "reason", reason, "err", err, "sessions", n)
	}
	s.conn.Close()
}

// acquire takes the next free slot for the transaction txnr of kind,
// waiting while the window is full (flush hands over what the reader
// holds first, so the slots can free). The slot is filled before it is
// published to the writer: a syslog transaction waits for its message
// (pending 1), the others are due at once. It returns nil when the
// session ends meanwhile.
func (s *relpSession) acquire(txnr uint32, kind relp.Kind, flush func()) *relpTxn {
	limit := s.slots
	if kind == relp.KindSyslog {
		limit-- // the last slot is for a close or unknown command after a full window
	}
	for {
		s.mu.Lock()
		if s.n < limit {
			if s.n == len(s.ring) {
				s.grow()
			}
			i := (s.head + s.n) % len(s.ring)
			if s.ring[i] == nil { // slots are made as the window is used
				s.ring[i] = &relpTxn{s: s}
			}
			t := s.ring[i]
			t.txnr, t.code, t.text, t.close, t.syslog = txnr, 200, "OK", false, kind == relp.KindSyslog
			switch kind {
			case relp.KindOpen:
				t.text = relp.OpenResponse(relpSoftware)
			case relp.KindClose:
				t.close = true
			case relp.KindUnknown:
				t.code, t.text = 500, "command not supported"
			}
			t.failed.Store(false)
			if t.syslog {
				t.pending.Store(1)
			}
			s.n++
			s.mu.Unlock()
			s.l.relp.inFlight.Add(1)
			return t
		}
		space := s.space
		s.mu.Unlock()
		flush()
		select {
		case <-space:
		case <-s.dead:
			return nil
		case <-s.stop:
			return nil
		}
	}
}

// grow doubles the ring (up to s.slots), which is full: its transactions
// move to the front of the new one in order, with the slots made so far.
// Called with s.mu held.
func (s *relpSession) grow() {
	ring := make([]*relpTxn, min(2*len(s.ring), s.slots))
	for i := range s.n {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
}

// serveRELP runs one session: TLS handshake (relp+tls), then the reader
// here and the writer in its own goroutine.
func (l *Listener) serveRELP(s *relpSession) {
	defer l.relp.wg.Done()
	defer l.conns.Add(-1)
	defer l.perIP.Release(s.peer.Addr())
	defer l.relp.untrack(s)
	defer s.raw.Close()

	if t := l.relp.tls; t != nil {
		hc := &handshakeConn{Conn: s.raw}
		tc := tls.Server(hc, t.base)
		_ = s.raw.SetDeadline(time.Now().Add(time.Duration(t.handshake.Load())))
		if err := tc.Handshake(); err != nil {
			if !l.relp.closing.Load() {
				l.handshakeFailed(t, hc, s.peer, err)
			}
			return
		}
		_ = s.raw.SetDeadline(time.Time{})
		s.conn = tc
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writer()
	}()
	s.read()
	close(s.readDone)
	s.wakeWriter()
	<-writerDone
	if s.opened {
		l.relp.open.Add(-1)
	}
	// Transactions never answered leave the in-flight gauge with the session.
	s.mu.Lock()
	l.relp.inFlight.Add(-int64(s.n))
	s.n = 0
	s.mu.Unlock()
}

// read is the reader: frames in, messages handed on, until the peer
// closes, an error, a timeout or shutdown.
func (s *relpSession) read() {
	l := s.l
	st := l.settings.Load()
	// A whole frame always fits in full bytes: the parser refuses a
	// DATALEN over max. The buffer starts at relpReadStart and doubles
	// towards full when a frame does not fit or a read fills it (more is
	// waiting): a session that sends nothing, or little, does not pin
	// max_message_size.
	full := relp.MaxHeader + st.max + 1
	buf := make([]byte, min(relpReadStart, full))
	n, filled := 0, false
	var proto relp.Server
	var out outbox
	var queued []*relpTxn // transactions of this read, answered once queued (relp_ack = "queued")
	var partialSince time.Time
	ackLevel := st.relpAck
	var big relpOversize // a syslog frame over max_message_size being read past
	// A session must send "open" within header_timeout: one that sends
	// nothing would otherwise hold its goroutines and buffers (~17 KiB)
	// until client_timeout, off by default (audit: 20,000 such sessions,
	// 340 MiB).
	openBy := time.Now().Add(st.open)

	// handOver flushes the outbox; under "queued" the read's
	// transactions are answered if every message is in every queue.
	handOver := func() {
		ok := out.flush(l, st, true)
		for _, t := range queued {
			t.Done(ok)
		}
		clear(queued)
		queued = queued[:0]
	}
	defer handOver()

	for {
		if s.stopping.Load() || s.failed.Load() {
			return
		}
		var deadline time.Time
		why := "" // the reason a timeout closes the session with
		if st.idle > 0 {
			deadline, why = time.Now().Add(st.idle), "idle_timeout"
		}
		if st.frame > 0 && !partialSince.IsZero() {
			if d := partialSince.Add(st.frame); deadline.IsZero() || d.Before(deadline) {
				deadline, why = d, "frame_timeout"
			}
		}
		if !s.opened && st.open > 0 && (deadline.IsZero() || openBy.Before(deadline)) {
			deadline, why = openBy, "relp_open_timeout"
		}
		_ = s.raw.SetReadDeadline(deadline)
		if (n == len(buf) || filled) && len(buf) < full {
			nb := make([]byte, min(2*len(buf), full))
			copy(nb, buf[:n])
			buf = nb
		}
		k, err := s.conn.Read(buf[n:])
		filled = k == len(buf)-n
		if k > 0 {
			n += k
			now := time.Now()
			var fe *route.Frontend
			if tab := l.routes.Load(); tab != nil {
				fe = tab.Frontend(l.frontend)
			}
			off := 0
			var msgs, bytes uint64
			for off < n {
				if big.active {
					used, done, perr := big.take(buf[off:n])
					off += used
					if perr != nil {
						s.protocolError(perr)
						return
					}
					if !done {
						break
					}
					if !s.oversized(&big, st, fe, &out, &queued, ackLevel, handOver, now) {
						return
					}
					msgs, bytes = msgs+1, bytes+uint64(len(big.keep))
					continue
				}
				f, used, _, perr := relp.Next(buf[off:n], st.max)
				if ov, ok := perr.(*relp.Oversize); ok && string(ov.Cmd) == relp.CmdSyslog {
					// Read past it (oversize: truncate or drop) instead of
					// closing the session, which the sender would answer by
					// sending it again, forever.
					if _, perr = proto.Accept(relp.Frame{Txnr: ov.Txnr, Cmd: ov.Cmd}); perr == nil {
						big.start(ov, st.truncate)
						off += ov.HeaderLen
						continue
					}
				}
				if perr != nil {
					s.protocolError(perr)
					return
				}
				if used == 0 {
					break
				}
				off += used
				kind, perr := proto.Accept(f)
				if perr != nil {
					s.protocolError(perr)
					return
				}
				t := s.acquire(f.Txnr, kind, handOver)
				if t == nil {
					return
				}
				switch kind {
				case relp.KindOpen:
					if !s.opened {
						s.opened = true
						l.relp.open.Add(1)
						l.relp.opened.Inc()
					}
				case relp.KindSyslog:
					if st.rate != nil {
						s.throttle(st, handOver)
					}
					var ack message.Acker
					if ackLevel == relpAckQueued {
						queued = append(queued, t)
					} else {
						ack = t
					}
					l.deliver(&out, st, fe, f.Data, now.UnixNano(), s.peer, ack)
					msgs, bytes = msgs+1, bytes+uint64(len(f.Data))
				}
				if kind == relp.KindClose {
					break
				}
			}
			if msgs > 0 {
				l.received.Add(msgs)
				l.bytes.Add(bytes)
			}
			handOver()
			s.wakeWriter()
			if proto.Closed() {
				return
			}
			n = copy(buf, buf[off:n])
			switch {
			case n == 0 && !big.active: // an oversize frame read past is partial too
				partialSince = time.Time{}
			case msgs > 0 || partialSince.IsZero():
				partialSince = now
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case s.stopping.Load() || s.failed.Load():
		case errors.As(err, &ne) && ne.Timeout() && why == "frame_timeout":
			l.frameTimedOut(&l.relp.frameWarn, s.peer, st)
		case errors.As(err, &ne) && ne.Timeout():
			l.reason("closed", why).Inc()
		}
		if n > 0 || big.active {
			l.reason("dropped", "incomplete_frame_at_close").Inc()
		}
		return
	}
}

// relpOversize reads past the data of a syslog frame whose DATALEN is
// over max_message_size, keeping its first max bytes when the frontend
// truncates (oversize = "truncate"), so the session goes on: the reader's
// buffer never holds more than one max-size frame.
type relpOversize struct {
	active bool
	txnr   uint32
	left   int    // data bytes still to read
	trail  bool   // the data is read; the LF is due
	keep   []byte // the first max bytes, nil when dropping
	max    int
	buf    []byte // keep's storage, reused by the session
}

func (o *relpOversize) start(ov *relp.Oversize, truncate bool) {
	*o = relpOversize{active: true, txnr: ov.Txnr, left: ov.DataLen, max: ov.Max, buf: o.buf}
	if truncate {
		if cap(o.buf) < ov.Max {
			o.buf = make([]byte, 0, ov.Max)
		}
		o.keep = o.buf[:0]
	}
}

// take consumes what b holds of the frame's data and trailer; done once
// the LF after the data is read.
func (o *relpOversize) take(b []byte) (used int, done bool, err error) {
	if !o.trail {
		k := min(o.left, len(b))
		if o.keep != nil && len(o.keep) < o.max {
			o.keep = append(o.keep, b[:min(k, o.max-len(o.keep))]...)
		}
		o.left -= k
		used = k
		o.trail = o.left == 0
	}
	if !o.trail || used == len(b) {
		return used, false, nil
	}
	if b[used] != '\n' {
		return used, false, &relp.Error{Reason: "frame", Detail: fmt.Sprintf("oversize frame %d not ended by LF (byte %q)", o.txnr, b[used])}
	}
	o.active = false
	return used + 1, true, nil
}

// oversized hands on the frame big read past: truncated and delivered
// (counted malformed and truncated, answered as any message), or dropped
// (counted malformed and dropped, answered 200: a drop by policy). It
// reports false when the session is ending.
func (s *relpSession) oversized(big *relpOversize, st *settings, fe *route.Frontend, out *outbox, queued *[]*relpTxn, ackLevel relpAckLevel, flush func(), now time.Time) bool {
	l := s.l
	t := s.acquire(big.txnr, relp.KindSyslog, flush)
	if t == nil {
		return false
	}
	if st.rate != nil {
		s.throttle(st, flush)
	}
	l.reason("malformed", "oversize").Inc()
	if big.keep == nil {
		l.reason("dropped", "oversize").Inc()
		if ackLevel == relpAckQueued {
			*queued = append(*queued, t)
		} else {
			t.Done(true)
		}
		return true
	}
	l.truncated.Inc()
	big.keep = framing.CutUTF8(big.keep)
	var ack message.Acker
	if ackLevel == relpAckQueued {
		*queued = append(*queued, t)
	} else {
		ack = t
	}
	l.deliver(out, st, fe, big.keep, now.UnixNano(), s.peer, ack)
	// big.keep's storage is reused by the next oversize frame, and the
	// outbox may still refer to it (see outbox): hand over now.
	flush()
	return true
}

// throttle waits until the bind's rate limits pass one more message from
// the peer, handing over what the read holds first so that is not held
// up. The sender's window fills meanwhile and holds it back, as a full
// queue does: a RELP sender is slowed, never refused. A shutdown ends the
// wait and the message passes (charged as debt, as at a tcp:// close).
func (s *relpSession) throttle(st *settings, flush func()) {
	counted := false
	var t *time.Timer
	for {
		wait := st.rate.take(s.peer.Addr(), monoNow(), !counted)
		if wait == 0 {
			return
		}
		if !counted {
			flush()
			s.wakeWriter()
			counted = true
		}
		if t == nil {
			t = time.NewTimer(time.Duration(wait))
			defer t.Stop()
		} else {
			t.Reset(time.Duration(wait))
		}
		select {
		case <-t.C:
		case <-s.stop:
			st.rate.charge(s.peer.Addr(), monoNow())
			return
		case <-s.dead:
			return
		}
	}
}

// protocolError closes the session for a RELP protocol violation.
func (s *relpSession) protocolError(err error) {
	reason := "protocol"
	var e *relp.Error
	var ov *relp.Oversize
	switch {
	case errors.As(err, &e):
		reason = e.Reason
	case errors.As(err, &ov): // not a syslog frame, or one out of sequence
		reason = "datalen"
	}
	s.fail(reason, err)
}

// writer sends the answers that are due, in transaction order, until the
// reader stopped and nothing more can be answered; then serverclose on
// shutdown, and the connection closes.
func (s *relpSession) writer() {
	l := s.l
	var b []byte
	readerGone := false
	var linger <-chan time.Time // the peer left with answers due: wait this long for them
	for {
		if !readerGone {
			select {
			case <-s.wake:
			case <-s.readDone:
			}
		} else {
			select {
			case <-s.wake:
			case <-s.stop:
			case <-s.dead:
			case <-linger:
				s.conn.Close()
				return
			}
		}
		select {
		case <-s.readDone:
			readerGone = true
		default:
		}
		b = b[:0]
		var acks, answered int
		closeAfter, failed := false, false
		s.mu.Lock()
		for s.n > 0 {
			t := s.ring[s.head]
			if t.pending.Load() != 0 {
				break
			}
			if t.failed.Load() {
				failed = true
				break
			}
			b = relp.AppendRsp(b, t.txnr, t.code, t.text)
			if t.syslog {
				acks++
			}
			answered++
			closeAfter = closeAfter || t.close
			s.head = (s.head + 1) % len(s.ring)
			s.n--
		}
		if answered > 0 {
			close(s.space)
			s.space = make(chan struct{})
		}
		left := s.n
		s.mu.Unlock()
		l.relp.inFlight.Add(-int64(answered))
		if failed {
			s.fail("not_delivered", errors.New("a sink dropped a message before it was safe; the sender resends what was not acknowledged"))
			return
		}
		if len(b) > 0 && !s.failed.Load() {
			_ = s.raw.SetWriteDeadline(time.Now().Add(relpWriteTimeout))
			if _, err := s.conn.Write(b); err != nil {
				s.fail("write", err)
				return
			}
			l.relp.acks.Add(uint64(acks))
		}
		if closeAfter {
			s.conn.Close()
			return
		}
		if !readerGone {
			continue
		}
		if s.stopping.Load() && !s.failed.Load() {
			// Shutdown: what is not answered by now is resent by the
			// sender to whoever listens next. librelp's hint first.
			_ = s.raw.SetWriteDeadline(time.Now().Add(relpWriteTimeout))
			_, _ = s.conn.Write(relp.AppendFrame(b[:0], 0, relp.CmdServerClose, nil))
			s.conn.Close()
			return
		}
		if left == 0 || s.failed.Load() {
			s.conn.Close()
			return
		}
		// The peer closed its side (or timed out) with answers still
		// due: wait a while for them, the sender may still read them.
		if linger == nil {
			linger = time.After(relpWriteTimeout)
		}
	}
}

// relpWriteTimeout bounds writing answers to a sender that stopped
// reading them.
const relpWriteTimeout = 30 * time.Second

// relpRingStart is the slots a session's ring of unanswered
// transactions starts with (see relpSession.mu): librelp's default window
// of 128 takes four doublings.
const relpRingStart = 16

// relpReadStart is a session's first read buffer (see read): what an
// idle session holds.
const relpReadStart = 4 << 10

// updateRELP reloads the certificates of a relp+tls:// bind.
func (l *Listener) updateRELP(fe *conf.Frontend) {
	if l.relp.tls == nil {
		return
	}
	if err := l.relp.tls.load(fe); err != nil {
		l.log.Error("TLS files not reloaded; the previous certificate stays in use", "err", err)
		return
	}
	l.log.Info("TLS certificate loaded", "cert", fe.TLSCert)
}

// relpWindowOrDefault is n, or librelp's window when n is unset (configs built in code).
func relpWindowOrDefault(n int) int {
	if n <= 0 {
		return relp.DefaultWindow
	}
	return n
}
