package syslog

// RELP output: servers relp://host:port and relp+tls://host:port, for
// rsyslog's imrelp (librelp) and wharf's own RELP input.
//
// A session opens with "open" (offers: relp_version 0, the syslog
// command) and then carries one "syslog" frame per message, up to
// relp_window (librelp's 128 by default) unanswered at a time. Write returns
// nil only when the server answered "200" to every message of the batch,
// so the runner keeps the batch in its queue until then. When the session
// breaks (the server closes, answers an error, sends serverclose, or
// answers nothing within write_timeout), Write fails over as for the
// other schemes and sends only the messages not yet acknowledged, on a
// new session; the runner's retries of the same batch do the same. Those
// resent messages may have reached the server before the session broke:
// RELP is at-least-once, and they are counted (wharf_relp_resent_total).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"wharf/message"
	"wharf/relp"
	"wharf/sinks"
)

// relpSoftware is what wharf offers as relp_software.
const relpSoftware = "wharf"

// relpMaxResponse bounds one response frame from a server.
const relpMaxResponse = 64 << 10

// relpConn is a connection with a RELP session open on it.
type relpConn struct {
	net.Conn
	*relpSession
}

// relpSession is the RELP state of a connection.
type relpSession struct {
	txnr uint32 // last transaction number used
	rbuf []byte // bytes read and not yet parsed (a window of back)
	back []byte
}

// relpBatch remembers, across Write calls, which messages of the batch
// being written the server acknowledged, so a retry sends only the rest.
// A batch is recognised by its messages (pointer, receive time, size):
// the runner retries a failed batch with the same messages.
type relpBatch struct {
	ids   []relpID
	acked []bool
	sent  []bool // sent at least once: sending again is a resend
}

type relpID struct {
	m        *message.Message
	received int64
	size     int
}

// track makes b describe batch, keeping what it knew if batch is the
// batch it described.
func (b *relpBatch) track(batch []*message.Message) {
	same := len(b.ids) == len(batch)
	for i := 0; same && i < len(batch); i++ {
		m := batch[i]
		same = b.ids[i] == relpID{m, m.Received, len(m.Raw)}
	}
	if same {
		return
	}
	b.ids, b.acked, b.sent = b.ids[:0], b.acked[:0], b.sent[:0]
	for _, m := range batch {
		b.ids = append(b.ids, relpID{m, m.Received, len(m.Raw)})
		b.acked = append(b.acked, false)
		b.sent = append(b.sent, false)
	}
}

// done forgets the batch (it was accepted), dropping its references.
func (b *relpBatch) done() {
	clear(b.ids)
	b.ids, b.acked, b.sent = b.ids[:0], b.acked[:0], b.sent[:0]
}

// RELPStats are the RELP output counters of a sink.
type RELPStats struct {
	// AcksReceived counts messages the servers acknowledged.
	AcksReceived uint64
	// Resent counts messages sent again after a session broke before
	// they were acknowledged (each possibly a duplicate at the server).
	Resent uint64
	// InFlight is how many messages wait for an answer now.
	InFlight int64
}

// RELPStats returns the RELP counters (zero without relp:// servers).
func (s *Syslog) RELPStats() RELPStats {
	return RELPStats{AcksReceived: s.relpAcks.Load(), Resent: s.relpResent.Load(), InFlight: s.relpInFlight.Load()}
}

// HasRELP reports whether any server is relp:// or relp+tls://.
func (s *Syslog) HasRELP() bool {
	for _, srv := range s.servers {
		if srv.relp {
			return true
		}
	}
	return false
}

// relpOpen starts a session on a fresh connection: "open" with wharf's
// offers, and the server's answer must be 200 with the syslog command.
func (s *Syslog) relpOpen(c net.Conn) (*relpConn, error) {
	rs := &relpSession{txnr: 1}
	_ = c.SetDeadline(time.Now().Add(s.dialTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(relp.AppendFrame(nil, 1, relp.CmdOpen, relp.ClientOffers(relpSoftware))); err != nil {
		return nil, fmt.Errorf("relp open: %w", err)
	}
	f, err := rs.read(c)
	if err != nil {
		return nil, fmt.Errorf("relp open: %w", err)
	}
	if string(f.Cmd) != relp.CmdRsp || f.Txnr != 1 {
		return nil, fmt.Errorf("relp open: server sent %d %q instead of an answer", f.Txnr, f.Cmd)
	}
	code, text, offers, err := relp.ParseRsp(f.Data)
	if err != nil {
		return nil, fmt.Errorf("relp open: %w", err)
	}
	if code != 200 {
		return nil, fmt.Errorf("relp open: server refused the session: %d %s", code, text)
	}
	if err := relp.CheckServerOffers(offers); err != nil {
		return nil, fmt.Errorf("relp open: %w", err)
	}
	rs.rbuf = rs.rbuf[:0]
	return &relpConn{c, rs}, nil
}

// read returns the next frame from c (its Data valid until the next read).
func (rs *relpSession) read(c net.Conn) (relp.Frame, error) {
	for {
		f, n, _, err := relp.Next(rs.rbuf, relpMaxResponse)
		if err != nil {
			return f, err
		}
		if n > 0 {
			// The frame stays valid until the next read: consume by
			// reslicing, compact only before reading more.
			rs.rbuf = rs.rbuf[n:]
			return f, nil
		}
		if len(rs.back) < 8192 || len(rs.rbuf) > len(rs.back)/2 {
			rs.back = make([]byte, max(2*len(rs.rbuf), 8192, len(rs.back)))
		}
		rs.rbuf = rs.back[:copy(rs.back, rs.rbuf)]
		k, err := c.Read(rs.rbuf[len(rs.rbuf):cap(rs.rbuf)])
		rs.rbuf = rs.rbuf[:len(rs.rbuf)+k]
		if err != nil && k == 0 {
			return f, err
		}
	}
}

// relpInFlight is one sent, unanswered message.
type relpInFlight struct {
	txnr uint32
	idx  int
}

// sendRELP writes what of the batch is not acknowledged yet over the RELP
// session on s.conn (opening one first), keeping at most a window of
// messages unanswered, and returns once every message is acknowledged.
func (s *Syslog) sendRELP(ctx context.Context, srv *server, batch []*message.Message) error {
	if s.conn == nil {
		c, err := s.dial(ctx, srv) // dial opens the session
		if err != nil {
			return err
		}
		s.conn = c
	}
	conn, ok := s.conn.(*relpConn)
	if !ok { // cannot happen: dial makes every relp:// connection a *relpConn
		return errors.New("relp: connection without a session")
	}
	rs, b := conn.relpSession, &s.relpBatch
	b.track(batch)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	deadline := func() time.Time {
		d := time.Now().Add(s.writeTimeout)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		return d
	}
	inflight := s.relpWindow[:0]
	defer func() {
		s.relpInFlight.Store(0)
		s.relpWindow = inflight[:0]
	}()
	next := 0
	for {
		out := s.buf[:0]
		for next < len(batch) && len(inflight) < s.window {
			i := next
			next++
			if b.acked[i] {
				continue
			}
			if b.sent[i] {
				s.relpResent.Add(1)
			}
			b.sent[i] = true
			rs.txnr = relp.NextTxnr(rs.txnr)
			data := batch[i].Raw
			if s.enc != sinks.EncodingRaw {
				s.ebuf = s.enc.Append(s.ebuf[:0], batch[i])
				data = s.ebuf
			}
			out = relp.AppendFrame(out, rs.txnr, relp.CmdSyslog, data)
			inflight = append(inflight, relpInFlight{rs.txnr, i})
		}
		s.buf = out
		s.relpInFlight.Store(int64(len(inflight)))
		if len(out) > 0 {
			_ = conn.SetWriteDeadline(deadline())
			if _, err := conn.Write(out); err != nil {
				return s.relpErr(ctx, "write", err)
			}
		}
		if len(inflight) == 0 {
			b.done()
			return nil
		}
		// Read answers until the window has room again (or all came).
		_ = conn.SetReadDeadline(deadline())
		f, err := rs.read(conn)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				return fmt.Errorf("relp: no answer within %s to %d unacknowledged messages", s.writeTimeout, len(inflight))
			}
			return s.relpErr(ctx, "read", err)
		}
		switch string(f.Cmd) {
		case relp.CmdRsp:
		case relp.CmdServerClose:
			return errors.New("relp: server closed the session (serverclose)")
		default:
			return fmt.Errorf("relp: server sent command %q", f.Cmd)
		}
		code, text, _, err := relp.ParseRsp(f.Data)
		if err != nil {
			return err
		}
		k := -1
		for j := range inflight {
			if inflight[j].txnr == f.Txnr {
				k = j
				break
			}
		}
		if k < 0 {
			return fmt.Errorf("relp: answer to transaction %d, which is not waiting for one", f.Txnr)
		}
		if code != 200 {
			return fmt.Errorf("relp: server answered %d %s to a message", code, text)
		}
		b.acked[inflight[k].idx] = true
		s.relpAcks.Add(1)
		inflight = append(inflight[:k], inflight[k+1:]...)
	}
}

// relpErr wraps an I/O error of a RELP session; a cancelled ctx wins.
func (s *Syslog) relpErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return fmt.Errorf("%s: %w", op, err)
}

// relpClose ends a session politely: "close", and its answer awaited
// briefly (librelp's server answers, then closes).
func (s *Syslog) relpClose() {
	c, ok := s.conn.(*relpConn)
	if !ok {
		return
	}
	rs := c.relpSession
	rs.txnr = relp.NextTxnr(rs.txnr)
	_ = s.conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := s.conn.Write(relp.AppendFrame(nil, rs.txnr, relp.CmdClose, nil)); err != nil {
		return
	}
	for {
		f, err := rs.read(s.conn)
		if err != nil || (string(f.Cmd) == relp.CmdRsp && f.Txnr == rs.txnr) {
			return
		}
	}
}
