// Package stamp is the bench's message stamp: the few fields that the
// generator writes into every syslog message and receivers read back to
// account for loss, duplicates and latency.
//
// A stamp names the run, the sender stream (one per generator connection,
// each with its own sequence space starting at 0), the sequence number and
// the send time in Unix nanoseconds:
//
//	RFC5424 (structured data): [wb@32473 run="k3f9a0b1" c="3" seq="000000000123" t="1764097000123456789"]
//	RFC3164 (message text):     wb@32473 run=k3f9a0b1 c=3 seq=000000000123 t=1764097000123456789
//
// seq and t have fixed widths so the generator can patch their digits in
// place in a pre-rendered message. Parse accepts both spellings and any
// parameter order, since relays may re-serialize structured data.
package stamp

import (
	"bytes"
	"errors"
	"strconv"
	"time"
)

// SDID is the structured-data ID (and, in RFC3164 text, the marker) of a
// stamp. 32473 is the private enterprise number reserved for examples.
const SDID = "wb@32473"

// Widths of the in-place patched fields.
const (
	SeqDigits  = 12
	TimeDigits = 19
)

// Formats a Template renders.
const (
	RFC5424 = "rfc5424"
	RFC3164 = "rfc3164"
)

// Framings a Template renders.
const (
	// OctetCounting prefixes each message with its length and a space (RFC 6587).
	OctetCounting = "octet-counting"
	// LF terminates each message with a newline.
	LF = "lf"
	// None is one bare message (UDP: one per datagram).
	None = "none"
)

// Template is one pre-rendered, framed message whose seq and time digits
// are patched in place. A Template is not safe for concurrent use: each
// generator connection owns one.
type Template struct {
	// Frame is the framed message (framing prefix/suffix included). Its
	// contents change with every SetSeq/IncSeq/SetTime; copy it out.
	Frame   []byte
	seqOff  int
	timeOff int
}

// Options describe the message a Template renders.
type Options struct {
	// Format is RFC5424 (default) or RFC3164.
	Format string
	// Framing is OctetCounting, LF or None (default).
	Framing string
	// Size is the total message size in bytes without framing; the MSG
	// part is padded up to it. Messages never get shorter than the header
	// and stamp (about 150 bytes).
	Size int
	// Run is the run id (no spaces, quotes or ']').
	Run string
	// Conn is the sender stream number.
	Conn int
	// Host is the HOSTNAME field. Default "wharf-bench".
	Host string
}

// NewTemplate renders a template with seq 0 and time 0.
func NewTemplate(o Options) (*Template, error) {
	if o.Host == "" {
		o.Host = "wharf-bench"
	}
	if o.Run == "" || bytes.ContainsAny([]byte(o.Run), " \"]=\n") {
		return nil, errors.New("bench/stamp: run id must be non-empty without spaces, quotes, '=' or ']'")
	}
	var b []byte
	var seqOff, timeOff int
	conn := strconv.Itoa(o.Conn)
	zeroSeq := bytes.Repeat([]byte{'0'}, SeqDigits)
	zeroT := bytes.Repeat([]byte{'0'}, TimeDigits)
	switch o.Format {
	case RFC5424, "":
		ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
		b = append(b, "<134>1 "+ts+" "+o.Host+" wharf-bench - - ["+SDID+" run=\""+o.Run+"\" c=\""+conn+"\" seq=\""...)
		seqOff = len(b)
		b = append(b, zeroSeq...)
		b = append(b, "\" t=\""...)
		timeOff = len(b)
		b = append(b, zeroT...)
		b = append(b, "\"] "...)
	case RFC3164:
		ts := time.Now().Format(time.Stamp)
		b = append(b, "<134>"+ts+" "+o.Host+" wharf-bench[1]: "+SDID+" run="+o.Run+" c="+conn+" seq="...)
		seqOff = len(b)
		b = append(b, zeroSeq...)
		b = append(b, " t="...)
		timeOff = len(b)
		b = append(b, zeroT...)
		b = append(b, ' ')
	default:
		return nil, errors.New("bench/stamp: unknown format " + strconv.Quote(o.Format) + " (want rfc5424 or rfc3164)")
	}
	for i := 0; len(b) < o.Size; i++ {
		b = append(b, 'a'+byte(i%26))
	}
	var prefix int
	switch o.Framing {
	case None, "":
	case OctetCounting:
		p := strconv.Itoa(len(b)) + " "
		prefix = len(p)
		b = append([]byte(p), b...)
	case LF:
		b = append(b, '\n')
	default:
		return nil, errors.New("bench/stamp: unknown framing " + strconv.Quote(o.Framing) + " (want octet-counting, lf or none)")
	}
	return &Template{Frame: b, seqOff: seqOff + prefix, timeOff: timeOff + prefix}, nil
}

// SetSeq writes n into the seq digits (n modulo 10^SeqDigits).
func (t *Template) SetSeq(n uint64) { putDigits(t.Frame[t.seqOff:t.seqOff+SeqDigits], n) }

// IncSeq adds one to the seq digits in place (carrying; wraps at 10^SeqDigits).
func (t *Template) IncSeq() {
	d := t.Frame[t.seqOff : t.seqOff+SeqDigits]
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] != '9' {
			d[i]++
			return
		}
		d[i] = '0'
	}
}

// SetTime writes the send time (Unix nanoseconds) into the time digits.
func (t *Template) SetTime(ns int64) {
	putDigits(t.Frame[t.timeOff:t.timeOff+TimeDigits], uint64(ns))
}

func putDigits(d []byte, n uint64) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
}

// Stamp is what Parse reads back from a message.
type Stamp struct {
	// Run is the run id; it points into the parsed message and is valid
	// only as long as that buffer is.
	Run []byte
	// Conn is the sender stream number.
	Conn uint32
	// Seq is the sequence number within the stream.
	Seq uint64
	// Time is the send time in Unix nanoseconds.
	Time int64
}

var sdid = []byte(SDID)

// Parse finds the stamp in one message (framing already removed, though
// trailing bytes are harmless). It reports false when the message has no
// complete stamp. It does not allocate.
func Parse(msg []byte) (Stamp, bool) {
	var s Stamp
	i := bytes.Index(msg, sdid)
	if i < 0 {
		return s, false
	}
	p := msg[i+len(sdid):]
	const haveRun, haveConn, haveSeq, haveTime = 1, 2, 4, 8
	have := 0
	for have != haveRun|haveConn|haveSeq|haveTime {
		for len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		eq := bytes.IndexByte(p, '=')
		if eq <= 0 || eq > 8 {
			return s, false
		}
		name := p[:eq]
		p = p[eq+1:]
		quoted := len(p) > 0 && p[0] == '"'
		if quoted {
			p = p[1:]
		}
		end := 0
		for end < len(p) && p[end] != '"' && p[end] != ' ' && p[end] != ']' {
			end++
		}
		val := p[:end]
		p = p[end:]
		if quoted {
			if len(p) == 0 || p[0] != '"' {
				return s, false
			}
			p = p[1:]
		}
		switch string(name) { // no allocation: compiler-optimised comparison
		case "run":
			s.Run = val
			have |= haveRun
		case "c":
			n, ok := digits(val)
			if !ok {
				return s, false
			}
			s.Conn = uint32(n)
			have |= haveConn
		case "seq":
			n, ok := digits(val)
			if !ok {
				return s, false
			}
			s.Seq = n
			have |= haveSeq
		case "t":
			n, ok := digits(val)
			if !ok {
				return s, false
			}
			s.Time = int64(n)
			have |= haveTime
		}
		if len(p) > 0 && p[0] == ']' {
			break
		}
	}
	return s, have == haveRun|haveConn|haveSeq|haveTime
}

func digits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
