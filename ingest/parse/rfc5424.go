package parse

import (
	"bytes"
	"unicode/utf8"

	"wharf/message"
)

// RFC5424 field limits (RFC 5424 §6).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxSDName   = 32
)

// maxDupCheck bounds the SD-IDs checked for duplicates (RFC 5424 §6.3.2:
// an SD-ID MUST NOT appear twice). Elements beyond it are validated but not
// compared, so a hostile message cannot make the check quadratic.
const maxDupCheck = 32

var bom = []byte("\xef\xbb\xbf")

// parse5424 parses m.Raw as RFC5424:
//
//	<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]
//
// With headerOnly it stops after MSGID: STRUCTURED-DATA and MSG are
// neither checked nor located (their Spans stay zero).
func parse5424(m *message.Message, headerOnly bool) Error {
	pri, p, err := parsePRI(m.Raw, false)
	if err != 0 {
		return err
	}
	return body5424(m, pri, p, headerOnly)
}

// body5424 is parse5424 after the PRI: pri is its value, p the index
// after its '>'.
func body5424(m *message.Message, pri, p int, headerOnly bool) Error {
	b := m.Raw
	m.Priority = int16(pri)

	// VERSION = NONZERO-DIGIT 0*2DIGIT; wider than uint8 is refused.
	if p == len(b) {
		return ErrTruncatedHeader
	}
	if b[p] < '1' || b[p] > '9' {
		return ErrBadVersion
	}
	v, start := 0, p
	for p < len(b) && p-start < 3 && isDigit(b[p]) {
		v = v*10 + int(b[p]-'0')
		p++
	}
	if p == len(b) {
		return ErrTruncatedHeader
	}
	if b[p] != ' ' || v > 255 {
		return ErrBadVersion
	}
	return after5424(m, v, p+1, headerOnly)
}

// after5424 is body5424 after the VERSION (v) and its space: p is the
// index of the TIMESTAMP. Auto, which has seen "1 ", starts here.
func after5424(m *message.Message, v, p int, headerOnly bool) Error {
	b := m.Raw
	var err Error

	// TIMESTAMP
	if p == len(b) {
		return ErrTruncatedHeader
	}
	var ts message.Span
	if b[p] == '-' {
		p++
	} else {
		n := message.RFC3339Len(b[p:], 6, true)
		if n == 0 {
			return ErrBadTimestamp
		}
		ts = span(p, n)
		p += n
	}
	if p == len(b) {
		return ErrTruncatedHeader
	}
	if b[p] != ' ' {
		return ErrBadTimestamp
	}
	p++

	var fields [4]message.Span
	if p, err = headerFields(b, p, &fields); err != 0 {
		return err
	}
	host, app, proc, msgid := fields[0], fields[1], fields[2], fields[3]

	// STRUCTURED-DATA
	if p == len(b) {
		return ErrTruncatedHeader
	}
	if headerOnly {
		m.Format = message.FormatRFC5424
		m.Version = uint8(v)
		m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID = ts, host, app, proc, msgid
		return 0
	}
	var sd message.Span
	switch b[p] {
	case '-':
		p++
	case '[':
		n, err := scanSD(b[p:])
		if err != 0 {
			return err
		}
		sd = span(p, n)
		p += n
	default:
		return ErrBadStructuredData
	}

	// [SP MSG], MSG optionally starting with a BOM.
	var msg message.Span
	if p < len(b) {
		if b[p] != ' ' {
			return ErrBadStructuredData
		}
		p++
		if bytes.HasPrefix(b[p:], bom) {
			p += len(bom)
		}
		if p < len(b) {
			msg = span(p, len(b)-p)
		}
	}

	m.Format = message.FormatRFC5424
	m.Version = uint8(v)
	m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg = ts, host, app, proc, msgid, sd, msg
	return 0
}

// The header fields after the timestamp, in order: their length limits
// and the error each gets.
var (
	fieldMax = [4]int{maxHostname, maxAppName, maxProcID, maxMsgID}
	fieldErr = [4]Error{ErrBadHostname, ErrBadAppName, ErrBadProcID, ErrBadMsgID}
)

// headerFields reads HOSTNAME, APP-NAME, PROCID and MSGID, each 1..max
// PRINTUSASCII bytes followed by a space, at b[p:] into f ("-", the
// NILVALUE, leaves a zero Span) and returns the index after them, or the
// first bad field's error (fieldError). One loop for the four in place
// of a call per field: the header after the PRI went from 420 to 388
// instructions a message (bench/instr.sh); each field's scan still
// costs about 60.
func headerFields(b []byte, p int, f *[4]message.Span) (int, Error) {
	for i := range f {
		start := p
		p = printRun(b, p)
		n := p - start
		if n == 0 || n > fieldMax[i] || p == len(b) || b[p] != ' ' {
			return 0, fieldError(b, start, p, fieldMax[i], fieldErr[i])
		}
		if n != 1 || b[start] != '-' {
			f[i] = span(start, n)
		}
		p++
	}
	return p, 0
}

// fieldError is the error of a header field that headerFields refused:
// it starts at start and its PRINTUSASCII run ends at p. A field cut
// short by the end of the message is truncated, unless it is already
// too long; else the field is bad (empty, too long, or ended by
// something other than a space).
func fieldError(b []byte, start, p, max int, bad Error) Error {
	if p == len(b) && p-start <= max {
		return ErrTruncatedHeader
	}
	return bad
}

// scanSD validates the SD-ELEMENTs at the start of b (b[0] == '[') and
// returns their length. It checks the SD-ID and PARAM-NAME alphabets and
// lengths, escapes and UTF-8 in PARAM-VALUEs, and duplicate SD-IDs among
// the first maxDupCheck elements.
func scanSD(b []byte) (int, Error) {
	var ids [maxDupCheck]struct{ off, n int32 }
	it := sdIter{b: b}
	for n := 0; ; n++ {
		id, ok, err := it.element()
		if err != 0 {
			return 0, err
		}
		if !ok {
			return it.p, 0
		}
		if n < maxDupCheck {
			off := it.p - len(id)
			for _, prev := range ids[:n] {
				if int(prev.n) == len(id) && bytes.Equal(b[prev.off:int(prev.off)+len(id)], id) {
					return 0, ErrBadStructuredData
				}
			}
			ids[n].off, ids[n].n = int32(off), int32(len(id))
		}
		for {
			_, _, ok, err := it.param()
			if err != 0 {
				return 0, err
			}
			if !ok {
				break
			}
		}
	}
}

// sdIter walks SD-ELEMENTs: element, then param until it reports !ok,
// then element again. It never allocates.
type sdIter struct {
	b []byte
	p int
}

// element reads "[SD-ID" and returns the SD-ID, or ok=false when the next
// byte does not open an element (end of the structured data).
func (it *sdIter) element() (id []byte, ok bool, err Error) {
	if it.p == len(it.b) || it.b[it.p] != '[' {
		return nil, false, 0
	}
	it.p++
	id = it.name()
	if id == nil {
		return nil, false, ErrBadStructuredData
	}
	return id, true, 0
}

// param reads ` name="value"` and returns the value still escaped, or
// ok=false after the element's closing ']'.
func (it *sdIter) param() (name, value []byte, ok bool, err Error) {
	b := it.b
	if it.p == len(b) {
		return nil, nil, false, ErrBadStructuredData
	}
	if b[it.p] == ']' {
		it.p++
		return nil, nil, false, 0
	}
	if b[it.p] != ' ' {
		return nil, nil, false, ErrBadStructuredData
	}
	it.p++
	name = it.name()
	if name == nil || it.p+1 >= len(b) || b[it.p] != '=' || b[it.p+1] != '"' {
		return nil, nil, false, ErrBadStructuredData
	}
	it.p += 2
	start := it.p
	for p := it.p; p < len(b); {
		if sdClass[b[p]]&sdPlainByte != 0 {
			p++
			continue
		}
		switch c := b[p]; {
		case c == '"':
			it.p = p + 1
			return name, b[start:p], true, 0
		case c == '\\':
			if p+1 == len(b) || (b[p+1] != '"' && b[p+1] != ']' && b[p+1] != '\\') {
				return nil, nil, false, ErrBadStructuredData
			}
			p += 2
		case c < utf8.RuneSelf: // ']'
			return nil, nil, false, ErrBadStructuredData
		default:
			r, size := utf8.DecodeRune(b[p:])
			if r == utf8.RuneError && size == 1 {
				return nil, nil, false, ErrBadStructuredData
			}
			p += size
		}
	}
	return nil, nil, false, ErrBadStructuredData
}

// Byte classes for the SD scanner.
const (
	sdNameByte  = 1 << iota // SD-NAME: PRINTUSASCII except '=', ']', '"'
	sdPlainByte             // PARAM-VALUE ASCII needing no check: not '"', ']', '\\'
)

var sdClass = func() (t [256]uint8) {
	for c := 0; c < 0x80; c++ {
		if isPrint(byte(c)) && c != '=' && c != ']' && c != '"' {
			t[c] |= sdNameByte
		}
		if c != '"' && c != ']' && c != '\\' {
			t[c] |= sdPlainByte
		}
	}
	return t
}()

// name reads an SD-NAME (1..32 PRINTUSASCII except '=', ']', '"'), or
// returns nil.
func (it *sdIter) name() []byte {
	start := it.p
	for it.p < len(it.b) && sdClass[it.b[it.p]]&sdNameByte != 0 {
		it.p++
	}
	if n := it.p - start; n == 0 || n > maxSDName {
		return nil
	}
	return it.b[start:it.p]
}

// EachSDParam calls fn for every PARAM of every SD-ELEMENT in sd (the
// bytes of a StructuredData span), in order: id is the SD-ID, name the
// PARAM-NAME and value the PARAM-VALUE still escaped (see UnescapeSDValue).
// An element without params gives one call with name and value nil. fn
// returns false to stop. The slices alias sd. An empty sd or "-" has no
// elements. It returns ErrBadStructuredData if sd is malformed (after the
// calls for the well-formed prefix).
func EachSDParam(sd []byte, fn func(id, name, value []byte) bool) error {
	if len(sd) == 0 || (len(sd) == 1 && sd[0] == '-') {
		return nil
	}
	it := sdIter{b: sd}
	for {
		id, ok, err := it.element()
		if err != 0 {
			return err
		}
		if !ok {
			if it.p != len(sd) {
				return ErrBadStructuredData
			}
			return nil
		}
		params := 0
		for ; ; params++ {
			name, value, ok, err := it.param()
			if err != 0 {
				return err
			}
			if !ok {
				break
			}
			if !fn(id, name, value) {
				return nil
			}
		}
		if params == 0 && !fn(id, nil, nil) {
			return nil
		}
	}
}

// UnescapeSDValue appends the PARAM-VALUE v to dst with the escapes `\"`,
// `\]` and `\\` resolved, and returns the extended slice. Any other
// backslash is kept as is.
func UnescapeSDValue(dst, v []byte) []byte {
	for {
		i := bytes.IndexByte(v, '\\')
		if i < 0 || i+1 == len(v) {
			return append(dst, v...)
		}
		dst = append(dst, v[:i]...)
		switch c := v[i+1]; c {
		case '"', ']', '\\':
			dst = append(dst, c)
		default:
			dst = append(dst, '\\', c)
		}
		v = v[i+2:]
	}
}
