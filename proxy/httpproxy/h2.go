package httpproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"wharf/acl"
	"wharf/metrics"
)

// HTTP/2 on TLS frontends (h2 by ALPN). Each request stream is turned
// into the HTTP/1.1 request head the client would have sent (validated
// first, so nothing the HTTP/2 framing allows can smuggle a line break
// into it), parsed by the HTTP/1.1 parser and then routed, rewritten
// (Host, X-Forwarded-*, Forwarded, hop-by-hop fields) and sent to a
// pooled server connection by the same code as an HTTP/1.1 request. The
// response head and body come back as HEADERS and DATA frames.
//
// One goroutine reads frames (serveH2); each stream runs in a goroutine
// of its own (runStream); frames are written under wmu, flushed per
// frame group.

// Limits of one HTTP/2 connection.
const (
	h2MaxStreams       = 100     // SETTINGS_MAX_CONCURRENT_STREAMS, and the most streams with a running handler
	h2ConnRecvWindow   = 1 << 20 // the connection's receive window (request bodies buffered at most)
	h2StreamRecvWindow = 65535   // each stream's (the protocol's default, not changed)
	h2MaxFrameSize     = 16384
	h2MaxResetsPerSec  = 100 // client RST_STREAMs per second before GOAWAY ENHANCE_YOUR_CALM
	h2MaxContinuations = 128 // CONTINUATION frames in one header block
	h2BlockSlack       = 4096
	h2BombFactor       = 4           // a decoded header list past this x max_header_bytes ends the connection
	h2DecodeStep       = 1024        // header block bytes decoded between two looks at the list's size
	h2GoAwayLinger     = time.Second // after the last GOAWAY: time for the client to close
)

// Reasons a connection or stream was refused or ended by a limit, for
// wharf_proxy_http2_errors_total.
const (
	h2RMaxStreams = iota
	h2RHeaderList
	h2RHeaderBlock
	h2RRapidReset
	h2RIdle
	h2RProtocol
	h2RFlowControl
	h2RCompression
	h2RStalled
	h2RPerIP
	h2RNum
)

var h2Reasons = [h2RNum]string{"max_streams", "header_list_size", "header_block_size", "rapid_reset", "idle_timeout", "protocol", "flow_control", "compression", "stalled", "maxconn_per_ip"}

func h2Counters(reg *metrics.Registry, labels []string) (out [h2RNum]*metrics.Counter) {
	for i, r := range h2Reasons {
		out[i] = reg.Counter("wharf_proxy_http2_errors_total", "HTTP/2 streams or connections refused or ended by a limit or a protocol error, by reason.", append(labels[:len(labels):len(labels)], "reason", r)...)
	}
	return out
}

// h2conn is one HTTP/2 client connection.
type h2conn struct {
	f   *Frontend
	tc  *tls.Conn
	raw *conn
	fr  *http2.Framer

	client  netip.AddrPort
	ip      netip.Addr
	ipText  []byte
	trusted bool

	maxBlock int // header block bytes (compressed) accepted before decoding

	// Reader state (serveH2's goroutine only).
	hdec    *hpack.Decoder
	hblock  []byte
	hstream uint32
	hend    bool // the HEADERS had END_STREAM
	hprio   bool // the HEADERS depends on itself
	hconts  int
	fields  []hpack.HeaderField
	hsize   int
	hbig    bool
	resetAt time.Time // when resets was last brought up to date
	resets  float64   // leaky bucket of the client's RST_STREAMs, and the streams we reset for a fault of its own
	linger  bool      // a connection error's GOAWAY went out: close lingering

	wmu   sync.Mutex   // the write side: framer writes, hpack encoder, bw
	wwait atomic.Int32 // writers waiting for wmu: the last one flushes
	// running mirrors handlers for unlockW, which must not take mu.
	running atomic.Int32
	bw      *bufio.Writer
	wd      timedWriter // the write deadline under tc (client_timeout), armed by flushLocked
	owed    bool        // buffered frames a writer left to the next one to flush (wmu held)
	henc    *hpack.Encoder
	hbuf    bytes.Buffer

	mu           sync.Mutex
	cond         *sync.Cond // window updates, resets, close
	streams      map[uint32]*h2stream
	handlers     int
	lastID       uint32
	sendConnWin  int64
	recvConnWin  int64
	peerInitWin  int64
	peerMaxFrame int
	goingAway    bool
	closed       bool
	recent       [64]uint32 // streams closed lately with the client's side ended, for STREAM_CLOSED
	nrecent      int
	ours         [64]uint32 // streams we reset lately: the client's frames in flight are ignored
	nours        int
	idle         *time.Timer
	wg           sync.WaitGroup
}

// h2stream is one request stream. Fields below mu are guarded by the
// connection's mu.
type h2stream struct {
	h      *h2conn
	id     uint32
	notify chan struct{} // body data, end or reset

	sendWin    int64
	recvWin    int64
	body       []byte // request body received, not yet sent on
	remoteDone bool   // END_STREAM received
	trailers   []byte // the request's trailer fields as HTTP/1.1 lines
	// sentEnd: our END_STREAM frame is in the write buffer. Set by the
	// stream before the flush that sends it, read by the reader under mu:
	// with remoteDone it makes the stream closed to frames the client
	// sends after seeing our end, though end() has not forgotten it yet.
	sentEnd atomic.Bool
	reset   bool // by the client, by us, or the connection ended
	// clientReset: the client sent RST_STREAM; its later frames on the
	// stream are STREAM_CLOSED errors (ours reset are ignored).
	clientReset bool
	declared    int64 // content-length, or -1
	got         int64
	pc          *poolConn // the server connection in use, closed on reset
	stalled     bool
	unread      int // body bytes taken but not yet acknowledged by WINDOW_UPDATE
	isHead      bool
	perIP       bool // counted in the frontend's h2Streams until end
}

var errStreamReset = errors.New("stream reset")

// errNotSent: the stream was reset before its request went to the
// server connection it was given, which is left unused.
var errNotSent = errors.New("stream reset before its request was sent")

// handshakeH2 completes the TLS handshake within header_timeout of the
// connection's start and reports whether the client chose h2. A handshake that fails or does
// not finish in time (a plaintext client, a scanner, a stalled
// ClientHello) is counted as rejected{reason="tls_handshake"}, as on
// syslog tls:// binds.
func (f *Frontend) handshakeH2(tc *tls.Conn, raw *conn) (h2, ok bool) {
	raw.Conn.SetReadDeadline(raw.headerDeadline())
	if err := tc.Handshake(); err != nil {
		if !f.shutting.Load() {
			f.m.rejTLS.Inc()
		}
		return false, false
	}
	return tc.ConnectionState().NegotiatedProtocol == "h2", true
}

// stopH2 asks an HTTP/2 connection to go away gracefully (f.mu held).
func (c *conn) stopH2() {
	if c.h2stop == nil {
		return
	}
	select {
	case <-c.h2stop:
	default:
		close(c.h2stop)
	}
}

// serveH2 runs one HTTP/2 connection until it ends.
func (f *Frontend) serveH2(tc *tls.Conn, raw *conn) {
	h := &h2conn{f: f, tc: tc, raw: raw, streams: map[uint32]*h2stream{},
		sendConnWin: 65535, recvConnWin: h2ConnRecvWindow, peerInitWin: 65535, peerMaxFrame: 16384}
	h.wd = timedWriter{conn: raw.Conn, timeout: f.cfg.ClientTimeout.Duration}
	h.cond = sync.NewCond(&h.mu)
	h.client = acl.AddrPortOf(tc.RemoteAddr())
	h.ip = h.client.Addr().Unmap()
	h.trusted = f.trusted.Contains(h.ip)
	if h.ip.IsValid() {
		h.ipText = h.ip.AppendTo(nil)
	}
	maxList := int(f.cfg.MaxHeaderBytes)
	h.maxBlock = maxList + h2BlockSlack
	h.bw = bufio.NewWriterSize(tc, 16<<10)
	h.fr = http2.NewFramer(h.bw, tc)
	h.fr.SetMaxReadFrameSize(h2MaxFrameSize)
	h.fr.SetReuseFrames()
	h.hdec = hpack.NewDecoder(4096, h.onField)
	// A string longer than the block could hold is a compression
	// error; a list past max_header_bytes is answered 431 (onField).
	h.hdec.SetMaxStringLength(2 * h.maxBlock)
	h.henc = hpack.NewEncoder(&h.hbuf)

	stop := make(chan struct{})
	f.mu.Lock()
	raw.h2stop = stop
	if f.shutting.Load() || f.retiring.Load() {
		close(stop)
	}
	f.mu.Unlock()
	done := make(chan struct{})
	defer func() {
		close(done)
		h.mu.Lock()
		h.closed = true
		for _, st := range h.streams {
			st.abortLocked()
		}
		h.cond.Broadcast()
		if h.idle != nil {
			h.idle.Stop()
		}
		h.mu.Unlock()
		if h.linger {
			h.closeLingering()
		}
		tc.Close()
		h.wg.Wait()
	}()

	// The preface and the client's first SETTINGS within header_timeout
	// of connecting, the handshake included.
	raw.Conn.SetReadDeadline(raw.headerDeadline())
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(tc, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		return
	}
	h.wmu.Lock()
	h.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(maxList)},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamRecvWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: h2MaxFrameSize},
	)
	h.fr.WriteWindowUpdate(0, h2ConnRecvWindow-65535)
	err := h.flushLocked()
	h.wmu.Unlock()
	if err != nil {
		return
	}
	first := true
	go func() {
		select {
		case <-stop:
			h.goAway(http2.ErrCodeNo)
		case <-done:
		}
	}()
	for {
		fm, err := h.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				h.count(h2RProtocol)
				if se.Code == http2.ErrCodeFlowControl {
					h.count(h2RFlowControl)
				}
				h.refuse(se.StreamID, se.Code)
				if h.resets > h2MaxResetsPerSec {
					h.connError(http2.ErrCodeEnhanceYourCalm, h2RRapidReset)
					return
				}
				continue
			case errors.As(err, &ce):
				h.connError(http2.ErrCode(ce), h2RProtocol)
			case errors.Is(err, http2.ErrFrameTooLarge):
				h.connError(http2.ErrCodeFrameSize, h2RProtocol)
			}
			return
		}
		if first {
			sf, ok := fm.(*http2.SettingsFrame)
			if !ok || sf.IsAck() {
				h.connError(http2.ErrCodeProtocol, h2RProtocol)
				return
			}
			first = false
			h.mu.Lock()
			raw.Conn.SetReadDeadline(time.Time{})
			h.idle = time.AfterFunc(f.cfg.ClientTimeout.Duration, h.idleFired)
			h.mu.Unlock()
		}
		if code, reason, ok := h.process(fm); !ok {
			h.connError(code, reason)
			return
		}
		if h.resets > h2MaxResetsPerSec { // streams refused for what the client sent
			h.connError(http2.ErrCodeEnhanceYourCalm, h2RRapidReset)
			return
		}
	}
}

func (h *h2conn) count(reason int) { h.f.h2m[reason].Inc() }

// flushLocked flushes what the framer wrote (wmu held), within
// client_timeout.
func (h *h2conn) flushLocked() error {
	h.owed = false
	h.wd.arm() // client_timeout, the deadline moved once per 1/16 of it
	return h.bw.Flush()
}

// lockW takes the write side. unlockW flushes unless another writer is
// waiting for it, which will flush (or leave it to the next): frames of
// concurrent streams leave in one system call.
func (h *h2conn) lockW() {
	h.wwait.Add(1)
	h.wmu.Lock()
	h.wwait.Add(-1)
}

// A writer that leaves its frames to a waiting one sets owed; a writer
// that would not flush (writeHeaders waiting for body bytes) flushes
// when owed, so no frame is left in the buffer with nobody to send it.
func (h *h2conn) unlockW() error {
	if h.wwait.Load() == 0 && h.running.Load() > 1 && h.bw.Buffered() < h2FlushBatch {
		// Other streams are running: let them run once first, so frames
		// they have ready go out in the same write.
		h.wmu.Unlock()
		runtime.Gosched()
		h.wmu.Lock()
		if h.bw.Buffered() == 0 {
			h.wmu.Unlock() // a writer meanwhile flushed
			return nil
		}
	}
	var err error
	if h.wwait.Load() == 0 {
		err = h.flushLocked()
	} else {
		h.owed = true
	}
	h.wmu.Unlock()
	return err
}

// h2FlushBatch: a buffer this full is written without waiting for more.
const h2FlushBatch = 16 << 10

// connError ends the connection with GOAWAY code.
func (h *h2conn) connError(code http2.ErrCode, reason int) {
	h.count(reason)
	// The write side first: a stream that sees goingAway and ends the
	// connection (finish) waits for it, so the GOAWAY leaves first.
	h.wmu.Lock()
	h.mu.Lock()
	last := h.lastID
	h.goingAway = true
	h.mu.Unlock()
	h.fr.WriteGoAway(last, code, nil)
	h.linger = h.flushLocked() == nil
	h.wmu.Unlock()
}

// closeLingering ends the write side after a connection error's GOAWAY
// (close_notify, then TCP's FIN behind it) and drops what the client
// still sends for a while (lingerDrain) before the caller closes: the
// client, which may still be writing and not yet have read the GOAWAY,
// gets it and its code, not a reset that would drop it.
func (h *h2conn) closeLingering() {
	h.wmu.Lock() // no frame half written before close_notify
	err := h.tc.CloseWrite()
	h.wmu.Unlock()
	if err == nil {
		lingerDrain(h.raw.Conn)
	}
}

// goAway starts a graceful close: GOAWAY naming the last stream taken,
// streams in flight finish, then the connection closes.
func (h *h2conn) goAway(code http2.ErrCode) {
	h.wmu.Lock() // as in connError: before goingAway is seen
	h.mu.Lock()
	if h.goingAway || h.closed {
		h.mu.Unlock()
		h.wmu.Unlock()
		return
	}
	h.goingAway = true
	last, n := h.lastID, h.handlers
	h.mu.Unlock()
	h.fr.WriteGoAway(last, code, nil)
	h.flushLocked()
	h.wmu.Unlock()
	if n == 0 {
		h.finish()
	}
}

// finish closes the write side once nothing is in flight after GOAWAY;
// the reader ends when the client closes too, or after h2GoAwayLinger.
func (h *h2conn) finish() {
	h.wmu.Lock() // a GOAWAY being written goes out before the close
	h.tc.CloseWrite()
	h.wmu.Unlock()
	h.raw.Conn.SetReadDeadline(time.Now().Add(h2GoAwayLinger))
}

func (h *h2conn) idleFired() {
	h.mu.Lock()
	idle := h.handlers == 0 && !h.goingAway && !h.closed
	h.mu.Unlock()
	if idle {
		h.count(h2RIdle)
		h.goAway(http2.ErrCodeNo)
	}
}

// resetStream sends RST_STREAM and forgets the stream; aborted reports a
// stream whose handler was running.
func (h *h2conn) resetStream(id uint32, code http2.ErrCode) (aborted bool) {
	h.mu.Lock()
	h.noteOurReset(id)
	if st := h.streams[id]; st != nil {
		st.abortLocked()
		h.cond.Broadcast()
		aborted = true
	}
	h.mu.Unlock()
	h.lockW()
	h.fr.WriteRSTStream(id, code)
	h.unlockW()
	return aborted
}

// refuse is resetStream for the reader: a stream reset because of what
// the client sent. It counts toward h2MaxResetsPerSec as the client's
// own RST_STREAMs do, so a client cannot have wharf reset its requests
// faster than it may reset them itself: a stream whose handler was
// running (CVE-2025-8671, "MadeYouReset"), and one refused before any
// (malformed fields, a HEADERS depending on itself, a WINDOW_UPDATE of
// 0), each of which cost a block decoded and a frame written. Not
// REFUSED_STREAM (over max_streams or maxconn_per_ip): a load limit an
// honest client may run into (its count of streams in flight can lag
// ours by a moment), and nothing of the request was looked at.
func (h *h2conn) refuse(id uint32, code http2.ErrCode) {
	h.resetStream(id, code)
	if code != http2.ErrCodeRefusedStream {
		h.countReset()
	}
}

// countReset adds a stream reset to a leaky bucket that drains at
// h2MaxResetsPerSec a second (reader only); past h2MaxResetsPerSec in
// the bucket the connection ends with ENHANCE_YOUR_CALM. So a client
// gets at most h2MaxResetsPerSec + h2MaxResetsPerSec*t resets in any t
// seconds: a burst across a second's boundary does not get two budgets,
// as it would with a count per calendar second.
func (h *h2conn) countReset() {
	now := time.Now()
	if !h.resetAt.IsZero() {
		h.resets = max(0, h.resets-now.Sub(h.resetAt).Seconds()*h2MaxResetsPerSec)
	}
	h.resetAt = now
	h.resets++
}

func (st *h2stream) abortLocked() {
	st.reset = true
	if st.pc != nil {
		st.pc.c.Close()
	}
	st.wake()
}

func (st *h2stream) wake() {
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (h *h2conn) windowUpdate(stream uint32, n int) {
	if n <= 0 {
		return
	}
	h.lockW()
	if stream != 0 {
		h.fr.WriteWindowUpdate(stream, uint32(n))
	}
	h.fr.WriteWindowUpdate(0, uint32(n))
	h.unlockW()
}

// process handles one frame; !ok ends the connection with GOAWAY code.
func (h *h2conn) process(fm http2.Frame) (code http2.ErrCode, reason int, ok bool) {
	switch fm := fm.(type) {
	case *http2.SettingsFrame:
		if fm.IsAck() {
			return 0, 0, true
		}
		// The write side is held from before the new windows apply until
		// the ACK is buffered, so no stream's DATA sent under the new
		// SETTINGS leaves ahead of their ACK (h2spec 6.9.2 expects this
		// order; the lock order wmu then mu is the reader's only).
		h.lockW()
		h.mu.Lock()
		err := fm.ForeachSetting(func(s http2.Setting) error {
			if err := s.Valid(); err != nil {
				return err
			}
			switch s.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(s.Val) - h.peerInitWin
				h.peerInitWin = int64(s.Val)
				for _, st := range h.streams {
					st.sendWin += delta
					if st.sendWin > 1<<31-1 {
						return http2.ConnectionError(http2.ErrCodeFlowControl)
					}
				}
			case http2.SettingMaxFrameSize:
				h.peerMaxFrame = int(s.Val)
			case http2.SettingHeaderTableSize:
				h.henc.SetMaxDynamicTableSizeLimit(s.Val)
			}
			return nil
		})
		h.cond.Broadcast()
		h.mu.Unlock()
		if err != nil {
			h.wmu.Unlock()
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return http2.ErrCode(ce), h2RProtocol, false
			}
			return http2.ErrCodeProtocol, h2RProtocol, false
		}
		h.fr.WriteSettingsAck()
		h.unlockW()
	case *http2.PingFrame:
		if !fm.IsAck() {
			h.lockW()
			h.fr.WritePing(true, fm.Data)
			h.unlockW()
		}
	case *http2.WindowUpdateFrame:
		inc := int64(fm.Increment)
		h.mu.Lock()
		defer h.mu.Unlock()
		if fm.StreamID == 0 {
			h.sendConnWin += inc
			if h.sendConnWin > 1<<31-1 {
				return http2.ErrCodeFlowControl, h2RFlowControl, false
			}
		} else if st := h.streams[fm.StreamID]; st != nil {
			st.sendWin += inc
			if st.sendWin > 1<<31-1 {
				st.abortLocked()
				h.mu.Unlock()
				h.count(h2RFlowControl)
				h.refuse(fm.StreamID, http2.ErrCodeFlowControl)
				h.mu.Lock()
			}
		} else if fm.StreamID > h.lastID {
			return http2.ErrCodeProtocol, h2RProtocol, false
		}
		h.cond.Broadcast()
	case *http2.RSTStreamFrame:
		h.countReset()
		if h.resets > h2MaxResetsPerSec {
			return http2.ErrCodeEnhanceYourCalm, h2RRapidReset, false
		}
		h.mu.Lock()
		if fm.StreamID > h.lastID {
			h.mu.Unlock()
			return http2.ErrCodeProtocol, h2RProtocol, false
		}
		if st := h.streams[fm.StreamID]; st != nil {
			st.clientReset = true
			st.abortLocked()
			h.cond.Broadcast()
		}
		h.mu.Unlock()
	case *http2.PriorityFrame:
		if fm.StreamDep == fm.StreamID {
			h.count(h2RProtocol)
			h.refuse(fm.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		go h.goAway(http2.ErrCodeNo)
	case *http2.PushPromiseFrame:
		return http2.ErrCodeProtocol, h2RProtocol, false
	case *http2.DataFrame:
		return h.data(fm)
	case *http2.HeadersFrame:
		if fm.StreamID%2 == 0 {
			return http2.ErrCodeProtocol, h2RProtocol, false
		}
		h.hblock = append(h.hblock[:0], fm.HeaderBlockFragment()...)
		h.hstream, h.hend, h.hconts = fm.StreamID, fm.StreamEnded(), 0
		h.hprio = fm.HasPriority() && fm.Priority.StreamDep == fm.StreamID
		if len(h.hblock) > h.maxBlock {
			return http2.ErrCodeEnhanceYourCalm, h2RHeaderBlock, false
		}
		if fm.HeadersEnded() {
			return h.endBlock()
		}
	case *http2.ContinuationFrame:
		// The framer has checked it continues the open block.
		h.hblock = append(h.hblock, fm.HeaderBlockFragment()...)
		h.hconts++
		if len(h.hblock) > h.maxBlock || h.hconts > h2MaxContinuations {
			return http2.ErrCodeEnhanceYourCalm, h2RHeaderBlock, false
		}
		if fm.HeadersEnded() {
			return h.endBlock()
		}
	}
	return 0, 0, true
}

// data takes a DATA frame's payload into its stream's body, accounting
// for both receive windows.
func (h *h2conn) data(fm *http2.DataFrame) (http2.ErrCode, int, bool) {
	n := int64(fm.Header().Length)
	id := fm.StreamID
	h.mu.Lock()
	h.recvConnWin -= n
	if h.recvConnWin < 0 {
		h.mu.Unlock()
		return http2.ErrCodeFlowControl, h2RFlowControl, false
	}
	st := h.streams[id]
	if st == nil || st.remoteDone || st.reset {
		idle := st == nil && id > h.lastID
		closed := st != nil && (st.remoteDone && !st.reset || st.clientReset) || st == nil && h.recentlyDone(id)
		h.recvConnWin += n
		h.mu.Unlock()
		if idle {
			return http2.ErrCodeProtocol, h2RProtocol, false
		}
		h.windowUpdate(0, int(n))
		if closed {
			h.count(h2RProtocol)
			h.refuse(id, http2.ErrCodeStreamClosed)
		}
		return 0, 0, true
	}
	st.recvWin -= n
	if st.recvWin < 0 {
		h.recvConnWin += n
		h.mu.Unlock()
		h.windowUpdate(0, int(n))
		h.count(h2RFlowControl)
		h.refuse(id, http2.ErrCodeFlowControl)
		return 0, 0, true
	}
	d := fm.Data()
	pad := int(n) - len(d)
	st.body = append(st.body, d...)
	st.got += int64(len(d))
	st.recvWin += int64(pad)
	h.recvConnWin += int64(pad)
	bad := st.declared >= 0 && (st.got > st.declared || fm.StreamEnded() && st.got != st.declared)
	if fm.StreamEnded() {
		st.remoteDone = true
	}
	st.wake()
	h.mu.Unlock()
	if pad > 0 {
		h.windowUpdate(id, pad)
	}
	if bad {
		h.count(h2RProtocol)
		h.refuse(id, http2.ErrCodeProtocol)
	}
	return 0, 0, true
}

// noteOurReset remembers a stream we reset (mu held).
func (h *h2conn) noteOurReset(id uint32) {
	h.ours[h.nours%len(h.ours)] = id
	h.nours++
}

func (h *h2conn) ourReset(id uint32) bool {
	for _, x := range h.ours {
		if x == id {
			return true
		}
	}
	return false
}

// recentlyDone reports a stream closed lately after the client ended
// its side (mu held).
func (h *h2conn) recentlyDone(id uint32) bool {
	for _, x := range h.recent {
		if x == id {
			return true
		}
	}
	return false
}

// onField collects a decoded header field, counting the list size as
// SETTINGS_MAX_HEADER_LIST_SIZE does; past the limit fields are dropped
// and the request is answered 431.
func (h *h2conn) onField(hf hpack.HeaderField) {
	h.hsize += len(hf.Name) + len(hf.Value) + 32
	if h.hsize > int(h.f.cfg.MaxHeaderBytes) {
		h.hbig = true
		return
	}
	h.fields = append(h.fields, hf)
}

// endBlock decodes a complete header block and starts (or ends, for
// trailers) its stream.
func (h *h2conn) endBlock() (http2.ErrCode, int, bool) {
	h.fields, h.hsize, h.hbig = h.fields[:0], 0, false
	// Decoded in pieces, so a block whose few bytes expand to a huge
	// list (an HPACK bomb: one large table entry referenced by every
	// byte, 60 KB of block giving 240 MB of fields) is stopped early:
	// past h2BombFactor x max_header_bytes no honest client is sending
	// headers, and the connection ends. Decoding it whole cost 27 ns a
	// byte, 4 such connections 1.2 cores (audit).
	bomb := h2BombFactor * int(h.f.cfg.MaxHeaderBytes)
	for b := h.hblock; len(b) > 0; {
		n := min(len(b), h2DecodeStep)
		if _, err := h.hdec.Write(b[:n]); err != nil {
			return http2.ErrCodeCompression, h2RCompression, false
		}
		if b = b[n:]; h.hsize > bomb {
			return http2.ErrCodeEnhanceYourCalm, h2RHeaderList, false
		}
	}
	if err := h.hdec.Close(); err != nil {
		return http2.ErrCodeCompression, h2RCompression, false
	}
	id := h.hstream
	h.hstream = 0
	if len(h.hblock) > 64<<10 {
		h.hblock = nil
	}
	h.mu.Lock()
	if id <= h.lastID {
		st := h.streams[id]
		switch {
		case st == nil && h.ourReset(id) && !h.recentlyDone(id):
			// Trailers in flight when we reset it: ignored.
			h.mu.Unlock()
			return 0, 0, true
		case st == nil && !h.recentlyDone(id):
			// Not a stream open now, nor one lately closed: a new
			// stream must have a larger id (RFC 9113 5.1.1).
			h.mu.Unlock()
			return http2.ErrCodeProtocol, h2RProtocol, false
		case st == nil || st.reset || st.remoteDone && st.sentEnd.Load():
			h.mu.Unlock()
			return http2.ErrCodeStreamClosed, h2RProtocol, false
		case st.remoteDone:
			h.mu.Unlock()
			h.count(h2RProtocol)
			h.refuse(id, http2.ErrCodeStreamClosed)
			return 0, 0, true
		}
		// Trailers: they end the body. On a body sent on chunked, the
		// fields a trailer may carry follow the last chunk (sendBody); a
		// body with a length has no place for them.
		bad := !h.hend
		st.trailers = st.trailers[:0]
		for _, hf := range h.fields {
			if !validH2Name(hf.Name) || !validH2Value(hf.Value) {
				bad = true // a pseudo-header, or what could split the HTTP/1.1 head
				break
			}
			if trailerAllowed(hf.Name) {
				st.trailers = append(st.trailers, hf.Name...)
				st.trailers = append(st.trailers, ": "...)
				st.trailers = append(st.trailers, hf.Value...)
				st.trailers = append(st.trailers, "\r\n"...)
			}
		}
		if bad {
			h.mu.Unlock()
			h.count(h2RProtocol)
			h.refuse(id, http2.ErrCodeProtocol)
			return 0, 0, true
		}
		st.remoteDone = true
		if st.declared >= 0 && st.got != st.declared {
			h.mu.Unlock()
			h.count(h2RProtocol)
			h.refuse(id, http2.ErrCodeProtocol)
			return 0, 0, true
		}
		st.wake()
		h.mu.Unlock()
		return 0, 0, true
	}
	h.lastID = id
	if h.goingAway {
		h.mu.Unlock()
		return 0, 0, true // after GOAWAY: not processed
	}
	if h.handlers >= h2MaxStreams {
		h.mu.Unlock()
		h.count(h2RMaxStreams)
		h.refuse(id, http2.ErrCodeRefusedStream)
		return 0, 0, true
	}
	h.mu.Unlock()
	if h.hprio {
		h.count(h2RProtocol)
		h.refuse(id, http2.ErrCodeProtocol)
		return 0, 0, true
	}
	st := &h2stream{h: h, id: id, notify: make(chan struct{}, 1), recvWin: h2StreamRecvWindow, declared: -1, remoteDone: h.hend}
	var rq h2request
	status := 0
	if h.hbig {
		h.count(h2RHeaderList)
		status = 431
	} else if !rq.parse(h.fields) {
		h.count(h2RProtocol)
		h.refuse(id, http2.ErrCodeProtocol)
		return 0, 0, true
	}
	st.declared = rq.contentLength
	if h.hend && st.declared > 0 {
		h.count(h2RProtocol)
		h.refuse(id, http2.ErrCodeProtocol)
		return 0, 0, true
	}
	// The source's streams in flight, over all its connections, are
	// capped at maxconn_per_ip (trusted proxies exempt, as for
	// connections).
	if st.perIP = !h.trusted; st.perIP && !h.f.h2Streams.Acquire(h.ip, int(h.f.cfg.MaxConnPerIP)) {
		h.count(h2RPerIP)
		h.refuse(id, http2.ErrCodeRefusedStream)
		return 0, 0, true
	}
	h.mu.Lock()
	st.sendWin = h.peerInitWin
	h.streams[id] = st
	h.handlers++
	h.running.Add(1)
	if h.idle != nil {
		h.idle.Stop()
	}
	h.wg.Add(1)
	h.mu.Unlock()
	rq.head = h.synthesize(&rq, h.hend)
	startStream(st, &rq, status)
	return 0, 0, true
}

// h2request is a stream's request, its fields validated.
type h2request struct {
	method, scheme, authority, path string
	host                            string // a Host field, if any
	fields                          []hpack.HeaderField
	cookies                         []string
	contentLength                   int64
	head                            []byte  // as HTTP/1.1
	headBuf                         *[]byte // head's array, from h2Heads: the stream puts it back when done
}

// parse checks a request's fields as RFC 9113 8.2 and 8.3 ask (false:
// malformed) and sorts them out.
func (rq *h2request) parse(fields []hpack.HeaderField) bool {
	rq.contentLength = -1
	regular := false
	for _, hf := range fields {
		if !validH2Value(hf.Value) {
			return false
		}
		if len(hf.Name) > 0 && hf.Name[0] == ':' {
			if regular {
				return false
			}
			var p *string
			switch hf.Name {
			case ":method":
				p = &rq.method
			case ":scheme":
				p = &rq.scheme
			case ":authority":
				p = &rq.authority
			case ":path":
				p = &rq.path
			default:
				return false
			}
			if *p != "" || hf.Value == "" {
				return false
			}
			*p = hf.Value
			continue
		}
		regular = true
		if !validH2Name(hf.Name) {
			return false
		}
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return false
		case "te":
			if hf.Value != "trailers" {
				return false
			}
			continue
		case "host":
			if rq.host != "" {
				return false
			}
			rq.host = hf.Value
			continue
		case "cookie":
			rq.cookies = append(rq.cookies, hf.Value)
			continue
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || rq.contentLength >= 0 && rq.contentLength != n {
				return false
			}
			rq.contentLength = n
			continue
		}
		rq.fields = append(rq.fields, hf)
	}
	if rq.method == "" || rq.method == "CONNECT" {
		return rq.method == "CONNECT" && rq.authority != "" && rq.path == "" && rq.scheme == ""
	}
	if rq.scheme == "" || rq.path == "" {
		return false
	}
	if rq.path[0] != '/' && !(rq.path == "*" && rq.method == "OPTIONS") {
		return false
	}
	if rq.authority == "" {
		rq.authority = rq.host
	} else if rq.host != "" && !eqFold([]byte(rq.host), rq.authority) {
		return false
	}
	return true
}

// trailerAllowed: a request trailer field passed on to the server. Not
// those that frame, route, authenticate or describe the content, which
// RFC 9110 6.5.1 forbids in trailers, nor hop-by-hop ones.
func trailerAllowed(name string) bool {
	switch name {
	case "content-length", "host", "trailer", "content-type", "content-encoding", "content-range",
		"authorization", "cookie", "expect", "range", "max-forwards":
		return false
	}
	return !hopByHop([]byte(name)) // no allocation: the conversion does not escape
}

func validH2Name(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !tchar[c] || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// validH2Value: no NUL, CR or LF anywhere, no whitespace at either end
// (RFC 9113 8.2.1).
func validH2Value(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return s == "" || s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t'
}

// synthesize writes the request as an HTTP/1.1 head: Host from
// :authority, the cookie crumbs joined (RFC 9113 8.2.3), the body framed
// by its content-length or, when it has none and a body may follow,
// chunked.
func (h *h2conn) synthesize(rq *h2request, ended bool) []byte {
	rq.headBuf = h2Heads.Get().(*[]byte)
	b := (*rq.headBuf)[:0]
	b = append(b, rq.method...)
	b = append(b, ' ')
	b = append(b, rq.path...)
	b = append(b, " HTTP/1.1\r\n"...)
	if rq.authority != "" {
		b = append(b, "Host: "...)
		b = append(b, rq.authority...)
		b = append(b, "\r\n"...)
	}
	for _, hf := range rq.fields {
		b = append(b, hf.Name...)
		b = append(b, ": "...)
		b = append(b, hf.Value...)
		b = append(b, "\r\n"...)
	}
	if len(rq.cookies) > 0 {
		b = append(b, "cookie: "...)
		for i, c := range rq.cookies {
			if i > 0 {
				b = append(b, "; "...)
			}
			b = append(b, c...)
		}
		b = append(b, "\r\n"...)
	}
	switch {
	case rq.contentLength >= 0:
		b = append(b, "content-length: "...)
		b = strconv.AppendInt(b, rq.contentLength, 10)
		b = append(b, "\r\n"...)
	case !ended:
		b = append(b, "transfer-encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	*rq.headBuf = b
	return b
}

// h2Heads recycle the HTTP/1.1 request heads synthesize writes (one per
// stream, returned when the stream ends).
var h2Heads = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
