package sinks_test

import (
	"net/netip"
	"testing"
	"time"

	"wharf/ingest/parse"
	"wharf/message"
	"wharf/sinks"
)

// TestEncodeRFC3164 parses each input as a listener does, encodes it as
// rfc3164 with wharf's local zone set to UTC+1, and checks the line; the
// output must parse back as RFC3164 with the same PRI, host, tag and MSG.
func TestEncodeRFC3164(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("CET", 3600)
	defer func() { time.Local = saved }()
	received := time.Date(2026, 11, 25, 19, 10, 0, 0, time.UTC).UnixNano()
	f := func(in, want string) {
		t.Helper()
		m := message.New([]byte(in))
		defer m.Release()
		m.Received = received
		m.Peer = netip.MustParseAddrPort("192.0.2.7:40000")
		_ = parse.Parse(m, parse.Auto) // malformed: forwarded raw
		got := sinks.EncodingRFC3164.Append(nil, m)
		if string(got) != want {
			t.Fatalf("rfc3164 of %q\n got: %s\nwant: %s", in, got, want)
		}
		back := message.New(got)
		defer back.Release()
		if err := parse.Parse(back, parse.RFC3164); err != nil {
			t.Fatalf("%q does not parse as RFC3164: %v", got, err)
		}
		if m.Format != message.FormatRaw && string(back.Field(back.Msg)) != string(m.Field(m.Msg)) {
			t.Errorf("MSG %q came back as %q", m.Field(m.Msg), back.Field(back.Msg))
		}
	}
	// RFC3164 in: the sender's BSD timestamp and header kept as sent.
	f(`<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8`,
		`<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8`)
	f(`<13>Nov  5 09:01:02 host sshd: Accepted`, `<13>Nov  5 09:01:02 host sshd: Accepted`)
	// RFC5424 in: the time in the local zone, MSGID and SD left out.
	f(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3"] An application event`,
		`<165>Oct 11 23:14:15 mymachine.example.com evntslog[42]: An application event`)
	f(`<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc - - - %% It's time`,
		`<165>Aug 24 13:14:15 192.0.2.1 myproc: %% It's time`)
	// No timestamp: the receive time; a tag over 32 bytes is cut.
	f(`<14>1 - h aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd - - - m`,
		`<14>Nov 25 20:10:00 h aaaaaaaaaabbbbbbbbbbccccccccccdd: m`)
	// No PRI (forwarded raw): user.notice, the peer as host, the line as sent.
	f(`%ASA-4-106023: Deny tcp src outside:192.0.2.9`,
		`<13>Nov 25 20:10:00 192.0.2.7 %ASA-4-106023: Deny tcp src outside:192.0.2.9`)
}

// TestEncodeTraditional: the "traditional" encoding is the rfc3164 line
// without "<PRI>", what rsyslog's RSYSLOG_TraditionalFileFormat writes to
// /var/log files (checked against rsyslog 8.2302 with logger --rfc3164:
// "Dec  6 05:18:52 vm myapp[4242]: hello").
func TestEncodeTraditional(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("CET", 3600)
	defer func() { time.Local = saved }()
	for _, tc := range []struct{ in, want string }{
		{`<13>Dec  6 05:18:52 vm myapp[4242]: hello`, `Dec  6 05:18:52 vm myapp[4242]: hello`},
		{`<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 42 ID47 [a@1 b="c"] An event`, `Oct 11 23:14:15 mymachine evntslog[42]: An event`},
		{`no pri at all`, `Nov 25 20:10:00 192.0.2.7 no pri at all`},
		// The whole tag, as rsyslog's file format (rfc3164 cuts it at 32).
		{`<110>Dec  6 05:10:11 win01 Microsoft-Windows-Security-Auditing[784]: An account was logged on`, `Dec  6 05:10:11 win01 Microsoft-Windows-Security-Auditing[784]: An account was logged on`},
	} {
		m := message.New([]byte(tc.in))
		m.Received = time.Date(2026, 11, 25, 19, 10, 0, 0, time.UTC).UnixNano()
		m.Peer = netip.MustParseAddrPort("192.0.2.7:40000")
		_ = parse.Parse(m, parse.Auto)
		if got := sinks.EncodingTraditional.Append(nil, m); string(got) != tc.want {
			t.Errorf("traditional of %q\n got: %s\nwant: %s", tc.in, got, tc.want)
		}
		if e, err := sinks.ParseEncoding("traditional"); err != nil || e.String() != "traditional" {
			t.Errorf("ParseEncoding(traditional) = %v, %v", e, err)
		}
		m.Release()
	}
}

// TestEncodeTraditionalRFC3339: the "traditional-rfc3339" encoding is
// rsyslog's RSYSLOG_FileFormat (its built-in default for files): the
// traditional line with an RFC 3339 timestamp written as the sender sent
// it, zone and fraction (up to 6 digits) included. The e2e test
// TestTraditionalRFC3339FileLikeRsyslog compares it with rsyslog's.
func TestEncodeTraditionalRFC3339(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("CET", 3600)
	defer func() { time.Local = saved }()
	for _, tc := range []struct{ in, want string }{
		// BSD: read in the local zone, the year inferred, no fraction.
		{`<13>Nov 25 05:18:52 vm myapp[4242]: hello`, `2026-11-25T05:18:52+01:00 vm myapp[4242]: hello`},
		// RFC 3339: as sent, "Z" too; a fraction cut to 6 digits.
		{`<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 42 ID47 [a@1 b="c"] An event`, `2003-10-11T22:14:15.003Z mymachine evntslog[42]: An event`},
		{`<165>1 2003-08-24T05:14:15.000003-07:00 h p - - - x`, `2003-08-24T05:14:15.000003-07:00 h p: x`},
		{`<13>2003-08-24T05:14:15.123456789+02:00 h p: nanos`, `2003-08-24T05:14:15.123456+02:00 h p: nanos`},
		// No offset (an ISO 8601 BSD timestamp): wharf's local one.
		{`<13>2003-08-24T05:14:15 h p: local`, `2003-08-24T05:14:15+01:00 h p: local`},
		// No timestamp, or not parsed: the receive time in microseconds.
		{`<14>1 - h app - - - m`, `2026-11-25T20:10:00.000000+01:00 h app: m`},
		{`no pri at all`, `2026-11-25T20:10:00.000000+01:00 192.0.2.7 no pri at all`},
	} {
		m := message.New([]byte(tc.in))
		m.Received = time.Date(2026, 11, 25, 19, 10, 0, 0, time.UTC).UnixNano()
		m.Peer = netip.MustParseAddrPort("192.0.2.7:40000")
		_ = parse.Parse(m, parse.Auto)
		if got := sinks.EncodingTraditionalRFC3339.Append(nil, m); string(got) != tc.want {
			t.Errorf("traditional-rfc3339 of %q\n got: %s\nwant: %s", tc.in, got, tc.want)
		}
		m.Release()
	}
	if e, err := sinks.ParseEncoding("traditional-rfc3339"); err != nil || e != sinks.EncodingTraditionalRFC3339 || e.String() != "traditional-rfc3339" {
		t.Errorf("ParseEncoding(traditional-rfc3339) = %v, %v", e, err)
	}
}
