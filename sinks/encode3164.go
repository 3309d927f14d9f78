package sinks

import (
	"bytes"
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
	return appendBSDRest(append(dst, ' '), m, tagMax)
}

// appendFileLine is the "traditional-rfc3339" encoding, rsyslog's
// RSYSLOG_FileFormat (its built-in default for files): appendBSDLine's
// line with an RFC 3339 timestamp, "2026-12-06T05:10:11.123456+00:00
// HOSTNAME TAG[PROCID]: MSG". An RFC 3339 timestamp is written as sent,
// zone ("Z" too) and fraction (up to 6 digits), as rsyslog does (a missing
// offset is wharf's local one); a BSD timestamp has neither and is read
// in the local zone (its year as message.ParseTimestamp infers it); a
// message without a timestamp, or not parsed, gets the receive time in
// microseconds.
func appendFileLine(dst []byte, m *message.Message) []byte {
	ts := m.Field(m.Timestamp)
	n := message.RFC3339Len(ts, 9, false)
	switch {
	case m.Format != message.FormatRaw && n > 0 && n == len(ts):
		// As sent, zone ("Z" too) and fraction, cut to 6 digits as
		// rsyslog keeps them; without a zone, wharf's local offset.
		zone := len(ts)
		if ts[zone-1] == 'Z' {
			zone--
		} else if zone >= 6 && (ts[zone-6] == '+' || ts[zone-6] == '-') && ts[zone-3] == ':' {
			zone -= 6
		}
		dt := ts[:zone]
		if dot := bytes.IndexByte(dt, '.'); dot >= 0 && len(dt)-dot-1 > 6 {
			dt = dt[:dot+7]
		}
		dst = append(dst, dt...)
		if zone < len(ts) {
			dst = append(dst, ts[zone:]...)
		} else {
			t, _ := message.ParseTimestamp(m) // read in the local zone
			dst = t.AppendFormat(dst, "-07:00")
		}
	default:
		t, ok := message.ParseTimestamp(m)
		layout := "2006-01-02T15:04:05-07:00"
		if !ok || m.Format == message.FormatRaw {
			t, layout = time.Unix(0, m.Received), "2006-01-02T15:04:05.000000-07:00"
		}
		dst = t.In(time.Local).AppendFormat(dst, layout)
	}
	return appendBSDRest(append(dst, ' '), m, maxAppName)
}

// appendBSDRest appends what follows the timestamp in a BSD line:
// "HOSTNAME TAG[PROCID]: MSG", the TAG cut to tagMax bytes.
func appendBSDRest(dst []byte, m *message.Message, tagMax int) []byte {

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
