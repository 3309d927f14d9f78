package sinks

import (
	"fmt"
	"strconv"
	"time"

	"wharf/internal/ascii"
	"wharf/internal/jsonstr"
	"wharf/message"
)

// Encoding is how a sink turns one Message into bytes.
type Encoding uint8

// Encodings a sink can be configured with (conf key "encoding").
const (
	// EncodingRaw writes Message.Raw unchanged: the bytes as received,
	// without framing.
	EncodingRaw Encoding = iota
	// EncodingRFC5424 re-encodes the message as an RFC5424 line
	// "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG".
	EncodingRFC5424
	// EncodingJSON writes one JSON object with the metadata and the
	// parsed header fields.
	EncodingJSON
	// EncodingRFC3164 writes a BSD syslog line "<PRI>Mmm dd hh:mm:ss
	// HOSTNAME TAG[PID]: MSG" for old collectors (see appendRFC3164).
	EncodingRFC3164
	// EncodingTraditional is EncodingRFC3164 without "<PRI>": the line
	// of a classic /var/log file, rsyslog's RSYSLOG_TraditionalFileFormat.
	EncodingTraditional
	// EncodingTraditionalRFC3339 is EncodingTraditional with an RFC 3339
	// timestamp: rsyslog's RSYSLOG_FileFormat (see appendFileLine).
	EncodingTraditionalRFC3339
)

// String returns the config spelling of the encoding.
func (e Encoding) String() string {
	switch e {
	case EncodingRFC5424:
		return "rfc5424"
	case EncodingJSON:
		return "json"
	case EncodingRFC3164:
		return "rfc3164"
	case EncodingTraditional:
		return "traditional"
	case EncodingTraditionalRFC3339:
		return "traditional-rfc3339"
	}
	return "raw"
}

// ParseEncoding maps a config value ("raw", "rfc5424", "rfc3164",
// "traditional", "traditional-rfc3339", "json") to an Encoding. The empty string is an error: each sink type picks its own
// default before calling it.
func ParseEncoding(s string) (Encoding, error) {
	switch s {
	case "raw":
		return EncodingRaw, nil
	case "rfc5424":
		return EncodingRFC5424, nil
	case "json":
		return EncodingJSON, nil
	case "rfc3164":
		return EncodingRFC3164, nil
	case "traditional":
		return EncodingTraditional, nil
	case "traditional-rfc3339":
		return EncodingTraditionalRFC3339, nil
	}
	return 0, fmt.Errorf("sinks: unknown encoding %q (want raw, rfc5424, rfc3164, traditional, traditional-rfc3339 or json)", s)
}

// Append appends m encoded as e to dst and returns the extended slice. It
// adds no framing (no trailing newline, no octet count): callers do.
//
// It allocates nothing apart from growing dst, so a caller that reuses
// dst (dst[:0]) encodes without allocation once dst is large enough. m is
// only read; its spans must lie within m.Raw (as every parser guarantees).
func (e Encoding) Append(dst []byte, m *message.Message) []byte {
	switch e {
	case EncodingRFC5424:
		return appendRFC5424(dst, m)
	case EncodingJSON:
		return appendJSON(dst, m)
	case EncodingRFC3164:
		return appendRFC3164(dst, m)
	case EncodingTraditional:
		return appendBSDLine(dst, m, maxAppName) // RSYSLOG_TraditionalFileFormat keeps the whole tag
	case EncodingTraditionalRFC3339:
		return appendFileLine(dst, m)
	}
	return append(dst, m.Raw...)
}

// AppendLine appends m encoded as e and a LF: one line of a file or of
// an LF-framed stream. Control characters the encoding left in (all but
// json escape their own) are written as '#' and three octal digits, as
// rsyslog does on receive ("#012" for LF, "#015" for CR), TAB excepted,
// so a message holding a LF cannot end its line and forge another one.
func (e Encoding) AppendLine(dst []byte, m *message.Message) []byte {
	start := len(dst)
	dst = e.Append(dst, m)
	// Every encoding's line comes from Raw plus text of wharf's own
	// without control characters, so looking at Raw tells whether the
	// line needs escaping: Raw was written long before, while a scan of
	// the line just copied stalls on the copy's stores (88 vs 18 ns for
	// a 230-byte line).
	if e != EncodingJSON && ascii.HasControl(m.Raw) {
		dst = ascii.EscapeControl(dst, start, true)
	}
	return append(dst, '\n')
}

// RFC5424 field limits (RFC5424 section 6).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
)

// defaultPriority is used for messages without a known PRI: user.notice,
// as RFC3164 section 4.3.3 prescribes for relays.
const defaultPriority = 13

// rfc5424Time is RFC3339 with at most six fractional digits, the most
// RFC5424 (TIME-SECFRAC) allows.
const rfc5424Time = "2006-01-02T15:04:05.999999Z07:00"

// appendRFC5424 re-encodes m as an RFC5424 message.
//
// RFC5424 sources keep their header fields (truncated to the RFC limits,
// non-printable bytes replaced by '_'). For RFC3164 and raw messages the
// TIMESTAMP is the sender's RFC3164 timestamp (message.ParseTimestamp: the
// missing year is inferred and the missing zone taken as local), or the
// receive time in UTC when the message has none;
// HOSTNAME falls back to the peer's IP when absent, and raw messages carry
// their whole Raw as MSG.
func appendRFC5424(dst []byte, m *message.Message) []byte {
	pri := int64(m.Priority)
	if pri < 0 || pri > 191 {
		pri = defaultPriority
	}
	dst = append(dst, '<')
	dst = ascii.AppendUint(dst, uint64(pri))
	dst = append(dst, ">1 "...)

	// TIMESTAMP
	if ts := m.Field(m.Timestamp); m.Format == message.FormatRFC5424 && len(ts) > 0 {
		dst = appendHeaderField(dst, ts, len(ts))
	} else if m.Format == message.FormatRFC5424 || m.Received == 0 {
		dst = append(dst, '-')
	} else if t, ok := message.ParseTimestamp(m); ok {
		dst = t.AppendFormat(dst, rfc5424Time) // the sender's time, with its zone
	} else {
		dst = time.Unix(0, m.Received).UTC().AppendFormat(dst, rfc5424Time)
	}
	dst = append(dst, ' ')

	// HOSTNAME
	if h := m.Field(m.Hostname); len(h) > 0 && m.Format != message.FormatRaw {
		dst = appendHeaderField(dst, h, maxHostname)
	} else if m.Format != message.FormatRFC5424 && m.Peer.IsValid() {
		dst = m.Peer.Addr().Unmap().AppendTo(dst)
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')

	if m.Format == message.FormatRaw {
		dst = append(dst, "- - - -"...)
		if len(m.Raw) > 0 {
			dst = append(dst, ' ')
			dst = append(dst, m.Raw...)
		}
		return dst
	}

	dst = appendHeaderField(dst, m.Field(m.AppName), maxAppName)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, m.Field(m.ProcID), maxProcID)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, m.Field(m.MsgID), maxMsgID)
	dst = append(dst, ' ')
	if sd := m.Field(m.StructuredData); len(sd) > 0 && m.Format == message.FormatRFC5424 {
		dst = append(dst, sd...)
	} else {
		dst = append(dst, '-')
	}
	if msg := m.Field(m.Msg); len(msg) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, msg...)
	}
	return dst
}

// appendHeaderField appends an RFC5424 header field: "-" when empty, at
// most max bytes, bytes outside PRINTUSASCII (33..126) replaced by '_'.
func appendHeaderField(dst, f []byte, max int) []byte {
	if len(f) == 0 {
		return append(dst, '-')
	}
	if len(f) > max {
		f = f[:max]
	}
	for _, c := range f {
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendJSON appends m as one JSON object; absent fields are omitted.
func appendJSON(dst []byte, m *message.Message) []byte {
	dst = append(dst, `{"received":"`...)
	dst = appendRFC3339NanoUTC(dst, m.Received)
	dst = append(dst, '"')
	if m.Frontend != "" {
		dst = append(dst, `,"frontend":`...)
		dst = jsonstr.AppendString(dst, m.Frontend)
	}
	if m.Port != 0 {
		dst = append(dst, `,"port":`...)
		dst = strconv.AppendUint(dst, uint64(m.Port), 10)
	}
	dst = append(dst, `,"transport":"`...)
	dst = append(dst, m.Transport.String()...)
	dst = append(dst, '"')
	if m.Peer.IsValid() {
		dst = append(dst, `,"peer":"`...)
		dst = m.Peer.AppendTo(dst)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"format":"`...)
	dst = append(dst, m.Format.String()...)
	dst = append(dst, '"')
	// A message without a valid PRI (forwarded raw by on_error) gets
	// user.notice, as rsyslog gives it, and the record says so.
	pri, assumed := int(m.Priority), false
	if pri < 0 || pri > 191 {
		pri, assumed = defaultPriority, true
	}
	dst = append(dst, `,"priority":`...)
	dst = strconv.AppendInt(dst, int64(pri), 10)
	dst = append(dst, `,"facility":`...)
	dst = strconv.AppendInt(dst, int64(pri/8), 10)
	dst = append(dst, `,"facility_name":"`...)
	dst = append(dst, facilityNames[pri/8]...)
	dst = append(dst, `","severity":`...)
	dst = strconv.AppendInt(dst, int64(pri%8), 10)
	dst = append(dst, `,"severity_name":"`...)
	dst = append(dst, severityNames[pri%8]...)
	dst = append(dst, '"')
	if assumed {
		dst = append(dst, `,"priority_assumed":true`...)
	}
	dst = appendJSONField(dst, `,"timestamp":`, m.Field(m.Timestamp))
	dst = appendJSONField(dst, `,"hostname":`, m.Field(m.Hostname))
	dst = appendJSONField(dst, `,"app_name":`, m.Field(m.AppName))
	dst = appendJSONField(dst, `,"procid":`, m.Field(m.ProcID))
	dst = appendJSONField(dst, `,"msgid":`, m.Field(m.MsgID))
	dst = appendJSONField(dst, `,"structured_data":`, m.Field(m.StructuredData))
	dst = appendJSONField(dst, `,"message":`, m.Field(m.Msg))
	if m.Format == message.FormatRaw {
		dst = append(dst, `,"raw":`...)
		dst = jsonstr.Append(dst, m.Raw)
	}
	return append(dst, '}')
}

func appendJSONField(dst []byte, key string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, key...)
	return jsonstr.Append(dst, v)
}

var facilityNames = [24]string{
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

var severityNames = [8]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// FacilityName returns the conventional name of facility code f (0..23),
// or "" when out of range.
func FacilityName(f int) string {
	if f < 0 || f >= len(facilityNames) {
		return ""
	}
	return facilityNames[f]
}

// SeverityName returns the conventional name of severity code s (0..7),
// or "" when out of range.
func SeverityName(s int) string {
	if s < 0 || s >= len(severityNames) {
		return ""
	}
	return severityNames[s]
}

// appendRFC3339NanoUTC appends the instant ns (Unix nanoseconds) as
// time.RFC3339Nano formats it in UTC ("2026-12-06T05:14:17.5Z": trailing
// zeros of the fraction dropped, no fraction for a whole second) without
// AppendFormat's layout interpretation. An int64 of nanoseconds spans the
// years 1677..2262, so the year always has four digits.
func appendRFC3339NanoUTC(dst []byte, ns int64) []byte {
	secs, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		secs, nsec = secs-1, nsec+1e9
	}
	days, sod := secs/86400, secs%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	// Days since 1970-01-01 to a civil date (proleptic Gregorian), after
	// Howard Hinnant's days_from_civil inverse: eras of 400 years from
	// 0000-03-01, so the leap day ends a year.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := uint32(z - era*146097) // day of the era, 0..146096
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	year := uint32(int64(yoe) + era*400)
	if month <= 2 {
		year++
	}
	// "YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ", filled in place and appended once.
	var b [30]byte
	put2(b[0:2], year/100)
	put2(b[2:4], year%100)
	b[4], b[7], b[10], b[13], b[16] = '-', '-', 'T', ':', ':'
	put2(b[5:7], month)
	put2(b[8:10], day)
	hms := uint32(sod)
	put2(b[11:13], hms/3600)
	put2(b[14:16], hms/60%60)
	put2(b[17:19], hms%60)
	n := 19
	if nsec != 0 {
		b[19] = '.'
		f := uint32(nsec)
		for i := 28; i > 19; i-- {
			b[i] = byte('0' + f%10)
			f /= 10
		}
		for n = 29; b[n-1] == '0'; n-- {
		}
	}
	b[n] = 'Z'
	return append(dst, b[:n+1]...)
}

// put2 writes v (0..99) as two digits.
func put2(b []byte, v uint32) { b[0], b[1] = byte('0'+v/10), byte('0'+v%10) }
