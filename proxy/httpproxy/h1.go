package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"
)

// This file is the HTTP/1.1 wire format as the lean path needs it: a
// strict in-place parser for request and response heads, the chunked
// framing, and the read and write buffers both sides use. Nothing here
// allocates once the buffers exist.

// span is a field of a head as offsets into the bytes the head was
// parsed from.
type span struct{ start, end int32 }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }
func (s span) empty() bool        { return s.end == s.start }

// field is one header field line: its name and its value without the
// surrounding whitespace.
type field struct{ name, value span }

// Limits of one head besides its size (max_header_bytes).
const (
	maxFields      = 256 // HAProxy's default is 101
	maxConnTokens  = 16  // options one Connection header may name
	maxChunkLine   = 4096
	maxRespHead    = 256 << 10 // a server's response head
	minReadBuf     = 8 << 10
	writeBufSize   = 16 << 10
	serverReadBuf  = 16 << 10
	contentLenNone = -1
)

// maxOutChunk is the largest chunk passed on: a bigger one is split, so
// a server that reads chunk sizes into 32 bits cannot be desynced by a
// size of 2^31 or more (HAProxy refuses those; re-framing keeps a
// legitimate huge upload working). A variable so tests split small
// bodies.
var maxOutChunk int64 = 1 << 30

// Parse errors. errNeedMore means the head is not complete yet; the
// others are answered 400 (431 for errTooLarge, 505 for errVersion) and
// the connection closed.
var (
	errNeedMore    = errors.New("incomplete head")
	errTooLarge    = errors.New("head too large")
	errVersion     = errors.New("unsupported HTTP version")
	errBadLine     = errors.New("malformed request or status line")
	errBadField    = errors.New("malformed header field")
	errBareLF      = errors.New("line not terminated by CRLF")
	errObsFold     = errors.New("obsolete line folding")
	errBadCL       = errors.New("invalid or conflicting Content-Length")
	errBadTE       = errors.New("unsupported Transfer-Encoding")
	errCLAndTE     = errors.New("both Content-Length and Transfer-Encoding")
	errBadHost     = errors.New("missing, repeated or invalid Host")
	errBadConn     = errors.New("too many Connection options")
	errBadChunk    = errors.New("malformed chunked body")
	errBadTarget   = errors.New("invalid request target")
	errTargetHost  = errors.New("absolute-form request target whose authority differs from Host")
	errBadResponse = errors.New("malformed response from the server")
)

// head is a parsed request or response head. The spans point into the
// buffer given to parse, valid as long as those bytes stay in place.
type head struct {
	// Request: method and target. Response: status and reason.
	method, target span
	status         int
	reason         span
	minor          int // HTTP/1.minor
	fields         []field
	n              int // bytes of the head, up to and including the empty line

	contentLength int64 // contentLenNone when absent
	chunked       bool  // Transfer-Encoding ends with chunked
	te            bool  // any Transfer-Encoding
	host          span  // the Host field's value (request)
	hosts         int
	upgrade       span // the Upgrade field's value
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	expect100     bool
	connTokens    [maxConnTokens]span // other options named by Connection
	nConnTokens   int
}

func (h *head) reset() {
	fields := h.fields[:0]
	*h = head{fields: fields, contentLength: contentLenNone}
}

// tchar reports the token characters of RFC 9110 5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// hostChar: what a Host value may hold (RFC 3986 reg-name, IP literal,
// port).
var hostChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+,;=:[]%" {
		t[c] = true
	}
	return t
}()

// findHeadEnd returns the length of the head in b (through the empty
// line) or -1. from is where the previous search stopped, so a head
// arriving in many pieces is scanned once.
func findHeadEnd(b []byte, from int) int {
	from = max(from-3, 0)
	if i := bytes.Index(b[from:], crlfcrlf); i >= 0 {
		return from + i + 4
	}
	return -1
}

var crlfcrlf = []byte("\r\n\r\n")

// skipEmptyLines returns how many CRLFs lead b: a client may send some
// before a request line (RFC 9112 2.2), e.g. after a POST body.
func skipEmptyLines(b []byte) int {
	n := 0
	for len(b) >= n+2 && b[n] == '\r' && b[n+1] == '\n' {
		n += 2
	}
	return n
}

// parseRequest parses the request head at the start of b, which must
// hold the whole head (findHeadEnd). It enforces what keeps the proxy and
// the server agreeing on where a request ends: one message framing, a
// valid Host, no obs-fold, no bare CR or LF, no control characters.
func parseRequest(b []byte, h *head) error {
	h.reset()
	eol, err := lineEnd(b, 0)
	if err != nil {
		return err
	}
	line := b[:eol]
	// method SP target SP version
	i := 0
	for i < len(line) && tchar[line[i]] {
		i++
	}
	if i == 0 || i >= len(line) || line[i] != ' ' {
		return errBadLine
	}
	h.method = span{0, int32(i)}
	i++
	t := i
	for i < len(line) && line[i] > ' ' && line[i] < 0x7f {
		i++
	}
	if i == t || i >= len(line) || line[i] != ' ' {
		return errBadLine
	}
	h.target = span{int32(t), int32(i)}
	i++
	v := line[i:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return errBadLine
	}
	if v[5] != '1' {
		return errVersion
	}
	h.minor = int(v[7] - '0')
	if err := parseFields(b, eol+2, h, false); err != nil {
		return err
	}
	if h.te {
		if h.contentLength != contentLenNone {
			return errCLAndTE
		}
		if !h.chunked || h.minor == 0 {
			return errBadTE
		}
	}
	if h.hosts > 1 || (h.hosts == 0 && h.minor >= 1) {
		return errBadHost
	}
	for _, c := range h.host.of(b) {
		if !hostChar[c] {
			return errBadHost
		}
	}
	return nil
}

// parseResponse parses the response head at the start of b (the whole
// head, findHeadEnd). A server may frame with Transfer-Encoding and
// Content-Length at once; then chunked wins (RFC 9112 6.3) and the
// Content-Length field is not passed on.
func parseResponse(b []byte, h *head) error {
	h.reset()
	eol, err := lineEnd(b, 0)
	if err != nil {
		return errBadResponse
	}
	line := b[:eol]
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return errBadResponse
	}
	h.minor = int(line[7] - '0')
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errBadResponse
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return errBadResponse
	}
	h.status = code
	h.reason = span{12, 12}
	if len(line) > 12 {
		if line[12] != ' ' {
			return errBadResponse
		}
		for _, c := range line[13:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return errBadResponse
			}
		}
		h.reason = span{13, int32(eol)}
	}
	if err := parseFields(b, eol+2, h, true); err != nil {
		return errBadResponse
	}
	if h.te && h.contentLength != contentLenNone {
		h.contentLength = contentLenNone
	}
	return nil
}

// lineEnd returns the index of the CR ending the line at from. A bare
// LF, or a head without its end, is an error.
func lineEnd(b []byte, from int) (int, error) {
	i := bytes.IndexByte(b[from:], '\n')
	if i < 0 {
		return 0, errNeedMore
	}
	i += from
	if i == from || b[i-1] != '\r' {
		return 0, errBareLF
	}
	return i - 1, nil
}

// parseFields parses the header fields from off to the empty line and
// records what the proxy acts on.
func parseFields(b []byte, off int, h *head, response bool) error {
	for {
		eol, err := lineEnd(b, off)
		if err != nil {
			return err
		}
		if eol == off {
			h.n = eol + 2
			return nil
		}
		line := b[off:eol]
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		c := 0
		for c < len(line) && tchar[line[c]] {
			c++
		}
		if c == 0 || c == len(line) || line[c] != ':' {
			return errBadField // includes a space before the colon
		}
		vs, ve := c+1, len(line)
		for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
			ve--
		}
		for _, ch := range line[vs:ve] {
			if ch < ' ' && ch != '\t' || ch == 0x7f {
				return errBadField // CR, NUL and other controls
			}
		}
		if len(h.fields) == maxFields {
			return errTooLarge
		}
		f := field{name: span{int32(off), int32(off + c)}, value: span{int32(off + vs), int32(off + ve)}}
		h.fields = append(h.fields, f)
		if err := h.note(b, f, response); err != nil {
			return err
		}
		off = eol + 2
	}
}

// note records the fields that decide framing and forwarding.
func (h *head) note(b []byte, f field, response bool) error {
	name, v := f.name.of(b), f.value.of(b)
	switch len(name) {
	case 4:
		if eqFold(name, "host") {
			h.hosts++
			h.host = f.value
		}
	case 6:
		if eqFold(name, "expect") && eqFold(v, "100-continue") {
			h.expect100 = true
		}
	case 7:
		if eqFold(name, "upgrade") && h.upgrade.empty() {
			h.upgrade = f.value
		}
	case 10:
		if eqFold(name, "connection") {
			return h.noteConnection(b, f.value)
		}
	case 14:
		if eqFold(name, "content-length") {
			return h.noteContentLength(v)
		}
	case 17:
		if eqFold(name, "transfer-encoding") {
			return h.noteTransferEncoding(v, response)
		}
	}
	return nil
}

func (h *head) noteConnection(b []byte, v span) error {
	for i := v.start; i < v.end; {
		j := i
		for j < v.end && b[j] != ',' {
			j++
		}
		s, e := i, j
		for s < e && (b[s] == ' ' || b[s] == '\t') {
			s++
		}
		for e > s && (b[e-1] == ' ' || b[e-1] == '\t') {
			e--
		}
		tok := b[s:e]
		switch {
		case len(tok) == 0:
		case eqFold(tok, "close"):
			h.connClose = true
		case eqFold(tok, "keep-alive"):
			h.connKeepAlive = true
		case eqFold(tok, "upgrade"):
			h.connUpgrade = true
		default:
			if h.nConnTokens == maxConnTokens {
				return errBadConn
			}
			h.connTokens[h.nConnTokens] = span{s, e}
			h.nConnTokens++
		}
		i = j + 1
	}
	return nil
}

// noteContentLength accepts 1*DIGIT, or a list of equal values (RFC 9112
// 6.3 allows a recipient to collapse them); repeated fields must agree.
func (h *head) noteContentLength(v []byte) error {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		d := trimOWS(v[:i])
		if len(d) == 0 || len(d) > 18 {
			return errBadCL
		}
		var n int64
		for _, c := range d {
			if c < '0' || c > '9' {
				return errBadCL
			}
			n = n*10 + int64(c-'0')
		}
		if h.contentLength != contentLenNone && h.contentLength != n {
			return errBadCL
		}
		h.contentLength = n
		if i == len(v) {
			break
		}
		v = v[i+1:]
		if len(v) == 0 {
			return errBadCL
		}
	}
	if h.contentLength == contentLenNone {
		return errBadCL
	}
	return nil
}

// noteTransferEncoding: a request may only say exactly "chunked", once.
// A response's codings are a list whose last, if chunked, frames it;
// chunked anywhere else is an error.
func (h *head) noteTransferEncoding(v []byte, response bool) error {
	if !response {
		if h.te || !eqFold(v, "chunked") {
			return errBadTE
		}
		h.te, h.chunked = true, true
		return nil
	}
	if h.chunked {
		return errBadTE // chunked was not the last coding
	}
	h.te = true
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		c := trimOWS(v[:i])
		if h.chunked {
			return errBadTE
		}
		if eqFold(c, "chunked") {
			h.chunked = true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return nil
}

// connNames reports whether name is one of the options the Connection
// header named (so it is hop-by-hop).
func (h *head) connNames(b, name []byte) bool {
	for _, t := range h.connTokens[:h.nConnTokens] {
		if eqFoldBytes(t.of(b), name) {
			return true
		}
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold: b equals the lower-case ASCII s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func eqFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hopByHop reports the fields a proxy never forwards (RFC 9110 7.6.1),
// besides those the Connection field names. Transfer-Encoding is framing:
// the proxy writes its own.
func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return eqFold(name, "te")
	case 7:
		return eqFold(name, "upgrade")
	case 10:
		return eqFold(name, "connection") || eqFold(name, "keep-alive")
	case 16:
		return eqFold(name, "proxy-connection")
	case 17:
		return eqFold(name, "transfer-encoding")
	case 18:
		return eqFold(name, "proxy-authenticate")
	case 19:
		return eqFold(name, "proxy-authorization")
	}
	return false
}

// rbuf is a read buffer over one connection: bytes b[r:w] are read and
// not yet consumed. Slices into it stay valid until the next fill, which
// may move them to the front or to a larger array.
type rbuf struct {
	rd  io.Reader
	b   []byte
	r   int
	w   int
	max int // the array grows up to this size for a head that needs it

	// progress, when set, is a deadline for each fill on conn: the
	// longest the peer may stay silent in the middle of a body.
	progress time.Duration
	conn     net.Conn
	dl       time.Time // the read deadline last set on conn through setDeadline
}

// setDeadline sets conn's read deadline to t. With slack, a deadline set
// less than slack before t is kept: a timer update per request saved,
// for a timeout that may end up to slack early.
func (x *rbuf) setDeadline(t time.Time, slack time.Duration) {
	if slack > 0 && !x.dl.IsZero() && !x.dl.After(t) && t.Sub(x.dl) < slack {
		return
	}
	x.dl = t
	x.conn.SetReadDeadline(t)
}

func (x *rbuf) buffered() []byte { return x.b[x.r:x.w] }
func (x *rbuf) consume(n int)    { x.r += n }

// fill reads at least one more byte, first moving the unread bytes to the
// front or growing the array (up to max) when there is no room.
func (x *rbuf) fill() error {
	if x.r == x.w {
		x.r, x.w = 0, 0
	}
	if x.w == len(x.b) {
		if x.r > 0 {
			x.w = copy(x.b, x.b[x.r:x.w])
			x.r = 0
		} else {
			if len(x.b) >= x.max {
				return errTooLarge
			}
			nb := make([]byte, min(2*len(x.b), x.max))
			x.w = copy(nb, x.b[x.r:x.w])
			x.r = 0
			x.b = nb
		}
	}
	if x.progress > 0 {
		x.setDeadline(time.Now().Add(x.progress), x.progress/16)
	}
	n, err := x.rd.Read(x.b[x.w:])
	x.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// timedWriter writes to conn under a write deadline timeout from the
// write: a peer that stops reading (its socket buffers full) fails the
// write within timeout instead of holding the connection, and the one
// at its other end, forever (HAProxy's timeout client / timeout server
// do the same). Like rbuf.setDeadline, the deadline is moved only when
// 1/16 of timeout has passed since it was set, so a write may fail up
// to timeout/16 early and a busy connection updates its timer rarely.
// timeout 0 writes without a deadline. Not safe for concurrent use.
type timedWriter struct {
	conn    net.Conn
	timeout time.Duration
	dl      time.Time // the write deadline last set on conn
}

func (x *timedWriter) Write(p []byte) (int, error) {
	x.arm()
	return x.conn.Write(p)
}

// arm sets conn's write deadline for a write about to start, for writers
// that reach conn through another layer (HTTP/2 over TLS).
func (x *timedWriter) arm() {
	switch {
	case x.timeout > 0:
		if now := time.Now(); x.dl.Sub(now) < x.timeout-x.timeout/16 {
			x.dl = now.Add(x.timeout)
			x.conn.SetWriteDeadline(x.dl)
		}
	case !x.dl.IsZero(): // the timeout was turned off (a reload)
		x.dl = time.Time{}
		x.conn.SetWriteDeadline(x.dl)
	}
}

// wbuf gathers small writes to one connection so a response head and a
// short body leave in one system call.
type wbuf struct {
	w    io.Writer
	b    []byte // len is what is pending, cap the buffer
	werr error  // the first write error, to tell it from a read error
	// sent counts the writes to w. before, if set, runs once just ahead
	// of the next one (relayResponse counts a chunked response then).
	sent   uint64
	before beforeSender
}

// beforeSender is told before a wbuf's next write to its connection.
type beforeSender interface{ beforeSend() }

// send writes p to w, with the bookkeeping of the fields.
func (x *wbuf) send(p []byte) error {
	if h := x.before; h != nil {
		x.before = nil
		h.beforeSend()
	}
	x.sent++
	_, err := x.w.Write(p)
	if err != nil && x.werr == nil {
		x.werr = err
	}
	return err
}

func (x *wbuf) flush() error {
	if len(x.b) == 0 {
		return nil
	}
	err := x.send(x.b)
	x.b = x.b[:0]
	return err
}

// write buffers p, or writes it straight through when it is large.
func (x *wbuf) write(p []byte) error {
	if len(x.b)+len(p) <= cap(x.b) {
		x.b = append(x.b, p...)
		return nil
	}
	if err := x.flush(); err != nil {
		return err
	}
	if len(p) < cap(x.b)/2 {
		x.b = append(x.b, p...)
		return nil
	}
	return x.send(p)
}

func (x *wbuf) writeString(s string) error {
	if len(x.b)+len(s) <= cap(x.b) {
		x.b = append(x.b, s...)
		return nil
	}
	if err := x.flush(); err != nil {
		return err
	}
	if len(s) <= cap(x.b) {
		x.b = append(x.b, s...)
		return nil
	}
	return x.send([]byte(s))
}

// copyN moves n body bytes from src to dst, flushing dst before waiting
// for src so a slow body streams.
func copyN(dst *wbuf, src *rbuf, n int64) error {
	for n > 0 {
		if src.r == src.w {
			if err := dst.flush(); err != nil {
				return err
			}
			if err := src.fill(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		p := src.buffered()
		if int64(len(p)) > n {
			p = p[:n]
		}
		if err := dst.write(p); err != nil {
			return err
		}
		src.consume(len(p))
		n -= int64(len(p))
	}
	return nil
}

// copyUntilEOF moves everything src sends until it closes.
func copyUntilEOF(dst *wbuf, src *rbuf) (int64, error) {
	var total int64
	for {
		if src.r == src.w {
			if err := dst.flush(); err != nil {
				return total, err
			}
			if err := src.fill(); err != nil {
				if err == io.EOF {
					return total, nil
				}
				return total, err
			}
		}
		p := src.buffered()
		if err := dst.write(p); err != nil {
			return total, err
		}
		total += int64(len(p))
		src.consume(len(p))
	}
}

// line returns the next CRLF-terminated line in src (without the CRLF),
// reading as needed, at most max bytes. The line is valid until src is
// filled again.
func (x *rbuf) line(dst *wbuf, max int) ([]byte, error) {
	from := 0
	for {
		p := x.buffered()
		if i := bytes.IndexByte(p[from:], '\n'); i >= 0 {
			i += from
			if i == 0 || p[i-1] != '\r' {
				return nil, errBadChunk
			}
			return p[:i-1], nil
		}
		from = len(p)
		if len(p) >= max {
			return nil, errBadChunk
		}
		if dst != nil {
			if err := dst.flush(); err != nil {
				return nil, err
			}
		}
		if err := x.fill(); err != nil {
			switch {
			case err == io.EOF:
				err = io.ErrUnexpectedEOF
			case errors.Is(err, errTooLarge):
				err = errBadChunk // a line longer than the buffer
			}
			return nil, err
		}
	}
}

// parseChunkSize reads a chunk-size line: 1-15 hex digits, then nothing
// or chunk extensions (";...", dropped) after optional whitespace.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if i == 15 {
			return 0, errBadChunk
		}
		n = n<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, errBadChunk
	}
	ext := line[i:]
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	if len(ext) > 0 && ext[0] != ';' {
		return 0, errBadChunk
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, errBadChunk
		}
	}
	return n, nil
}

// copyChunked moves a chunked body from src to dst chunk by chunk,
// checking its framing; it never holds more than a buffer of it. With
// decode, dst gets the bare data (for an HTTP/1.0 client) and the
// trailers are dropped; otherwise dst gets the chunks re-framed without
// extensions, chunks over maxOutChunk split, then the trailer fields, so
// both ends agree on where the body ends. It returns the data bytes
// moved. trailerMax bounds the trailer section.
func copyChunked(dst *wbuf, src *rbuf, decode bool, trailerMax int) (int64, error) {
	var total int64
	var hex [20]byte
	for {
		line, err := src.line(dst, maxChunkLine)
		if err != nil {
			return total, err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return total, err
		}
		src.consume(len(line) + 2)
		if size == 0 {
			break
		}
		for left := size; ; {
			n := min(left, maxOutChunk)
			if !decode {
				if err := dst.write(appendHex(hex[:0], n)); err != nil {
					return total, err
				}
			}
			if err := copyN(dst, src, n); err != nil {
				return total, err
			}
			total += n
			if left -= n; left == 0 {
				break
			}
			if !decode {
				if err := dst.writeString("\r\n"); err != nil {
					return total, err
				}
			}
		}
		crlf, err := src.line(dst, 2)
		if err != nil || len(crlf) != 0 {
			return total, errBadChunk
		}
		src.consume(2)
		if !decode {
			if err := dst.writeString("\r\n"); err != nil {
				return total, err
			}
		}
	}
	if !decode {
		if err := dst.writeString("0\r\n"); err != nil {
			return total, err
		}
	}
	seen := 0
	for {
		line, err := src.line(dst, min(maxChunkLine*4, trailerMax+2))
		if err != nil {
			return total, err
		}
		src.consume(len(line) + 2)
		if len(line) == 0 {
			break
		}
		if seen += len(line) + 2; seen > trailerMax {
			return total, errBadChunk
		}
		if !validFieldLine(line) {
			return total, errBadChunk
		}
		if !decode {
			if err := dst.write(line); err != nil {
				return total, err
			}
			if err := dst.writeString("\r\n"); err != nil {
				return total, err
			}
		}
	}
	if !decode {
		return total, dst.writeString("\r\n")
	}
	return total, nil
}

// validFieldLine checks a trailer field line as parseFields checks a
// header line.
func validFieldLine(line []byte) bool {
	c := 0
	for c < len(line) && tchar[line[c]] {
		c++
	}
	if c == 0 || c == len(line) || line[c] != ':' {
		return false
	}
	for _, ch := range line[c+1:] {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// appendHex appends a chunk-size line: n in hex and CRLF.
func appendHex(b []byte, n int64) []byte {
	const digits = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	b = append(b, tmp[i:]...)
	return append(b, '\r', '\n')
}

// appendInt appends a non-negative decimal.
func appendInt(b []byte, n int64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
