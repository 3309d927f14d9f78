package parse

import (
	"bytes"

	"wharf/message"
)

// parse3164 parses m.Raw as RFC3164 the way rsyslog does for real-world
// senders, where every part after the PRI is optional:
//
//	<PRI>[TIMESTAMP[:] SP [HOSTNAME SP]][TAG[\[PID\]]: SP]MSG
//
// The parts are recognised as follows.
//
//   - TIMESTAMP is BSD ("Mmm dd hh:mm:ss", see message.BSDLen) or RFC3339 with or
//     without offset (rsyslog's "ISO" 3164 variant).
//   - HOSTNAME is only looked for after a timestamp (otherwise the first
//     word is a TAG or the message): it is the next word when that is
//     made of letters, digits, '.', '_', '-' and ':' (IPv6) and does not
//     end in ':'. So "Nov 25 10:00:00 sshd[1]: x" (local /dev/log style,
//     no hostname) gives TAG sshd, and "Nov 25 10:00:00 su: x" TAG su.
//   - TAG is 1..48 printable bytes without '[' or ':', ended by ":" + SP
//     (or end of message), or by "[PID]" optionally followed by ':'. A word
//     that is not followed that way is part of MSG, not a TAG.
//   - One SP after the TAG is dropped; the rest is MSG.
//
// The only errors are about the PRI: missing (unless noPriOK) or invalid.
func parse3164(m *message.Message, noPriOK bool) Error {
	pri, p, err := parsePRI(m.Raw, true)
	switch {
	case err == ErrNoPri && noPriOK:
		return body3164(m, -1, 0)
	case err != 0:
		return err
	}
	return body3164(m, pri, p)
}

// body3164 is parse3164 after the PRI: pri is its value (-1: none), p
// the index after it.
func body3164(m *message.Message, pri, p int) Error {
	b := m.Raw
	if pri >= 0 {
		m.Priority = int16(pri)
	}
	for p < len(b) && b[p] == ' ' {
		p++
	}

	var ts, host, tag, pid, msg message.Span
	n := message.BSDLen(b[p:])
	if n == 0 {
		n = message.RFC3339Len(b[p:], 9, false)
	}
	if n > 0 && (p+n == len(b) || b[p+n] == ' ' || b[p+n] == ':') {
		ts = span(p, n)
		p += n
		if p < len(b) && b[p] == ':' {
			p++
		}
		for p < len(b) && b[p] == ' ' {
			p++
		}
		if i := bytes.IndexByte(b[p:], ' '); i > 0 && isHostname(b[p:p+i]) {
			host = span(p, i)
			p += i + 1
			for p < len(b) && b[p] == ' ' {
				p++
			}
		}
	}

	if t, pd, next, ok := scanTag(b, p); ok {
		tag, pid, p = t, pd, next
	}
	if p < len(b) {
		msg = span(p, len(b)-p)
	}
	m.Format = message.FormatRFC3164
	m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.Msg = ts, host, tag, pid, msg
	return 0
}

// isHostname reports whether w looks like a hostname or IP address rather
// than a TAG.
func isHostname(w []byte) bool {
	if len(w) > maxHostname || w[len(w)-1] == ':' {
		return false
	}
	for _, c := range w {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c), c == '.', c == '-', c == '_', c == ':':
		default:
			return false
		}
	}
	return true
}

// scanTag reads "TAG: ", "TAG[PID]: ", "TAG[PID] " or "TAG[PID]:" at
// b[p:] and returns the TAG and PID spans and where MSG starts. Only the
// bracketed form may go without a space after its colon (some devices
// write "app[42]:text"); "word:text" stays part of MSG, since it is as
// likely a "key:value" or a URL.
func scanTag(b []byte, p int) (tag, pid message.Span, next int, ok bool) {
	start := p
	for p < len(b) && p-start <= maxAppName && isPrint(b[p]) && b[p] != '[' && b[p] != ':' {
		p++
	}
	n := p - start
	if n == 0 || n > maxAppName || p == len(b) {
		return tag, pid, 0, false
	}
	switch b[p] {
	case ':':
		p++
		if p < len(b) && b[p] != ' ' {
			return tag, pid, 0, false
		}
	case '[':
		i := bytes.IndexByte(b[p+1:min(len(b), p+2+maxProcID)], ']')
		if i <= 0 {
			return tag, pid, 0, false
		}
		for _, c := range b[p+1 : p+1+i] {
			if !isPrint(c) {
				return tag, pid, 0, false
			}
		}
		pid = span(p+1, i)
		p += i + 2
		if p < len(b) && b[p] == ':' {
			p++
			if p < len(b) && b[p] != ' ' {
				return span(start, n), pid, p, true // "TAG[PID]:MSG"
			}
		}
		if p < len(b) && b[p] != ' ' {
			return message.Span{}, message.Span{}, 0, false
		}
	default:
		return tag, pid, 0, false
	}
	if p < len(b) {
		p++ // the SP after the TAG
	}
	return span(start, n), pid, p, true
}
