package parse

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"wharf/message"
)

var update = flag.Bool("update", false, "rewrite golden files")

// describe renders what Parse recorded, one field per "|"-separated slot:
// format|pri|version|timestamp|hostname|app|procid|msgid|sd|msg.
func describe(m *message.Message) string {
	return fmt.Sprintf("%v|%d|%d|%s|%s|%s|%s|%s|%s|%s", m.Format, m.Priority, m.Version,
		m.Field(m.Timestamp), m.Field(m.Hostname), m.Field(m.AppName), m.Field(m.ProcID),
		m.Field(m.MsgID), m.Field(m.StructuredData), m.Field(m.Msg))
}

func TestParse(t *testing.T) {
	f := func(format Format, in, want string) {
		t.Helper()
		m := &message.Message{Raw: []byte(in)}
		if err := Parse(m, format); err != nil {
			t.Fatalf("Parse(%q, %v): %v", in, format, err)
		}
		if got := describe(m); got != want {
			t.Errorf("Parse(%q, %v):\n got %s\nwant %s", in, format, got, want)
		}
	}
	// RFC5424, the RFC's own examples.
	f(RFC5424, `<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8`,
		`rfc5424|34|1|2003-10-11T22:14:15.003Z|mymachine.example.com|su||ID47||BOM'su root' failed for lonvick on /dev/pts/8`)
	f(Auto, "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed",
		`rfc5424|34|1|2003-10-11T22:14:15.003Z|mymachine.example.com|su||ID47||'su root' failed`)
	f(Auto, `<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.`,
		`rfc5424|165|1|2003-08-24T05:14:15.000003-07:00|192.0.2.1|myproc|8710|||%% It's time to make the do-nuts.`)
	f(Auto, `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`,
		`rfc5424|165|1|2003-10-11T22:14:15.003Z|mymachine.example.com|evntslog||ID47|[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]|An application event log entry...`)
	f(Auto, `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`,
		`rfc5424|165|1|2003-10-11T22:14:15.003Z|mymachine.example.com|evntslog||ID47|[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]|`)
	// All NILVALUEs, empty MSG, escapes, element without params, PRI 0 and 191, version 2.
	f(RFC5424, `<0>1 - - - - - -`, `rfc5424|0|1|||||||`)
	f(RFC5424, `<191>2 - - - - - - `, `rfc5424|191|2|||||||`)
	f(RFC5424, `<13>1 - h a p m [id k="a\"b\]c\\d" k2=""][id2] m`, `rfc5424|13|1||h|a|p|m|[id k="a\"b\]c\\d" k2=""][id2]|m`)
	f(RFC5424, "<13>1 - h a p m [id k=\"caf\xc3\xa9 \n\"] multi\nline\n", "rfc5424|13|1||h|a|p|m|[id k=\"caf\xc3\xa9 \n\"]|multi\nline\n")
	f(RFC5424, `<13>1 2024-02-29T23:59:59+14:00 h a p m - x`, `rfc5424|13|1|2024-02-29T23:59:59+14:00|h|a|p|m||x`)
	f(RFC5424, "<13>1 - "+strings.Repeat("h", 255)+" "+strings.Repeat("a", 48)+" "+strings.Repeat("p", 128)+" "+strings.Repeat("m", 32)+" - x",
		"rfc5424|13|1||"+strings.Repeat("h", 255)+"|"+strings.Repeat("a", 48)+"|"+strings.Repeat("p", 128)+"|"+strings.Repeat("m", 32)+"||x")

	// RFC3164 as sent by real senders.
	f(Auto, `<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8`,
		`rfc3164|34|0|Oct 11 22:14:15|mymachine|su||||'su root' failed for lonvick on /dev/pts/8`)
	f(Auto, `<13>Nov  5 09:04:00 host sshd[1234]: Accepted publickey`, `rfc3164|13|0|Nov  5 09:04:00|host|sshd|1234|||Accepted publickey`)
	f(Auto, `<13>Nov 5 09:04:00 sshd[1234]: no hostname`, `rfc3164|13|0|Nov 5 09:04:00||sshd|1234|||no hostname`)
	f(Auto, `<13>Nov 05 09:04:00 kernel: [ 1.23] usb`, `rfc3164|13|0|Nov 05 09:04:00||kernel||||[ 1.23] usb`)
	f(Auto, `<13>Nov 25 09:04:00 10.0.0.1 postfix/smtpd[77]: connect`, `rfc3164|13|0|Nov 25 09:04:00|10.0.0.1|postfix/smtpd|77|||connect`)
	f(Auto, `<13>Nov 25 09:04:00 fe80::1 app: v6`, `rfc3164|13|0|Nov 25 09:04:00|fe80::1|app||||v6`)
	f(Auto, `<13>Nov 25 09:04:00 host just a message`, `rfc3164|13|0|Nov 25 09:04:00|host|||||just a message`)
	f(Auto, `<13>Nov 25 09:04:00 host app[9] no colon`, `rfc3164|13|0|Nov 25 09:04:00|host|app|9|||no colon`)
	f(Auto, `<13>Nov 25 09:04:00 host app[9]:no space`, `rfc3164|13|0|Nov 25 09:04:00|host|app|9|||no space`)
	f(Auto, `<13>Nov 25 09:04:00 host key:value`, `rfc3164|13|0|Nov 25 09:04:00|host|||||key:value`)
	f(Auto, `<13>Nov 25 09:04:00.123456 host app: frac`, `rfc3164|13|0|Nov 25 09:04:00.123456|host|app||||frac`)
	f(Auto, `<13>Nov 25 2025 09:04:00 host app: year`, `rfc3164|13|0|Nov 25 2025 09:04:00|host|app||||year`)
	f(Auto, `<189>Nov 25 09:04:00: %SYS-5-CONFIG_I: Configured`, `rfc3164|189|0|Nov 25 09:04:00||%SYS-5-CONFIG_I||||Configured`)
	f(Auto, `<13>2003-10-11T22:14:15.003456789+02:00 host app: iso`, `rfc3164|13|0|2003-10-11T22:14:15.003456789+02:00|host|app||||iso`)
	f(Auto, `<13>2003-10-11T22:14:15 host app: iso no zone`, `rfc3164|13|0|2003-10-11T22:14:15|host|app||||iso no zone`)
	f(Auto, `<13>app: no timestamp`, `rfc3164|13|0|||app||||no timestamp`)
	f(Auto, `<13>just text: http://x`, `rfc3164|13|0|||||||just text: http://x`)
	f(Auto, `<013>Nov 25 09:04:00 host app: leading zero PRI`, `rfc3164|13|0|Nov 25 09:04:00|host|app||||leading zero PRI`)
	f(Auto, `<13>12 x`, `rfc3164|13|0|||||||12 x`)
	f(Auto, `<13>`, `rfc3164|13|0|||||||`)
	f(Auto, `<13>Nov 25 09:04:00`, `rfc3164|13|0|Nov 25 09:04:00||||||`)
	f(Auto, `<13>Nov 25 09:04:00 host app:`, `rfc3164|13|0|Nov 25 09:04:00|host|app||||`)
	f(RFC3164, `no PRI at all: fine in explicit rfc3164`, `rfc3164|-1|0|||||||no PRI at all: fine in explicit rfc3164`)
	// A PRI-less BSD line (a file forwarded as is, docs/migrating.md):
	// fields as rsyslog's pmrfc3164 finds them; the priority stays
	// unknown (encoders that need one write 13, as rsyslog does).
	f(RFC3164, `Dec  6 05:10:11 host2 sshd[99]: x`, `rfc3164|-1|0|Dec  6 05:10:11|host2|sshd|99|||x`)
	f(RFC3164, `Dec  6 05:10:11 host2 kernel: [ 1.2] usb`, `rfc3164|-1|0|Dec  6 05:10:11|host2|kernel||||[ 1.2] usb`)
	f(RFC3164, `<13>1 2003-10-11T22:14:15Z h a - - - forced 3164`, `rfc3164|13|0|||||||1 2003-10-11T22:14:15Z h a - - - forced 3164`)
	f(Raw, `<13>1 - - - - - - raw`, `raw|-1|0|||||||`)
}

func TestParseErrors(t *testing.T) {
	f := func(format Format, in, reason string, pri int16) {
		t.Helper()
		m := &message.Message{Raw: []byte(in)}
		m.Hostname = message.Span{Off: 1, Len: 1} // stale field must be cleared
		err := Parse(m, format)
		var pe Error
		if !errors.As(err, &pe) || pe.Reason() != reason {
			t.Fatalf("Parse(%q, %v) = %v, want reason %s", in, format, err, reason)
		}
		if got := describe(m); got != fmt.Sprintf("raw|%d|0|||||||", pri) {
			t.Fatalf("Parse(%q, %v) left %s", in, format, got)
		}
		if !strings.HasPrefix(err.Error(), "ingest/parse: ") {
			t.Fatalf("error %q lacks the component prefix", err)
		}
	}
	f(Auto, ``, "no_pri", -1)
	f(Auto, `hello`, "no_pri", -1)
	f(RFC5424, `hello`, "no_pri", -1)
	f(Auto, `<`, "truncated_header", -1)
	f(Auto, `<13`, "truncated_header", -1)
	f(Auto, `<>x`, "bad_pri", -1)
	f(Auto, `<192>x`, "bad_pri", -1)
	f(Auto, `<1234>x`, "bad_pri", -1)
	f(Auto, `<1a>x`, "bad_pri", -1)
	f(RFC5424, `<013>1 - - - - - -`, "bad_pri", -1)
	f(RFC5424, `<13>`, "truncated_header", 13)
	f(RFC5424, `<13>0 - - - - - -`, "bad_version", 13)
	f(RFC5424, `<13>1000 - - - - - -`, "bad_version", 13)
	f(RFC5424, `<13>256 - - - - - -`, "bad_version", 13)
	f(RFC5424, `<13>1- - - - - -`, "bad_version", 13)
	f(Auto, `<13>1 2003-10-11 22:14:15Z h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 2003-10-11t22:14:15z h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 2003-02-29T22:14:15Z h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 2003-10-11T24:14:15Z h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 2003-10-11T22:14:15.1234567Z h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 2003-10-11T22:14:15 h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 2003-10-11T22:14:15+0200 h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 -- h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 Oct 11 22:14:15 h a p m -`, "bad_timestamp", 13)
	f(Auto, `<13>1 - `+strings.Repeat("h", 256)+` a p m -`, "bad_hostname", 13)
	f(Auto, "<13>1 - h\x00st a p m -", "bad_hostname", 13)
	f(Auto, `<13>1 -  h a p m -`, "bad_hostname", 13)
	f(Auto, `<13>1 - h `+strings.Repeat("a", 49)+` p m -`, "bad_app_name", 13)
	f(Auto, `<13>1 - h a `+strings.Repeat("p", 129)+` m -`, "bad_procid", 13)
	f(Auto, `<13>1 - h a p `+strings.Repeat("m", 33)+` -`, "bad_msgid", 13)
	f(Auto, "<13>1 - h a p m\xff -", "bad_msgid", 13)
	f(Auto, `<13>1 - h a p m`, "truncated_header", 13)
	f(Auto, `<13>1 - h a p m `, "truncated_header", 13)
	f(Auto, `<13>1 - h a`, "truncated_header", 13)
	f(Auto, `<13>1 -`, "truncated_header", 13)
	f(Auto, `<13>1 - h a p m x`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m -x`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="v"`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="v]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="v"]x`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id ]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m []`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k=v]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="a]b"]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="a\nb"]`, "bad_structured_data", 13)
	f(Auto, "<13>1 - h a p m [id k=\"\xff\"]", "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="1"][id k="2"]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [`+strings.Repeat("i", 33)+`]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id `+strings.Repeat("k", 33)+`="v"]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [i=d]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="v" ]`, "bad_structured_data", 13)
	f(Auto, `<13>1 - h a p m [id k="v"][id2`, "bad_structured_data", 13)
}

func TestParseFormat(t *testing.T) {
	f := func(s string, want Format, ok bool) {
		t.Helper()
		got, err := ParseFormat(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseFormat(%q) = %v, %v", s, got, err)
		}
		if ok && s != "" && got.String() != s {
			t.Fatalf("%v.String() = %q", got, got.String())
		}
	}
	f("auto", Auto, true)
	f("", Auto, true)
	f("rfc5424", RFC5424, true)
	f("rfc3164", RFC3164, true)
	f("raw", Raw, true)
	f("RFC5424", Auto, false)
	f("json", Auto, false)
}

func TestParseTimestamp(t *testing.T) {
	recv := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	f := func(format Format, in string, want string) {
		t.Helper()
		m := &message.Message{Raw: []byte(in), Received: recv}
		if err := Parse(m, format); err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		ts, ok := message.ParseTimestampIn(m, time.UTC)
		got := "none"
		if ok {
			got = ts.Format(time.RFC3339Nano)
		}
		if got != want {
			t.Fatalf("message.ParseTimestamp(%q) = %s, want %s", in, got, want)
		}
	}
	f(Auto, `<13>1 2003-10-11T22:14:15.003Z h a p m -`, "2003-10-11T22:14:15.003Z")
	f(Auto, `<13>1 2003-08-24T05:14:15.000003-07:00 h a p m -`, "2003-08-24T05:14:15.000003-07:00")
	f(Auto, `<13>1 2024-02-29T00:00:00+05:30 h a p m -`, "2024-02-29T00:00:00+05:30")
	f(Auto, `<13>1 - h a p m -`, "none")
	// BSD: the latest year that puts the time at most 31 days after the
	// receive time (2026-01-02).
	f(Auto, `<13>Dec 31 23:59:59 h a: x`, "2025-12-31T23:59:59Z")
	f(Auto, `<13>Jan  2 03:00:00 h a: x`, "2026-01-02T03:00:00Z")
	f(Auto, `<13>Feb  1 03:00:00.5 h a: x`, "2026-02-01T03:00:00.5Z") // 30 days ahead: a fast clock
	f(Auto, `<13>Feb 10 03:00:00 h a: x`, "2025-02-10T03:00:00Z")     // 39 days ahead: last year's
	f(Auto, `<13>Jul  1 00:00:00 h a: x`, "2025-07-01T00:00:00Z")     // the nearest year would say so too
	f(Auto, `<13>Nov 25 2019 09:04:00 h a: x`, "2019-11-25T09:04:00Z")
	f(Auto, `<13>2003-10-11T22:14:15.123456789+02:00 h a: x`, "2003-10-11T22:14:15.123456789+02:00")
	f(Auto, `<13>2003-10-11T22:14:15 h a: x`, "2003-10-11T22:14:15Z")
	f(Auto, `<13>a: x`, "none")
	f(Raw, `<13>Dec 31 23:59:59 h a: x`, "none")

	// The default zone for BSD timestamps is the local one.
	m := &message.Message{Raw: []byte(`<13>Jan  2 03:00:00 h a: x`), Received: recv}
	if err := Parse(m, Auto); err != nil {
		t.Fatal(err)
	}
	if ts, ok := message.ParseTimestamp(m); !ok || ts.Location() != time.Local || ts.Hour() != 3 {
		t.Fatalf("ParseTimestamp = %v, %v; want 03:00 local", ts, ok)
	}
}

func TestEachSDParam(t *testing.T) {
	f := func(sd string, want string, wantErr bool) {
		t.Helper()
		var got []string
		err := EachSDParam([]byte(sd), func(id, name, value []byte) bool {
			if name == nil {
				got = append(got, string(id))
			} else {
				got = append(got, fmt.Sprintf("%s.%s=%s", id, name, UnescapeSDValue(nil, value)))
			}
			return true
		})
		if (err != nil) != wantErr || strings.Join(got, ",") != want {
			t.Fatalf("EachSDParam(%q) = %q, %v", sd, got, err)
		}
	}
	f(``, ``, false)
	f(`-`, ``, false)
	f(`[exampleSDID@32473 iut="3" eventSource="Application"][examplePriority@32473 class="high"]`,
		`exampleSDID@32473.iut=3,exampleSDID@32473.eventSource=Application,examplePriority@32473.class=high`, false)
	f(`[a][b k=""]`, `a,b.k=`, false)
	f(`[a k="q\"b\]c\\d"]`, `a.k=q"b]c\d`, false)
	f(`[a k="v"]x`, `a.k=v`, true)
	f(`[a k="v"`, `a.k=v`, true)
	f(`[a k=v]`, ``, true)

	// fn returning false stops the walk.
	n := 0
	_ = EachSDParam([]byte(`[a x="1" y="2"][b]`), func(id, name, value []byte) bool { n++; return false })
	if n != 1 {
		t.Fatalf("walk did not stop: %d calls", n)
	}
}

func TestUnescapeSDValue(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(UnescapeSDValue([]byte("pre:"), []byte(in))); got != "pre:"+want {
			t.Fatalf("UnescapeSDValue(%q) = %q, want %q", in, got, "pre:"+want)
		}
	}
	f(``, ``)
	f(`plain`, `plain`)
	f(`a\"b\]c\\d`, `a"b]c\d`)
	f(`\\\"`, `\"`)
	f(`a\nb`, `a\nb`)
	f(`end\`, `end\`)
}

// TestLoggerSamples parses real util-linux logger output (testdata/logger.txt,
// made with `logger --stderr --no-act ...`) and compares with the golden file.
func TestLoggerSamples(t *testing.T) {
	in, err := os.ReadFile("testdata/logger.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(in), "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := &message.Message{Raw: []byte(line)}
		err := Parse(m, Auto)
		fmt.Fprintf(&out, "%s\n=> %s", line, describe(m))
		if err != nil {
			fmt.Fprintf(&out, " err=%s", err.(Error).Reason())
		}
		out.WriteString("\n")
	}
	const golden = "testdata/logger.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("logger samples differ from %s (run with -update and review the diff):\n%s", golden, out.String())
	}
}

// TestPrintRunAsBytewise: printRun finds the same first non-PRINTUSASCII
// byte as a byte-by-byte scan, for every byte value at every position of
// a run (so every lane of the 8-byte words, and the tail), from every
// start offset.
func TestPrintRunAsBytewise(t *testing.T) {
	slow := func(b []byte, p int) int {
		for p < len(b) && isPrint(b[p]) {
			p++
		}
		return p
	}
	base := []byte("abcdefghijklmnopqrstuvwxyz0123456789")
	for pos := range base {
		for c := 0; c < 256; c++ {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			for start := 0; start <= pos; start++ {
				if got, want := printRun(b, start), slow(b, start); got != want {
					t.Fatalf("byte %#x at %d, from %d: printRun = %d, want %d", c, pos, start, got, want)
				}
			}
		}
	}
	// Two bad bytes: the first one counts, whatever follows it.
	for _, pair := range [][2]byte{{0x20, 0xff}, {0xff, 0x00}, {0x7f, 0x20}, {0x00, 0x7f}} {
		b := append([]byte(nil), base...)
		b[3], b[4] = pair[0], pair[1]
		if got := printRun(b, 0); got != 3 {
			t.Errorf("bad bytes %#x %#x at 3, 4: printRun = %d, want 3", pair[0], pair[1], got)
		}
	}
}

// TestParsePRIFastPath compares parsePRI's unrolled forms with scanPRI,
// the byte-at-a-time reading, on every string of up to six bytes over an
// alphabet of digits, brackets and others, in both modes.
func TestParsePRIFastPath(t *testing.T) {
	alphabet := []byte("<>0129 a")
	var b []byte
	var walk func(n int)
	checked := 0
	walk = func(n int) {
		for _, lenient := range []bool{false, true} {
			p1, n1, e1 := parsePRI(b, lenient)
			p2, n2, e2 := scanPRI(b, lenient)
			if p1 != p2 || n1 != n2 || e1 != e2 {
				t.Fatalf("%q lenient=%v: parsePRI = %d, %d, %v; scanPRI = %d, %d, %v", b, lenient, p1, n1, e1, p2, n2, e2)
			}
			checked++
		}
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			b = append(b, c)
			walk(n - 1)
			b = b[:len(b)-1]
		}
	}
	for _, first := range []byte("<x") {
		b = append(b[:0], first)
		walk(5)
	}
	// Values at the bounds, each with a byte after the '>'.
	for v := 0; v <= 999; v++ {
		for _, s := range []string{fmt.Sprintf("<%d>x", v), fmt.Sprintf("<%03d>x", v), fmt.Sprintf("<%02d>x", v)} {
			for _, lenient := range []bool{false, true} {
				p1, n1, e1 := parsePRI([]byte(s), lenient)
				p2, n2, e2 := scanPRI([]byte(s), lenient)
				if p1 != p2 || n1 != n2 || e1 != e2 {
					t.Fatalf("%q lenient=%v: parsePRI = %d, %d, %v; scanPRI = %d, %d, %v", s, lenient, p1, n1, e1, p2, n2, e2)
				}
			}
		}
	}
	if checked < 100000 {
		t.Fatalf("only %d inputs checked", checked)
	}
}

// headerField is the field-at-a-time reading that headerFields replaced,
// the reference for TestHeaderFieldsAsFourCalls: a PRINTUSASCII field of
// 1..max bytes at b[p:] and the SP after it; "-" gives a zero Span.
func headerField(b []byte, p, max int, bad Error) (message.Span, int, Error) {
	start := p
	p = printRun(b, p)
	n := p - start
	if n == 0 && p == len(b) {
		return message.Span{}, 0, ErrTruncatedHeader
	}
	if n == 0 || n > max {
		return message.Span{}, 0, bad
	}
	if p == len(b) {
		return message.Span{}, 0, ErrTruncatedHeader
	}
	if b[p] != ' ' {
		return message.Span{}, 0, bad
	}
	if n == 1 && b[start] == '-' {
		return message.Span{}, p + 1, 0
	}
	return span(start, n), p + 1, 0
}

// TestHeaderFieldsAsFourCalls compares headerFields with the four
// headerField calls it replaced, on random headers built from fields at
// and past their limits, bad bytes and missing spaces, cut at every
// length.
func TestHeaderFieldsAsFourCalls(t *testing.T) {
	pieces := []string{"-", "a", "web-07", "nginx", "4242", "ACCESS", "", "--", "a\x00b", "\xc3\xa9", "\x7f",
		strings.Repeat("m", 32), strings.Repeat("m", 33), strings.Repeat("a", 48), strings.Repeat("a", 49),
		strings.Repeat("p", 128), strings.Repeat("p", 129), strings.Repeat("h", 255), strings.Repeat("h", 256)}
	seps := []string{" ", " ", " ", "  ", "\t", ""}
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for range 20000 {
		b = b[:0]
		for range 5 {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
			b = append(b, seps[rng.IntN(len(seps))]...)
		}
		b = append(b, "tail of the message"[:rng.IntN(19)]...)
		for cut := 0; cut <= len(b); cut++ {
			in := b[:cut]
			var got [4]message.Span
			gp, gerr := headerFields(in, 0, &got)
			var want [4]message.Span
			wp, werr := 0, Error(0)
			for i := range want {
				if want[i], wp, werr = headerField(in, wp, fieldMax[i], fieldErr[i]); werr != 0 {
					wp = 0
					break
				}
			}
			if gerr != werr || (werr == 0 && (gp != wp || got != want)) {
				t.Fatalf("%q: headerFields = %d, %v, %v; four calls = %d, %v, %v", in, gp, got, gerr, wp, want, werr)
			}
		}
	}
}
