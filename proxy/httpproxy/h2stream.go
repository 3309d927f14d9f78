package httpproxy

import (
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"wharf/proxy/accesslog"
	"wharf/proxy/upstream"
)

// Streams run on reused goroutines: a new goroutine's stack starts
// small and a stream's handler grows it each time (runtime.morestack
// was about 10% of the CPU in the h2 bench with a goroutine per
// stream). A worker idle for h2WorkerIdle ends.
const h2WorkerIdle = 2 * time.Second

type h2job struct {
	st     *h2stream
	rq     *h2request
	status int
}

// h2Jobs hands a stream to an idle worker; unbuffered, so a send
// succeeds only when one is waiting.
var h2Jobs = make(chan h2job)

// startStream runs st on an idle worker, or on a new one.
func startStream(st *h2stream, rq *h2request, status int) {
	select {
	case h2Jobs <- h2job{st, rq, status}:
	default:
		go h2Worker(st, rq, status)
	}
}

func h2Worker(st *h2stream, rq *h2request, status int) {
	st.run(rq, status)
	t := time.NewTimer(h2WorkerIdle)
	defer t.Stop()
	for {
		select {
		case j := <-h2Jobs:
			j.st.run(j.rq, j.status)
			t.Reset(h2WorkerIdle)
		case <-t.C:
			return
		}
	}
}

// run serves one stream: status > 0 answers it at once (431), else the
// request is routed and forwarded as an HTTP/1.1 one.
func (st *h2stream) run(rq *h2request, status int) {
	h := st.h
	if rq.headBuf != nil {
		defer func() {
			*rq.headBuf = (*rq.headBuf)[:0]
			h2Heads.Put(rq.headBuf)
			rq.head, rq.headBuf = nil, nil
		}()
	}
	defer st.end()
	if status > 0 {
		h.f.noRoute[4].Inc()
		st.fail(status, "request header too large")
		return
	}
	if rq.method == "CONNECT" {
		h.f.noRoute[4].Inc()
		st.fail(405, "CONNECT is not supported by this proxy")
		return
	}
	cc := h2ClientConns.Get().(*clientConn)
	*cc = clientConn{f: h.f, c: h.tc, raw: h.raw, req: head{fields: cc.req.fields[:0]}, resp: head{fields: cc.resp.fields[:0]},
		bw: cc.bw[:0], path: cc.path[:0], client: h.client, ip: h.ip, ipText: h.ipText, trusted: h.trusted, tls: true,
		rec: accesslog.Request{Method: cc.rec.Method[:0], Target: cc.rec.Target[:0]}}
	defer func() {
		// Only the buffers stay; nothing of the stream's is referenced.
		*cc = clientConn{req: head{fields: cc.req.fields[:0]}, resp: head{fields: cc.resp.fields[:0]}, bw: cc.bw[:0], path: cc.path[:0],
			rec: accesslog.Request{Method: cc.rec.Method[:0], Target: cc.rec.Target[:0]}}
		h2ClientConns.Put(cc)
	}()
	cc.in.b = rq.head
	if err := parseRequest(rq.head, &cc.req); err != nil {
		h.f.noRoute[4].Inc()
		switch err {
		case errTooLarge:
			st.fail(431, "too many header fields")
		default:
			st.fail(400, err.Error())
		}
		return
	}
	req := &cc.req
	b := cc.reqBytes()
	cc.isHead = rq.method == "HEAD"
	if cc.logging = h.f.alog.On(); cc.logging {
		cc.rec.Begin(time.Now(), h.client, req.method.of(b), req.target.of(b), "HTTP/2.0")
		defer h.f.alog.HTTP(&cc.rec) // before the deferred reset of cc
	}
	host, path := req.host.of(b), req.target.of(b)
	match := path
	if i := indexByte(match, '?'); i >= 0 {
		match = match[:i]
	}
	if indexByte(match, '%') >= 0 {
		var ok bool
		if cc.path, ok = unescapePath(cc.path[:0], match); !ok {
			h.f.noRoute[4].Inc()
			st.fail(400, "invalid escape in the request path")
			return
		}
		match = cc.path
	}
	bp := h.f.pick(host, match)
	if bp == nil {
		h.f.noRoute[5].Inc()
		h.f.m.errNoServer.Inc()
		cc.rec.Status = 503
		st.fail(503, "no backend for this host and path")
		return
	}
	st.forward(cc, bp, host, path, match)
}

// end forgets the stream: RST_STREAM(NO_ERROR) if the client has not
// finished sending (its body is not wanted any more), the connection
// window for body bytes never read given back, and the connection's idle
// timer or graceful close started when it was the last.
func (st *h2stream) end() {
	h := st.h
	h.mu.Lock()
	delete(h.streams, st.id)
	h.handlers--
	h.running.Add(-1)
	rst := !st.remoteDone && !st.reset
	if rst {
		h.noteOurReset(st.id)
	}
	if st.remoteDone && !st.reset || st.clientReset {
		h.recent[h.nrecent%len(h.recent)] = st.id
		h.nrecent++
	}
	refund := len(st.body) + st.unread
	h.recvConnWin += int64(refund)
	st.body = nil
	last := h.handlers == 0
	away := h.goingAway
	closed := h.closed
	if last && !away && !closed && h.idle != nil {
		h.idle.Reset(h.f.cfg.ClientTimeout.Duration)
	}
	h.mu.Unlock()
	if st.perIP {
		h.f.h2Streams.Release(h.ip)
	}
	if !closed {
		if rst {
			h.lockW()
			h.fr.WriteRSTStream(st.id, http2.ErrCodeNo)
			h.unlockW()
		}
		h.windowUpdate(0, refund)
		if last && away {
			h.finish()
		}
	}
	h.wg.Done()
}

// readBody returns the next request body bytes (valid until the next
// call), io.EOF at its end, or an error when the client reset the stream
// or was silent for client_timeout.
func (st *h2stream) readBody(buf []byte) ([]byte, error) {
	h := st.h
	timeout := h.f.cfg.ClientTimeout.Duration
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		h.mu.Lock()
		// What the previous call took is acknowledged now that it went on.
		ack := st.unread
		st.unread = 0
		if ack > 0 {
			st.recvWin += int64(ack)
			h.recvConnWin += int64(ack)
		}
		remoteDone := st.remoteDone
		switch {
		case st.reset || h.closed:
			h.mu.Unlock()
			return nil, errStreamReset
		case len(st.body) > 0:
			n := copy(buf, st.body)
			st.body = st.body[:copy(st.body, st.body[n:])]
			st.unread = n
			h.mu.Unlock()
			if ack > 0 {
				st.ackBody(ack, remoteDone)
			}
			return buf[:n], nil
		case st.remoteDone:
			h.mu.Unlock()
			if ack > 0 {
				st.ackBody(ack, remoteDone)
			}
			return nil, io.EOF
		}
		h.mu.Unlock()
		if ack > 0 {
			st.ackBody(ack, remoteDone)
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
		}
		select {
		case <-st.notify:
		case <-timer.C:
			return nil, os.ErrDeadlineExceeded
		}
	}
}

func (st *h2stream) ackBody(n int, remoteDone bool) {
	if remoteDone {
		st.h.windowUpdate(0, n)
	} else {
		st.h.windowUpdate(st.id, n)
	}
}

// Write sends p as DATA frames as the client's flow-control windows
// allow, waiting at most client_timeout for a window to open.
func (st *h2stream) Write(p []byte) (int, error) { return st.writeData(p, false) }

// writeData is Write, ending the stream with the last frame if end.
func (st *h2stream) writeData(p []byte, end bool) (int, error) {
	h := st.h
	total := 0
	for len(p) > 0 || end {
		n := 0
		if len(p) > 0 {
			h.mu.Lock()
			var timer *time.Timer
			for !st.reset && !h.closed && !st.stalled && (h.sendConnWin <= 0 || st.sendWin <= 0) {
				if timer == nil {
					timer = time.AfterFunc(h.f.cfg.ClientTimeout.Duration, func() {
						h.mu.Lock()
						st.stalled = true
						h.cond.Broadcast()
						h.mu.Unlock()
					})
				}
				h.cond.Wait()
			}
			if timer != nil {
				timer.Stop()
			}
			if st.reset || h.closed || st.stalled {
				stalled := st.stalled && !st.reset && !h.closed
				h.mu.Unlock()
				if stalled {
					h.count(h2RStalled)
					h.resetStream(st.id, http2.ErrCodeCancel)
				}
				return total, errClientGone
			}
			n = min(len(p), h.peerMaxFrame, int(h.sendConnWin), int(st.sendWin))
			h.sendConnWin -= int64(n)
			st.sendWin -= int64(n)
			h.mu.Unlock()
		}
		last := end && n == len(p)
		h.lockW()
		err := h.fr.WriteData(st.id, last, p[:n])
		if last {
			st.sentEnd.Store(true)
		}
		if ferr := h.unlockW(); err == nil {
			err = ferr
		}
		if err != nil {
			return total, errClientGone
		}
		total += n
		p = p[n:]
		if last {
			break
		}
	}
	return total, nil
}

// writeHeaders sends a response head (fields: name, value pairs, names
// lower case).
// Unless flush (or endStream), the frames may wait in the buffer for the
// body's first bytes, when nothing else was waiting there to be sent.
func (st *h2stream) writeHeaders(status int, fields []string, endStream, flush bool) error {
	h := st.h
	h.mu.Lock()
	gone := st.reset || h.closed
	h.mu.Unlock()
	if gone {
		return errClientGone
	}
	h.lockW()
	unlocked := false
	defer func() {
		if !unlocked {
			h.wmu.Unlock()
		}
	}()
	h.hbuf.Reset()
	h.henc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
	for i := 0; i+1 < len(fields); i += 2 {
		h.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	block := h.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		n := min(len(block), h.peerMaxFrame)
		frag, rest := block[:n], block[n:]
		var err error
		if first {
			err = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: frag, EndStream: endStream, EndHeaders: len(rest) == 0})
		} else {
			err = h.fr.WriteContinuation(st.id, len(rest) == 0, frag)
		}
		if err != nil {
			return errClientGone
		}
		first, block = false, rest
	}
	if endStream {
		st.sentEnd.Store(true)
	}
	if !flush && !endStream && !h.owed {
		return nil
	}
	unlocked = true
	if err := h.unlockW(); err != nil {
		return errClientGone
	}
	return nil
}

// fail answers with a short plain-text error, as the HTTP/1.1 path does.
func (st *h2stream) fail(code int, msg string) {
	body := strconv.Itoa(code) + " " + statusText(code) + ": " + msg + "\n"
	if st.isHead {
		body = ""
	}
	if st.writeHeaders(code, []string{"content-type", "text/plain; charset=utf-8", "x-content-type-options", "nosniff",
		"cache-control", "no-store", "content-length", strconv.Itoa(len(body))}, body == "", body == "") != nil || body == "" {
		return
	}
	st.writeData([]byte(body), true)
}

// forward sends the request to a server of bp (clientConn.connect) and
// relays the response on the stream.
func (st *h2stream) forward(cc *clientConn, bp *backendProxy, host, path, match []byte) {
	st.isHead = cc.isHead
	if st.gone() { // reset already (rapid reset): no server connection taken for it
		bp.count(499)
		return
	}
	s, pc, reused, msg := cc.connect(bp, match)
	if s == nil {
		st.fail(503, msg)
		return
	}
	cc.buildHead(bp, s, host, path, true)
	st.exchange(cc, bp, s, pc, reused)
	s.Release()
}

// exchange runs the round trip on pc; a kept-alive connection the server
// had closed is replaced and a replayable request sent again.
func (st *h2stream) exchange(cc *clientConn, bp *backendProxy, s *upstream.Server, pc *poolConn, reused bool) {
	req := &cc.req
	replayable := !req.hasBody() && !req.chunked && idempotent(req.method.of(cc.reqBytes()))
	for {
		err := st.roundTrip(cc, bp, s, pc, reused)
		if err == nil {
			return
		}
		if err == errNotSent { // pc is unused: kept for the next request
			bp.put(s, pc)
			bp.count(499)
			return
		}
		pc.c.Close()
		if err == errStale && reused && replayable {
			var derr error
			if pc, derr = bp.dial(s, cc); derr != nil {
				s.ConnectFailed(derr)
				cc.f.m.errConnect.Inc()
				cc.count(bp, 503)
				st.fail(503, "cannot connect to a server of backend "+bp.b.Name)
				return
			}
			reused = false
			continue
		}
		switch {
		case err == errClientGone || err == errStreamReset:
			bp.count(499)
		case err == errTimeout:
			cc.f.m.errTimeout.Inc()
			cc.count(bp, 504)
			st.fail(504, "the server of backend "+bp.b.Name+" did not answer in time")
		case err == errClientGoneCounted:
		default:
			cc.f.m.errBad.Inc()
			cc.count(bp, 502)
			cc.f.log.Debug("bad gateway", "backend", bp.b.Name, "err", err)
			st.fail(502, "the server of backend "+bp.b.Name+" failed to answer")
		}
		return
	}
}

func (st *h2stream) setPC(pc *poolConn) bool {
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	st.pc = pc
	return !st.reset && !h.closed
}

// roundTrip is one attempt: the head, the body, the response relayed. A
// non-nil error means pc is to be closed; errStale and errTimeout mean
// nothing reached the client yet.
func (st *h2stream) roundTrip(cc *clientConn, bp *backendProxy, s *upstream.Server, pc *poolConn, reused bool) error {
	if !st.setPC(pc) {
		return errNotSent
	}
	defer st.setPC(nil)
	if _, err := pc.out.Write(cc.bw); err != nil {
		if st.gone() {
			return errClientGone
		}
		return errStale
	}
	req := &cc.req
	keep := true
	if req.hasBody() {
		var err error
		keep, err = st.sendBody(cc, pc, s)
		if err != nil {
			return err
		}
	}
	// The response head.
	srv := &pc.in
	srv.progress = 0
	timeout := bp.b.Config().ServerTimeout.Duration
	if timeout > 0 {
		srv.setDeadline(time.Now().Add(timeout), 0)
	} else {
		srv.setDeadline(time.Time{}, 0)
	}
	resp := &cc.resp
	scan := 0
	got := false
	for {
		b := srv.buffered()
		end := findHeadEnd(b, scan)
		if end < 0 {
			if bareLF(b, scan) {
				return errBadResponse
			}
			scan = len(b)
			err := srv.fill()
			if err == nil {
				got = true
				continue
			}
			switch {
			case st.gone():
				return errClientGone
			case errors.Is(err, os.ErrDeadlineExceeded):
				return errTimeout
			case !got && reused:
				return errStale
			}
			return err
		}
		if err := parseResponse(b[:end], resp); err != nil {
			return err
		}
		if resp.status == 101 {
			return errUpgrade
		}
		if resp.status >= 200 {
			break
		}
		// 1xx (103 Early Hints, 100 Continue...): passed on as a HEADERS
		// frame without END_STREAM (RFC 9113 8.1; a proxy forwards 1xx,
		// RFC 9110 15.2), hop-by-hop fields dropped as for the final one.
		if err := st.writeHeaders(resp.status, responseFields(b, resp, nil), false, true); err != nil {
			return errClientGoneCounted
		}
		srv.consume(end)
		scan = 0
	}
	b := srv.buffered()
	mode := bodyFraming(resp, cc.isHead)
	fields := responseFields(b, resp, make([]string, 0, 2*len(resp.fields)+2*len(cc.f.respSet)))
	if len(cc.f.respSet) > 0 {
		fields = cc.f.setResponseFields(fields)
	}
	cc.count(bp, resp.status)
	if cc.logging {
		cc.rec.Response = time.Since(cc.rec.Start)
	}
	srv.consume(resp.n)
	// The head waits for the body's first bytes if they are here already.
	if err := st.writeHeaders(resp.status, fields, mode == bodyNone, mode == bodyNone || len(srv.buffered()) == 0); err != nil {
		return errClientGoneCounted
	}
	srvKeep := keep && mode != bodyUntilClose && s.SendProxy == 0 &&
		(resp.minor >= 1 && !resp.connClose || resp.minor == 0 && resp.connKeepAlive)
	if mode != bodyNone {
		srv.setDeadline(time.Time{}, 0)
		bufp := h2Bufs.Get().(*[]byte)
		defer h2Bufs.Put(bufp)
		out := wbuf{w: st, b: (*bufp)[:0]}
		var n int64
		var err error
		switch mode {
		case bodyLength:
			n = resp.contentLength
			err = copyN(&out, srv, n)
		case bodyChunked:
			n, err = copyChunked(&out, srv, true, maxRespHead)
		case bodyUntilClose:
			n, err = copyUntilEOF(&out, srv)
		}
		if n > 0 {
			s.BytesFromServer.Add(uint64(n))
		}
		cc.rec.Bytes = n
		if err == nil {
			// The rest with END_STREAM on its last frame.
			_, err = st.writeData(out.b, true)
			out.b = out.b[:0]
			if err != nil {
				out.werr = err
			}
		}
		if err != nil {
			pc.c.Close()
			if out.werr == nil { // the server failed: the stream cannot end well
				st.h.resetStream(st.id, http2.ErrCodeInternal)
			}
			return nil
		}
	}
	if !srvKeep || len(srv.buffered()) > 0 {
		pc.c.Close()
	} else {
		bp.put(s, pc)
	}
	return nil
}

// responseFields appends the fields of the response head resp (in b) that
// go to an HTTP/2 client, as lower-case name, value pairs: not hop-by-hop
// nor named by Connection, no Content-Length beside Transfer-Encoding.
func responseFields(b []byte, resp *head, fields []string) []string {
	for _, fl := range resp.fields {
		name := fl.name.of(b)
		switch {
		case eqFold(name, "content-length") && resp.te:
			continue
		case hopByHop(name) || resp.connNames(b, name):
			continue
		}
		fields = append(fields, lowerString(name), string(fl.value.of(b)))
	}
	return fields
}

// setResponseFields applies the frontend's response_headers to an
// HTTP/2 response's fields (name, value pairs).
func (f *Frontend) setResponseFields(fields []string) []string {
	out := fields[:0]
next:
	for i := 0; i+1 < len(fields); i += 2 {
		for _, h := range f.respSet {
			if fields[i] == h.lower { // HTTP/2 names are lower case
				continue next
			}
		}
		out = append(out, fields[i], fields[i+1])
	}
	for _, h := range f.respSet {
		if h.value != "" {
			out = append(out, h.lower, h.value)
		}
	}
	return out
}

// errClientGoneCounted: the response head could not be sent; the status
// was counted already.
var errClientGoneCounted = errors.New("client went away (counted)")

func (st *h2stream) gone() bool {
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	return st.reset || h.closed
}

// sendBody copies the request body to the server: as it came for a
// Content-Length body, else chunked. keep says whether pc can be reused
// (false when the server stopped reading it).
func (st *h2stream) sendBody(cc *clientConn, pc *poolConn, s *upstream.Server) (keep bool, err error) {
	outp, bufp := h2Bufs.Get().(*[]byte), h2Bufs.Get().(*[]byte)
	defer h2Bufs.Put(outp)
	defer h2Bufs.Put(bufp)
	out := wbuf{w: &pc.out, b: (*outp)[:0]}
	buf := (*bufp)[:writeBufSize]
	chunked := cc.req.chunked
	var sent int64
	for {
		p, rerr := st.readBody(buf)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return false, errClientGone
		}
		if chunked {
			var hx [20]byte
			out.write(appendHex(hx[:0], int64(len(p))))
			out.write(p)
			out.writeString("\r\n")
		} else {
			out.write(p)
		}
		sent += int64(len(p))
		if out.werr != nil {
			break
		}
	}
	if chunked && out.werr == nil {
		out.writeString("0\r\n")
		h := st.h
		h.mu.Lock()
		out.write(st.trailers) // set before the body's end was seen
		h.mu.Unlock()
		out.writeString("\r\n")
	}
	if out.werr == nil {
		out.flush()
	}
	s.BytesToServer.Add(uint64(sent))
	// A server that stopped reading may have answered (413...): read it.
	return out.werr == nil, nil
}

// h2ClientConns are the request state of HTTP/2 streams: a stream's
// request is rewritten with the HTTP/1.1 code (buildHead), whose buffers
// (the head for the server, header field spans) are kept between streams
// instead of grown from nothing for each (most of the allocations per
// stream before). Only the buffers are kept: run clears the rest.
var h2ClientConns = sync.Pool{New: func() any {
	return &clientConn{bw: make([]byte, 0, 1024), req: head{fields: make([]field, 0, 32)}, resp: head{fields: make([]field, 0, 32)}}
}}

// h2Bufs are the body copy buffers of streams (writeBufSize).
var h2Bufs = sync.Pool{New: func() any { b := make([]byte, writeBufSize); return &b }}

func lowerString(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}
