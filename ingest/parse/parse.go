// Package parse reads syslog headers (RFC5424 and RFC3164) out of a
// message's Raw bytes and records where each field is, as message.Span values
// into Raw. It copies nothing and does not allocate on valid input: fields
// are decoded lazily by whoever needs them (ParseTimestamp, EachSDParam,
// UnescapeSDValue).
//
// Parse is a pure function of the message: it is safe to call from many
// goroutines on different messages.
package parse

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"wharf/message"
)

// Format is the syslog dialect Parse expects.
type Format uint8

// Formats. Auto is the zero value.
const (
	// Auto recognises "<PRI>1 " as RFC5424 and any other "<PRI>" as RFC3164.
	Auto Format = iota
	// RFC5424 parses strictly per RFC 5424.
	RFC5424
	// RFC3164 parses the BSD format as leniently as rsyslog.
	RFC3164
	// Raw does not parse: the message is forwarded as received.
	Raw
)

// ParseFormat parses the config spelling of a format: "auto", "rfc5424",
// "rfc3164" or "raw". The empty string is Auto.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "rfc5424":
		return RFC5424, nil
	case "rfc3164":
		return RFC3164, nil
	case "raw":
		return Raw, nil
	}
	return Auto, fmt.Errorf("ingest/parse: unknown format %q: use \"auto\", \"rfc5424\", \"rfc3164\" or \"raw\"", s)
}

// String returns the config spelling of the format.
func (f Format) String() string {
	switch f {
	case RFC5424:
		return "rfc5424"
	case RFC3164:
		return "rfc3164"
	case Raw:
		return "raw"
	}
	return "auto"
}

// Error is why a message could not be parsed. It is a small value type so
// that returning it never allocates; use Reason for metrics labels.
type Error uint8

// Parse errors.
const (
	// ErrNoPri: the message does not start with '<'.
	ErrNoPri Error = iota + 1
	// ErrBadPri: the PRI is not 0..191 in angle brackets.
	ErrBadPri
	// ErrBadVersion: the RFC5424 VERSION is not 1..255.
	ErrBadVersion
	// ErrBadTimestamp: the RFC5424 TIMESTAMP is neither RFC3339 nor "-".
	ErrBadTimestamp
	// ErrBadHostname: HOSTNAME is empty, longer than 255 or not PRINTUSASCII.
	ErrBadHostname
	// ErrBadAppName: APP-NAME is empty, longer than 48 or not PRINTUSASCII.
	ErrBadAppName
	// ErrBadProcID: PROCID is empty, longer than 128 or not PRINTUSASCII.
	ErrBadProcID
	// ErrBadMsgID: MSGID is empty, longer than 32 or not PRINTUSASCII.
	ErrBadMsgID
	// ErrBadStructuredData: STRUCTURED-DATA is not "-" or valid SD-ELEMENTs.
	ErrBadStructuredData
	// ErrTruncatedHeader: the message ends inside the header.
	ErrTruncatedHeader
	// ErrTooLong: the message does not fit a message.Span (4 GiB).
	ErrTooLong
)

var errorText = [...]struct{ reason, text string }{
	ErrNoPri:             {"no_pri", "message does not start with <PRI>"},
	ErrBadPri:            {"bad_pri", "PRI is not a number 0..191 in angle brackets"},
	ErrBadVersion:        {"bad_version", "RFC5424 VERSION is not a number 1..255 followed by a space"},
	ErrBadTimestamp:      {"bad_timestamp", "RFC5424 TIMESTAMP is neither an RFC3339 time nor \"-\""},
	ErrBadHostname:       {"bad_hostname", "RFC5424 HOSTNAME is empty, longer than 255 bytes or not printable ASCII"},
	ErrBadAppName:        {"bad_app_name", "RFC5424 APP-NAME is empty, longer than 48 bytes or not printable ASCII"},
	ErrBadProcID:         {"bad_procid", "RFC5424 PROCID is empty, longer than 128 bytes or not printable ASCII"},
	ErrBadMsgID:          {"bad_msgid", "RFC5424 MSGID is empty, longer than 32 bytes or not printable ASCII"},
	ErrBadStructuredData: {"bad_structured_data", "RFC5424 STRUCTURED-DATA is malformed"},
	ErrTruncatedHeader:   {"truncated_header", "message ends inside the syslog header"},
	ErrTooLong:           {"too_long", "message longer than 4 GiB"},
}

// Reason returns a short, stable label for metrics: "no_pri", "bad_pri",
// "bad_version", "bad_timestamp", "bad_hostname", "bad_app_name",
// "bad_procid", "bad_msgid", "bad_structured_data", "truncated_header",
// "too_long".
func (e Error) Reason() string {
	if int(e) < len(errorText) && e != 0 {
		return errorText[e].reason
	}
	return "parse_error"
}

// Error implements error.
func (e Error) Error() string {
	if int(e) < len(errorText) && e != 0 {
		return "ingest/parse: " + errorText[e].text + "; check the sender's syslog format, or set the frontend's format to \"raw\" to forward unparsed"
	}
	return "ingest/parse: parse error"
}

// Parse fills m.Format, m.Priority, m.Version and the header Spans
// (Timestamp, Hostname, AppName, ProcID, MsgID, StructuredData, Msg) from
// m.Raw, as f says. Spans point into m.Raw; an absent field or an RFC5424
// NILVALUE "-" is a zero Span. For RFC3164, AppName is the TAG and ProcID
// the pid in "TAG[pid]:". Msg excludes a leading UTF-8 BOM.
//
// With Raw it only resets the fields (Format FormatRaw, Priority -1).
// On malformed input it returns an Error, leaves m.Format = FormatRaw with
// every Span zero and Version 0, and keeps Priority only when the PRI
// itself was valid (else -1), so routing by severity still works for
// messages forwarded raw.
//
// Auto treats "<PRI>1 " as RFC5424 (and then reports RFC5424 errors; it
// does not fall back to RFC3164) and any other "<PRI>" as RFC3164; a
// message without a PRI is ErrNoPri. Explicit RFC3164 also accepts a
// message without PRI (Priority -1), as rsyslog does.
//
// Parse does not allocate.
func Parse(m *message.Message, f Format) error { return parse(m, f, false) }

// ParseHeader is Parse without the RFC5424 STRUCTURED-DATA and MSG: it
// checks and locates PRI, VERSION and the header fields up to MSGID, and
// leaves StructuredData and Msg zero (what follows MSGID is not looked
// at, so malformed structured data is not detected). RFC3164 messages,
// which have no structured data, are parsed whole. A relay whose routes
// and outputs use only header fields and Raw (the raw encoding) needs no
// more, and skips the most expensive part of a parse (BenchmarkParseHeader
// vs BenchmarkParseRFC5424, three SD-PARAMs: 55 vs 118 ns).
func ParseHeader(m *message.Message, f Format) error { return parse(m, f, true) }

func parse(m *message.Message, f Format, headerOnly bool) error {
	m.Format = message.FormatRaw
	m.Priority = -1
	m.Version = 0
	m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg = message.Span{}, message.Span{}, message.Span{}, message.Span{}, message.Span{}, message.Span{}, message.Span{}
	if f == Raw {
		return nil
	}
	if len(m.Raw) > math.MaxUint32 {
		return ErrTooLong
	}
	var err Error
	switch f {
	case RFC5424:
		err = parse5424(m, headerOnly)
	case RFC3164:
		err = parse3164(m, true)
	default:
		// The PRI is read once, leniently, and handed on: parsing it
		// again in each dialect cost the TCP relay 1.5% of its CPU.
		pri, p, e := parsePRI(m.Raw, true)
		switch {
		case e != 0:
			return e
		case p+1 < len(m.Raw) && m.Raw[p] == '1' && m.Raw[p+1] == ' ':
			if p > 3 && m.Raw[1] == '0' { // RFC 5424 refuses leading zeros
				err = ErrBadPri
			} else {
				m.Priority = int16(pri)
				err = after5424(m, 1, p+2, headerOnly)
			}
		default:
			err = body3164(m, pri, p)
		}
	}
	if err != 0 {
		pri := m.Priority
		m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg = message.Span{}, message.Span{}, message.Span{}, message.Span{}, message.Span{}, message.Span{}, message.Span{}
		m.Format = message.FormatRaw
		m.Version = 0
		m.Priority = pri
		return err
	}
	return nil
}

// span returns the Span of raw[off:off+n].
func span(off, n int) message.Span { return message.Span{Off: uint32(off), Len: uint32(n)} }

// parsePRI reads "<PRI>" at the start of b and returns the value and the
// index after '>'. Unless lenient (RFC3164), leading zeros are refused.
func parsePRI(b []byte, lenient bool) (pri, next int, err Error) {
	// The common forms, "<d>", "<dd>" and "<ddd>" with a valid value,
	// are taken without the loop (87 instructions per message with it,
	// bench/instr.sh); anything else, valid or not, goes the long way.
	if len(b) >= 5 && b[0] == '<' {
		d0, d1, d2 := uint(b[1])-'0', uint(b[2])-'0', uint(b[3])-'0'
		switch {
		case d0 > 9:
		case d1 > 9:
			if b[2] == '>' {
				return int(d0), 3, 0
			}
		case d2 > 9:
			if b[3] == '>' && (lenient || d0 != 0) {
				return int(d0*10 + d1), 4, 0
			}
		default:
			if v := d0*100 + d1*10 + d2; b[4] == '>' && v <= 191 && (lenient || d0 != 0) {
				return int(v), 5, 0
			}
		}
	}
	return scanPRI(b, lenient)
}

// scanPRI is parsePRI a byte at a time: every form, and every error.
func scanPRI(b []byte, lenient bool) (pri, next int, err Error) {
	if len(b) == 0 || b[0] != '<' {
		return 0, 0, ErrNoPri
	}
	i := 1
	for i < len(b) && i <= 4 && isDigit(b[i]) {
		pri = pri*10 + int(b[i]-'0')
		i++
	}
	digits := i - 1
	switch {
	case i == len(b) && digits <= 3:
		return 0, 0, ErrTruncatedHeader
	case digits == 0 || digits > 3 || b[i] != '>' || pri > 191:
		return 0, 0, ErrBadPri
	case !lenient && digits > 1 && b[1] == '0':
		return 0, 0, ErrBadPri
	}
	return pri, i + 1, 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isPrint reports PRINTUSASCII (33..126), the RFC5424 header alphabet.
func isPrint(c byte) bool { return c > ' ' && c < 0x7f }

// printRun returns the index of the first byte at or after p that is not
// PRINTUSASCII, or len(b). It looks at 8 bytes at a time: in a word x,
// (x - 0x21..) &^ x has the high bit set in a byte below 0x21 and
// (x + 0x01..) | x in a byte above 0x7e; a borrow or carry only spills
// into bytes above one already flagged, so the lowest flagged byte (the
// first in memory, x read little-endian) is exact. A header field is
// then a few word tests instead of a test per byte.
func printRun(b []byte, p int) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	for p+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[p:])
		if bad := ((x-0x21*ones)&^x | (x + ones) | x) & high; bad != 0 {
			return p + bits.TrailingZeros64(bad)/8
		}
		p += 8
	}
	for p < len(b) && isPrint(b[p]) {
		p++
	}
	return p
}
