package sinks

import (
	"time"

	"wharf/internal/ascii"
	"wharf/message"
)

// rfc3164Time is the BSD syslog timestamp, "Mmm dd hh:mm:ss" with the day
// padded by a space; it has neither year nor zone.
const rfc3164Time = "Jan _2 15:04:05"

// maxTag is RFC3164's limit on the TAG (section 4.1.3), which old
// collectors enforce; rsyslog's RSYSLOG_TraditionalForwardFormat cuts it
// there too, its file format does not (the traditional encoding).
const maxTag = 32

// appendRFC3164 encodes m as a BSD syslog line for collectors that predate
// RFC5424: "<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PROCID]: MSG", the shape of
// rsyslog's RSYSLOG_TraditionalForwardFormat.
//
// PRI is 13 (user.notice) when unknown. TIMESTAMP is an RFC3164 sender's
// own BSD timestamp byte for byte; any other timestamp (RFC5424, ISO) is
// converted to wharf's local time zone (TZ), since the format has no zone
// and collectors read it as their local time; a message without one gets
// the receive time. HOSTNAME falls back to the peer's IP, then "-". TAG is
// APP-NAME cut to 32 bytes with "[PROCID]" when there is one; RFC5424
// MSGID and structured data have no place in the format and are left out.
// A message that was not parsed is written after the header as received.
// Header bytes outside printable ASCII become '_'.
//
// It is appendPRI followed by appendBSDLine, which is also the
// "traditional" encoding on its own (a log file's line, no PRI).
func appendRFC3164(dst []byte, m *message.Message) []byte {
	return appendBSDLine(appendPRI(dst, m), m, maxTag)
}

// appendPRI appends "<PRI>", 13 (user.notice) when the priority is unknown.
func appendPRI(dst []byte, m *message.Message) []byte {
	pri := int64(m.Priority)
	if pri < 0 || pri > 191 {
		pri = defaultPriority
	}
	dst = append(dst, '<')
	dst = ascii.AppendUint(dst, uint64(pri))
	return append(dst, '>')
}

// appendBSDLine appends the part of appendRFC3164's line after the PRI:
// "Mmm dd hh:mm:ss HOSTNAME TAG[PROCID]: MSG", the TAG cut to tagMax
// bytes.
func appendBSDLine(dst []byte, m *message.Message, tagMax int) []byte {
	// TIMESTAMP
	ts := m.Field(m.Timestamp)
	switch {
	case m.Format == message.FormatRFC3164 && len(ts) == len(rfc3164Time) && message.BSDLen(ts) == len(ts):
		dst = append(dst, ts...)
	default:
		t, ok := message.ParseTimestamp(m)
		if !ok || m.Format == message.FormatRaw {
			t = time.Unix(0, m.Received)
		}
		dst = t.In(time.Local).AppendFormat(dst, rfc3164Time)
	}
	dst = append(dst, ' ')

	// HOSTNAME
	if h := m.Field(m.Hostname); len(h) > 0 && m.Format != message.FormatRaw {
		dst = appendHeaderField(dst, h, maxHostname)
	} else if m.Peer.IsValid() {
		dst = m.Peer.Addr().Unmap().AppendTo(dst)
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')

	if m.Format == message.FormatRaw {
		return append(dst, m.Raw...)
	}
	// TAG[PROCID]:
	if app := m.Field(m.AppName); len(app) > 0 {
		dst = appendHeaderField(dst, app, tagMax)
		if pid := m.Field(m.ProcID); len(pid) > 0 {
			dst = append(dst, '[')
			dst = appendHeaderField(dst, pid, maxProcID)
			dst = append(dst, ']')
		}
		dst = append(dst, ':')
		if msg := m.Field(m.Msg); len(msg) > 0 {
			dst = append(dst, ' ')
		}
	}
	return append(dst, m.Field(m.Msg)...)
}
