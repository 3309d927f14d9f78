package sinks_test

// Encoders fed by the real parser (ingest/parse), in an external test
// package so sinks itself does not depend on ingest.

import (
	"encoding/json"
	"testing"
	"time"

	"wharf/ingest/parse"
	"wharf/message"
	"wharf/sinks"
)

func TestEncodeParsedMessages(t *testing.T) {
	f := func(raw string) {
		t.Helper()
		m := message.New([]byte(raw))
		defer m.Release()
		if err := parse.Parse(m, parse.Auto); err != nil {
			t.Fatalf("parse %q: %v", raw, err)
		}

		// rfc5424: an RFC5424 input comes out unchanged; any output parses
		// strictly as RFC5424 with the same fields.
		out := sinks.EncodingRFC5424.Append(nil, m)
		if m.Format == message.FormatRFC5424 && string(out) != raw {
			t.Errorf("rfc5424 re-encoding changed %q to %q", raw, out)
		}
		m2 := message.New(out)
		defer m2.Release()
		if err := parse.Parse(m2, parse.RFC5424); err != nil {
			t.Fatalf("re-encoded %q does not parse as RFC5424: %v", out, err)
		}
		for _, p := range []struct {
			name string
			a, b message.Span
		}{{"hostname", m.Hostname, m2.Hostname}, {"app_name", m.AppName, m2.AppName}, {"procid", m.ProcID, m2.ProcID}, {"msg", m.Msg, m2.Msg}} {
			if string(m.Field(p.a)) != string(m2.Field(p.b)) {
				t.Errorf("%q -> %q: %s %q became %q", raw, out, p.name, m.Field(p.a), m2.Field(p.b))
			}
		}
		if m2.Priority != m.Priority {
			t.Errorf("priority %d became %d", m.Priority, m2.Priority)
		}

		// json: valid, fields as parsed.
		js := sinks.EncodingJSON.Append(nil, m)
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil {
			t.Fatalf("json %s: %v", js, err)
		}
		if obj["hostname"] != string(m.Field(m.Hostname)) || obj["message"] != string(m.Field(m.Msg)) ||
			obj["format"] != m.Format.String() || obj["priority"] != float64(m.Priority) || obj["priority_assumed"] != nil {
			t.Errorf("json %s does not match the parsed fields", js)
		}
	}
	f(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`)
	f(`<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.`)
	f(`<13>1 2026-11-25T19:10:00Z host app - - - Grüße`)
	f(`<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8`)
	f(`<13>Nov 25 19:10:00 web-1 nginx[1234]: GET / 200`)
	f(`<86>Nov  5 09:01:02 host sshd[77]: Accepted publickey for root`)
}

// TestRFC5424KeepsRFC3164Timestamp: a BSD timestamp survives re-encoding
// (year inferred from the receive time, zone local) instead of becoming the
// receive time.
func TestRFC5424KeepsRFC3164Timestamp(t *testing.T) {
	m := message.New([]byte("<13>Nov 24 10:00:00 fw1 kernel: drop"))
	defer m.Release()
	m.Received = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano()
	if err := parse.Parse(m, parse.RFC3164); err != nil {
		t.Fatal(err)
	}
	got := string(sinks.EncodingRFC5424.Append(nil, m))
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.Local).Format(time.RFC3339)
	if want := "<13>1 " + ts + " fw1 kernel - - - drop"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}
