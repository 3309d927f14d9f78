// Package framing splits a TCP byte stream into syslog messages and trims
// UDP datagrams. It knows nothing about sockets or syslog headers: it is a
// set of pure functions over []byte that the connection handler calls on
// the bytes it has peeked, and it never allocates.
//
// Three TCP framings exist in the wild:
//
//   - octet counting (RFC 6587 §3.4.1): "MSG-LEN SP SYSLOG-MSG", MSG-LEN a
//     decimal without leading zero;
//   - LF-terminated ("non-transparent", RFC 6587 §3.4.2): the message ends
//     at "\n"; a "\r" before it is dropped too;
//   - NUL-terminated: the message ends at "\x00" (lets senders keep
//     multi-line messages in one frame).
//
// Auto mode decides per frame, like rsyslog and syslog-ng: a frame that
// starts with a digit is octet counted, anything else is non-transparent and
// ends at the first LF or NUL, whichever comes first. So an auto connection
// may mix framings, and a NUL-terminated sender works in auto mode as long as
// its messages contain no LF (use mode "nul" for multi-line senders). In
// mode "lf" only LF ends a frame (a NUL stays inside the message); in mode
// "nul" only NUL does (LFs stay inside). In auto mode a plain-text line
// that happens to start with a digit is taken for a length prefix and
// reported Invalid (dropped up to its LF): such senders need mode "lf".
//
// Empty frames (a stray "\n", "\r\n" or "\x00" between frames, in every
// mode) are skipped silently: they are not messages.
package framing

import (
	"bytes"
	"fmt"
)

// Mode is a TCP framing.
type Mode uint8

// Framings. Auto is the zero value.
const (
	// Auto detects the framing of every frame from its first byte.
	Auto Mode = iota
	// OctetCounting is RFC 6587 §3.4.1 "MSG-LEN SP MSG".
	OctetCounting
	// LF is non-transparent framing ended by "\n" (or "\r\n").
	LF
	// NUL is non-transparent framing ended by "\x00".
	NUL
)

// ParseMode parses the config spelling of a framing: "auto",
// "octet-counting", "lf" or "nul". The empty string is Auto.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "octet-counting":
		return OctetCounting, nil
	case "lf":
		return LF, nil
	case "nul":
		return NUL, nil
	}
	return Auto, fmt.Errorf("ingest/framing: unknown framing %q: use \"auto\", \"octet-counting\", \"lf\" or \"nul\"", s)
}

// String returns the config spelling of the mode.
func (m Mode) String() string {
	switch m {
	case OctetCounting:
		return "octet-counting"
	case LF:
		return "lf"
	case NUL:
		return "nul"
	}
	return "auto"
}

// Status is the outcome of one Framer.Next call.
type Status uint8

// Statuses of Framer.Next.
const (
	// OK: frame is one whole message.
	OK Status = iota
	// NeedMore: no whole frame at the start of the buffer yet.
	NeedMore
	// Oversize: the message is longer than Max.
	Oversize
	// Invalid: a bad octet-count prefix; consumed bytes resynchronise.
	Invalid
)

// String returns a lower-case name of the status.
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case NeedMore:
		return "need_more"
	case Oversize:
		return "oversize"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Reasons returned by Framer.Reason; stable, used as metrics labels.
const (
	ReasonOversize        = "oversize"
	ReasonBadLengthPrefix = "bad_length_prefix"
)

// DefaultMax is the message size bound used when Framer.Max is <= 0.
const DefaultMax = 64 << 10

// maxLenDigits bounds MSG-LEN: a prefix of 10 or more digits (>= 1 GB) is
// not a length anyone sends on purpose, so it is Invalid rather than an
// Oversize message whose remainder would be skipped for gigabytes.
const maxLenDigits = 9

// skip states: what the Framer is dropping before the next frame starts.
const (
	skipNone   uint8 = iota
	skipToLF         // rest of a bad octet-count prefix, or of an oversize LF frame
	skipToNUL        // rest of an oversize NUL frame
	skipToLFNU       // rest of an oversize auto non-transparent frame
)

// Framer is the framing state of one connection: the settings, and the
// remainder of an oversize or invalid frame being skipped across calls.
//
// The zero value with Mode and Max set is ready to use. A Framer is not safe
// for concurrent use: keep one per connection (in gnet, in the connection's
// context). Settings must not change between calls.
type Framer struct {
	// Mode is the framing; Auto detects it per frame.
	Mode Mode
	// Max bounds one message in bytes; <= 0 means DefaultMax. Next never
	// asks the caller to buffer more than Max+10 bytes (octet counting:
	// the longest accepted prefix, 9 digits and SP, plus Max) or Max+2
	// (non-transparent: Max plus "\r\n") before it returns a frame or
	// Oversize.
	Max int
	// Truncate delivers the first Max bytes of an oversize message (status
	// Oversize with a non-nil frame) instead of dropping it.
	Truncate bool

	skipN  int   // octet-counted bytes still to drop
	skipTo uint8 // skip state, see skipNone...
	reason string
	wire   int // see Wire
}

// Wire returns how many of the bytes the last Next consumed, counted
// back from the last, are the octet-counted frame ("MSG-LEN SP MSG") of
// the message it returned, as they arrived: when Next returned OK for an
// octet frame and trimmed nothing from its message (no LF, CRLF or NUL
// trailer inside the count), len(frame) plus the length's digits and
// the space, else 0. A relay that sends the message on octet counted and
// unchanged may copy those bytes instead of framing it again.
func (f *Framer) Wire() int { return f.wire }

// Reason returns a short, stable reason for the last Oversize or Invalid
// status ("oversize", "bad_length_prefix"), for use as a metrics label.
func (f *Framer) Reason() string { return f.reason }

// Reset drops any skip state, as for a new connection. Settings are kept.
func (f *Framer) Reset() {
	f.skipN, f.skipTo, f.reason = 0, skipNone, ""
}

func (f *Framer) max() int {
	if f.Max <= 0 {
		return DefaultMax
	}
	return f.Max
}

// Next looks for the next frame at the start of buf.
//
// It returns the frame, how many bytes of buf it consumed (the caller
// discards them from its input buffer) and a status:
//
//   - OK: frame is one whole message without framing bytes; consumed > 0.
//   - NeedMore: no whole frame yet. consumed may be > 0 when Next skipped
//     bytes (empty frames, the rest of a dropped frame); the caller discards
//     those, keeps the rest and calls again when more data arrive.
//   - Oversize: the message is longer than Max. With Truncate, frame holds
//     its first Max bytes (deliver it, count it as oversize); otherwise frame
//     is nil. Either way the Framer skips the rest of that message, across
//     later calls if need be. consumed > 0.
//   - Invalid: a bad octet-count prefix; Reason says why. consumed > 0 drops
//     the bad bytes up to and including the next LF, and the Framer keeps
//     dropping until an LF if the buffer ends first.
//
// frame aliases buf: it is valid until the caller discards or overwrites
// those bytes. Next makes progress on every call that does not return
// NeedMore, so a loop "for { Next; discard consumed; if NeedMore break }"
// terminates. It does not allocate.
func (f *Framer) Next(buf []byte) (frame []byte, consumed int, st Status) {
	f.wire = 0
	// Drop what remains of a frame being skipped, and empty frames.
	for len(buf) > 0 {
		if f.skipN > 0 {
			n := min(f.skipN, len(buf))
			f.skipN -= n
			buf = buf[n:]
			consumed += n
			continue
		}
		if f.skipTo != skipNone {
			i := f.indexSkip(buf)
			if i < 0 {
				return nil, consumed + len(buf), NeedMore
			}
			f.skipTo = skipNone
			buf = buf[i+1:]
			consumed += i + 1
			continue
		}
		if c := buf[0]; c == '\n' || c == '\r' || c == 0 {
			buf = buf[1:]
			consumed++
			continue
		}
		break
	}
	if len(buf) == 0 {
		return nil, consumed, NeedMore
	}
	var n int
	switch f.Mode {
	case OctetCounting:
		frame, n, st = f.octet(buf)
	case LF:
		frame, n, st = f.terminated(buf, skipToLF)
	case NUL:
		frame, n, st = f.terminated(buf, skipToNUL)
	default:
		if c := buf[0]; c >= '0' && c <= '9' {
			frame, n, st = f.octet(buf)
		} else {
			frame, n, st = f.terminated(buf, skipToLFNU)
		}
	}
	return frame, consumed + n, st
}

// indexSkip finds the terminator ending the frame being skipped.
func (f *Framer) indexSkip(buf []byte) int {
	switch f.skipTo {
	case skipToNUL:
		return bytes.IndexByte(buf, 0)
	case skipToLFNU:
		return indexLFOrNUL(buf)
	}
	return bytes.IndexByte(buf, '\n')
}

// indexLFOrNUL returns the index of the first LF or NUL in b, or -1.
func indexLFOrNUL(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i >= 0 {
		b = b[:i]
	}
	if j := bytes.IndexByte(b, 0); j >= 0 {
		return j
	}
	return i
}

// lenDigits reads the decimal length at the start of buf: its value and
// the index of the first byte that is not a digit (len(buf) when all
// are), or i > maxLenDigits when there are more digits than that.
//
// A length of three digits and a space (messages of 100..999 bytes, most
// of them) is read without the loop: 47 instructions a message with it
// (bench/instr.sh).
func lenDigits(buf []byte) (n, i int) {
	if len(buf) > 3 && buf[3] == ' ' {
		if d0, d1, d2 := uint(buf[0])-'0', uint(buf[1])-'0', uint(buf[2])-'0'; d0 <= 9 && d1 <= 9 && d2 <= 9 {
			return int(d0*100 + d1*10 + d2), 3
		}
	}
	for ; i < len(buf); i++ {
		c := buf[i]
		if c < '0' || c > '9' {
			break
		}
		if i == maxLenDigits {
			return 0, maxLenDigits + 1
		}
		n = n*10 + int(c-'0')
	}
	return n, i
}

// octet frames one octet-counted message at the start of buf (non-empty).
func (f *Framer) octet(buf []byte) ([]byte, int, Status) {
	if buf[0] == '0' {
		return f.invalid(buf) // leading zero, or a zero length
	}
	n, i := lenDigits(buf)
	if i > maxLenDigits {
		return f.invalid(buf)
	}
	if i == len(buf) {
		return nil, 0, NeedMore
	}
	if i == 0 || buf[i] != ' ' {
		return f.invalid(buf)
	}
	hdr := i + 1
	max := f.max()
	if n <= max {
		if len(buf)-hdr < n {
			return nil, 0, NeedMore
		}
		frame := TrimEnd(buf[hdr : hdr+n])
		if len(frame) == n {
			f.wire = hdr + n
		}
		return frame, hdr + n, OK
	}
	if n <= max+2 {
		// A message of max bytes with the trailer TrimEnd drops inside
		// the count (rsyslog's forwarding format) is not oversize, as
		// with LF framing. Callers' buffers hold max+16 bytes.
		if len(buf)-hdr < n {
			return nil, 0, NeedMore
		}
		if t := TrimEnd(buf[hdr : hdr+n]); len(t) <= max {
			return t, hdr + n, OK
		}
	}
	f.reason = ReasonOversize
	if f.Truncate {
		if len(buf)-hdr < max {
			return nil, 0, NeedMore
		}
		f.skipN = n - max
		return CutUTF8(buf[hdr : hdr+max]), hdr + max, Oversize
	}
	k := min(n, len(buf)-hdr)
	f.skipN = n - k
	return nil, hdr + k, Oversize
}

// invalid reports a bad octet-count prefix and drops through the next LF.
func (f *Framer) invalid(buf []byte) ([]byte, int, Status) {
	f.reason = ReasonBadLengthPrefix
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		return nil, i + 1, Invalid
	}
	f.skipTo = skipToLF
	return nil, len(buf), Invalid
}

// terminated frames one non-transparent message at the start of buf
// (non-empty), ended as term says (skipToLF, skipToNUL or skipToLFNU).
func (f *Framer) terminated(buf []byte, term uint8) ([]byte, int, Status) {
	max := f.max()
	// Max content bytes plus "\r\n": anything longer without a terminator
	// is oversize whatever comes next.
	win := buf[:min(len(buf), max+2)]
	var i int
	switch term {
	case skipToLF:
		i = bytes.IndexByte(win, '\n')
	case skipToNUL:
		i = bytes.IndexByte(win, 0)
	default:
		i = indexLFOrNUL(win)
	}
	if i >= 0 {
		frame := buf[:i]
		if term != skipToNUL && buf[i] == '\n' && i > 0 && frame[i-1] == '\r' {
			frame = frame[:i-1]
		}
		if len(frame) <= max {
			return frame, i + 1, OK
		}
		f.reason = ReasonOversize
		if f.Truncate {
			return CutUTF8(frame[:max]), i + 1, Oversize
		}
		return nil, i + 1, Oversize
	}
	if len(win) < max+2 {
		return nil, 0, NeedMore
	}
	f.reason = ReasonOversize
	f.skipTo = term
	if f.Truncate {
		return CutUTF8(buf[:max]), len(win), Oversize
	}
	return nil, len(win), Oversize
}

// CutUTF8 drops the bytes of a UTF-8 sequence that a cut (truncation at
// max_message_size) left incomplete at the end of b, so a truncated
// message does not end in half a character (JSON would show U+FFFD, a
// file an invalid byte). At most 3 bytes go; other bytes are kept as
// they are. The result aliases b.
func CutUTF8(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		c := b[i]
		switch {
		case c < 0x80:
			return b // ASCII: nothing cut in half
		case c < 0xC0:
			continue // a continuation byte: look further back
		}
		need := 2
		if c >= 0xF0 {
			need = 4
		} else if c >= 0xE0 {
			need = 3
		}
		if len(b)-i < need {
			return b[:i]
		}
		return b
	}
	return b
}

// TrimEnd strips one trailing LF, CRLF or NUL from a datagram or an
// octet-counted frame: many senders end messages with one (rsyslog's
// RSYSLOG_SyslogProtocol23Format forwards every message with a LF inside
// its octet count), and rsyslog drops it. The result aliases b.
func TrimEnd(b []byte) []byte {
	n := len(b)
	if n == 0 {
		return b
	}
	switch b[n-1] {
	case 0:
		return b[:n-1]
	case '\n':
		if n >= 2 && b[n-2] == '\r' {
			return b[:n-2]
		}
		return b[:n-1]
	}
	return b
}
