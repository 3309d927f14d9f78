package sinks

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"wharf/message"
)

var testReceived = time.Date(2026, 11, 25, 19, 10, 0, 123456789, time.UTC).UnixNano()

// span locates the first occurrence of sub in raw; "" gives an absent field.
func span(t testing.TB, raw, sub string) message.Span {
	t.Helper()
	if sub == "" {
		return message.Span{}
	}
	i := strings.Index(raw, sub)
	if i < 0 {
		t.Fatalf("%q not in %q", sub, raw)
	}
	return message.Span{Off: uint32(i), Len: uint32(len(sub))}
}

// fields are the header fields of a hand-built message, as substrings of raw.
type fields struct {
	pri                                   int16
	format                                message.Format
	ts, host, app, procid, msgid, sd, msg string
}

func testMessage(t testing.TB, raw string, f fields) *message.Message {
	t.Helper()
	return &message.Message{
		Raw:            []byte(raw),
		Received:       testReceived,
		Frontend:       "edge",
		Port:           514,
		Transport:      message.TransportTCP,
		Peer:           netip.MustParseAddrPort("192.0.2.7:40000"),
		Format:         f.format,
		Priority:       f.pri,
		Timestamp:      span(t, raw, f.ts),
		Hostname:       span(t, raw, f.host),
		AppName:        span(t, raw, f.app),
		ProcID:         span(t, raw, f.procid),
		MsgID:          span(t, raw, f.msgid),
		StructuredData: span(t, raw, f.sd),
		Msg:            span(t, raw, f.msg),
	}
}

const (
	raw5424 = `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3"] An application event`
	raw3164 = `<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8`
)

var (
	fields5424 = fields{pri: 165, format: message.FormatRFC5424, ts: "2003-10-11T22:14:15.003Z", host: "mymachine.example.com",
		app: "evntslog", procid: "42", msgid: "ID47", sd: `[exampleSDID@32473 iut="3"]`, msg: "An application event"}
	fields3164 = fields{pri: 34, format: message.FormatRFC3164, ts: "Oct 11 22:14:15", host: "mymachine",
		app: "su", procid: "230", msg: "'su root' failed for lonvick on /dev/pts/8"}
)

func TestParseEncoding(t *testing.T) {
	f := func(in string, want Encoding, wantErr bool) {
		t.Helper()
		got, err := ParseEncoding(in)
		if (err != nil) != wantErr {
			t.Fatalf("ParseEncoding(%q) error = %v, want error %v", in, err, wantErr)
		}
		if err == nil && (got != want || got.String() != in) {
			t.Fatalf("ParseEncoding(%q) = %v, want %v", in, got, want)
		}
	}
	f("raw", EncodingRaw, false)
	f("rfc5424", EncodingRFC5424, false)
	f("json", EncodingJSON, false)
	f("", 0, true)
	f("JSON", 0, true)
	f("rfc3164", EncodingRFC3164, false)
	f("rfc3339", 0, true)
}

func TestEncodeRaw(t *testing.T) {
	m := testMessage(t, raw5424, fields5424)
	if got := EncodingRaw.Append([]byte("x"), m); string(got) != "x"+raw5424 {
		t.Fatalf("raw = %q", got)
	}
}

func TestEncodeRFC5424(t *testing.T) {
	f := func(raw string, fl fields, want string) {
		t.Helper()
		m := testMessage(t, raw, fl)
		if got := string(EncodingRFC5424.Append(nil, m)); got != want {
			t.Fatalf("rfc5424 of %q\n got: %q\nwant: %q", raw, got, want)
		}
	}
	// RFC5424 in, same out.
	f(raw5424, fields5424, raw5424)
	// NILVALUEs stay "-"; no MSG, no trailing space.
	f(`<14>1 - - - - - -`, fields{pri: 14, format: message.FormatRFC5424}, `<14>1 - - - - - -`)
	// RFC3164: the sender's time (year of the receive time, local zone),
	// tag as APP-NAME, pid as PROCID.
	oct11 := time.Date(2026, 10, 11, 22, 14, 15, 0, time.Local).Format(time.RFC3339)
	f(raw3164, fields3164,
		`<34>1 `+oct11+` mymachine su 230 - - 'su root' failed for lonvick on /dev/pts/8`)
	// RFC3164 without timestamp: receive time (µs, UTC).
	f(`<13>app: hi`, fields{pri: 13, format: message.FormatRFC3164, app: "app", msg: "hi"},
		`<13>1 2026-11-25T19:10:00.123456Z 192.0.2.7 app - - - hi`)
	// RFC3164 without hostname: peer IP.
	f(`<13>Oct 11 22:14:15 app: hi`, fields{pri: 13, format: message.FormatRFC3164, ts: "Oct 11 22:14:15", app: "app", msg: "hi"},
		`<13>1 `+oct11+` 192.0.2.7 app - - - hi`)
	// Raw: PRI 13 unless known, the whole Raw as MSG.
	f("garbage \x00 line", fields{pri: -1, format: message.FormatRaw}, "<13>1 2026-11-25T19:10:00.123456Z 192.0.2.7 - - - - garbage \x00 line")
	f("<191>whatever", fields{pri: 191, format: message.FormatRaw}, "<191>1 2026-11-25T19:10:00.123456Z 192.0.2.7 - - - - <191>whatever")
	// Truncation to RFC5424 limits and non-printable bytes in header fields.
	long := strings.Repeat("a", 60)
	f(`<13>Oct 11 22:14:15 h\x01st `+long+`: x`, fields{pri: 13, format: message.FormatRFC3164, ts: "Oct 11 22:14:15", host: "h\\x01st", app: long, msg: "x"},
		`<13>1 `+oct11+` h\x01st `+long[:48]+` - - - x`)
	f("<13>Oct 11 22:14:15 h\x01st x", fields{pri: 13, format: message.FormatRFC3164, ts: "Oct 11 22:14:15", host: "h\x01st", msg: "x"},
		`<13>1 `+oct11+` h_st - - - - x`)
	msgid := strings.Repeat("M", 40)
	f(`<13>1 - h a p `+msgid+` - m`, fields{pri: 13, format: message.FormatRFC5424, host: "h", app: "a", procid: "p", msgid: msgid, msg: "m"},
		`<13>1 - h a p `+msgid[:32]+` - m`)
}

func TestEncodeJSON(t *testing.T) {
	f := func(raw string, fl fields, want string) {
		t.Helper()
		m := testMessage(t, raw, fl)
		got := EncodingJSON.Append(nil, m)
		if string(got) != want {
			t.Fatalf("json of %q\n got: %s\nwant: %s", raw, got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("invalid JSON: %s", got)
		}
	}
	f(raw5424, fields5424, `{"received":"2026-11-25T19:10:00.123456789Z","frontend":"edge","port":514,"transport":"tcp","peer":"192.0.2.7:40000","format":"rfc5424",`+
		`"priority":165,"facility":20,"facility_name":"local4","severity":5,"severity_name":"notice","timestamp":"2003-10-11T22:14:15.003Z",`+
		`"hostname":"mymachine.example.com","app_name":"evntslog","procid":"42","msgid":"ID47","structured_data":"[exampleSDID@32473 iut=\"3\"]","message":"An application event"}`)
	f(raw3164, fields3164, `{"received":"2026-11-25T19:10:00.123456789Z","frontend":"edge","port":514,"transport":"tcp","peer":"192.0.2.7:40000","format":"rfc3164",`+
		`"priority":34,"facility":4,"facility_name":"auth","severity":2,"severity_name":"crit","timestamp":"Oct 11 22:14:15",`+
		`"hostname":"mymachine","app_name":"su","procid":"230","message":"'su root' failed for lonvick on /dev/pts/8"}`)
	f("bad\xff\"\\\n\t\x01\u2028é", fields{pri: -1, format: message.FormatRaw},
		`{"received":"2026-11-25T19:10:00.123456789Z","frontend":"edge","port":514,"transport":"tcp","peer":"192.0.2.7:40000","format":"raw",`+
			`"priority":13,"facility":1,"facility_name":"user","severity":5,"severity_name":"notice","priority_assumed":true,`+
			`"raw":"bad\ufffd\"\\\n\t\u0001\u2028é"}`)
	// A line without <PRI> forwarded raw (on_error = "forward_raw", the
	// default) is user.notice, as rsyslog makes it, and says it was assumed.
	f("an old device without PRI", fields{pri: -1, format: message.FormatRaw},
		`{"received":"2026-11-25T19:10:00.123456789Z","frontend":"edge","port":514,"transport":"tcp","peer":"192.0.2.7:40000","format":"raw",`+
			`"priority":13,"facility":1,"facility_name":"user","severity":5,"severity_name":"notice","priority_assumed":true,`+
			`"raw":"an old device without PRI"}`)
}

// TestEncodeJSONRoundTrip checks that tricky bytes decode back to what
// encoding/json makes of the same bytes (invalid UTF-8 -> U+FFFD per byte).
func TestEncodeJSONRoundTrip(t *testing.T) {
	f := func(raw string) {
		t.Helper()
		m := &message.Message{Raw: []byte(raw), Priority: -1, Format: message.FormatRaw, Frontend: "f\"e"}
		got := EncodingJSON.Append(nil, m)
		var obj map[string]any
		if err := json.Unmarshal(got, &obj); err != nil {
			t.Fatalf("%q: %v in %s", raw, err, got)
		}
		ref, _ := json.Marshal(raw)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if obj["raw"] != want || obj["frontend"] != "f\"e" {
			t.Fatalf("%q: round trip gave %q, want %q", raw, obj["raw"], want)
		}
	}
	f("")
	f("plain")
	f("\x00\x1f\x7f\x80\xbf\xc0\xc1\xf5\xff")
	f("\xe2\x82")     // truncated 3-byte sequence
	f("\xed\xa0\x80") // UTF-16 surrogate encoded in UTF-8
	f("日本語 \u2028 \u2029 \U0001F600")
	f(`"quoted" \back\slash </script>`)
	f(strings.Repeat("\xff", 100))
}

func TestEncodeAppendsWithoutAllocating(t *testing.T) {
	m := testMessage(t, raw5424, fields5424)
	for _, e := range []Encoding{EncodingRaw, EncodingRFC5424, EncodingRFC3164, EncodingTraditional, EncodingTraditionalRFC3339, EncodingJSON} {
		dst := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() { dst = e.Append(dst[:0], m) })
		if allocs != 0 {
			t.Errorf("%v: %v allocs per Append, want 0", e, allocs)
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add([]byte(raw5424), uint16(8), uint16(30), int16(165), uint8(1))
	f.Add([]byte(raw3164), uint16(4), uint16(10), int16(-1), uint8(0))
	f.Add([]byte("\xff\x00\"\\"), uint16(1), uint16(2), int16(3), uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, a, b uint16, pri int16, format uint8) {
		// Split the input in two at a: the first part is the header, the
		// second the MSG; spans are always in bounds.
		n := len(raw)
		cut := 0
		if n > 0 {
			cut = int(a) % (n + 1)
		}
		hl := 0
		if cut > 0 {
			hl = int(b) % (cut + 1)
		}
		m := &message.Message{Raw: raw, Priority: pri, Format: message.Format(format % 3), Received: int64(a) * 1e9}
		m.Hostname = message.Span{Off: 0, Len: uint32(hl)}
		m.AppName = message.Span{Off: uint32(hl), Len: uint32(cut - hl)}
		m.Timestamp = message.Span{Off: 0, Len: uint32(cut)}
		m.StructuredData = m.AppName
		m.Msg = message.Span{Off: uint32(cut), Len: uint32(n - cut)}

		prefix := []byte("prefix")
		js := EncodingJSON.Append(prefix, m)
		if !bytes.HasPrefix(js, []byte("prefix")) || !json.Valid(js[len(prefix):]) {
			t.Fatalf("invalid JSON: %q", js)
		}
		var obj map[string]any
		if err := json.Unmarshal(js[len(prefix):], &obj); err != nil {
			t.Fatal(err)
		}
		if m.Format == message.FormatRaw {
			ref, _ := json.Marshal(string(raw))
			var want string
			_ = json.Unmarshal(ref, &want)
			if obj["raw"] != want {
				t.Fatalf("raw %q decoded as %q, want %q", raw, obj["raw"], want)
			}
		}
		line := EncodingRFC5424.Append(nil, m)
		if !bytes.HasPrefix(line, []byte("<")) || !bytes.Contains(line, []byte(">1 ")) {
			t.Fatalf("bad rfc5424 %q", line)
		}
		if got := EncodingRaw.Append(nil, m); !reflect.DeepEqual(got, append([]byte(nil), raw...)) && len(raw) > 0 {
			t.Fatalf("raw changed: %q", got)
		}
		// The file lines take any span as a timestamp without panicking.
		EncodingTraditional.Append(nil, m)
		EncodingTraditionalRFC3339.Append(nil, m)
	})
}

func BenchmarkEncode(b *testing.B) {
	m := testMessage(b, raw5424, fields5424)
	for _, e := range []Encoding{EncodingRaw, EncodingRFC5424, EncodingRFC3164, EncodingJSON} {
		b.Run(e.String(), func(b *testing.B) {
			dst := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(m.Raw)))
			for b.Loop() {
				dst = e.Append(dst[:0], m)
			}
		})
	}
}

// appendRFC3339NanoUTC writes what time's RFC3339Nano layout writes, in
// UTC: edges of days, leap years, century years, the Unix epoch, the
// int64 range's ends, negative instants,
// whole seconds and fractions with trailing zeros, and random instants.
func TestAppendRFC3339NanoUTC(t *testing.T) {
	ns := []int64{0, 1, -1, 999_999_999, 1e9, -1e9, 86399_999_999_999, 86400e9, -86400e9 + 1,
		951_782_400e9,                // 2000-02-29
		4_107_542_400e9 - 1,          // 2100-02-28T23:59:59.999999999
		math.MaxInt64, math.MinInt64, // 2262-04-11, 1677-09-21
		time.Date(2026, 12, 6, 5, 14, 17, 500_000_000, time.UTC).UnixNano(),
		time.Date(2024, 2, 29, 23, 59, 59, 120, time.UTC).UnixNano(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		ns = append(ns, r.Int64N(4e18)-2e18, r.Int64N(5e9)*1e9+r.Int64N(1e9))
	}
	for _, n := range ns {
		want := time.Unix(0, n).UTC().AppendFormat(nil, time.RFC3339Nano)
		if got := appendRFC3339NanoUTC([]byte("x"), n); string(got) != "x"+string(want) {
			t.Fatalf("appendRFC3339NanoUTC(%d) = %s, want %s", n, got[1:], want)
		}
	}
}

func BenchmarkRFC3339NanoUTC(b *testing.B) {
	ns := time.Date(2026, 12, 6, 5, 14, 17, 123_456_789, time.UTC).UnixNano()
	dst := make([]byte, 0, 64)
	b.Run("wharf", func(b *testing.B) {
		for b.Loop() {
			dst = appendRFC3339NanoUTC(dst[:0], ns)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			dst = time.Unix(0, ns).UTC().AppendFormat(dst[:0], time.RFC3339Nano)
		}
	})
}

// TestAppendLineEscapesControl: a message with a LF inside stays one line
// (rsyslog's "#012"), in every line encoding; json escapes its own.
func TestAppendLineEscapesControl(t *testing.T) {
	raw := "<14>Dec  6 05:10:11 web1 app[7]: user input: x\nDec  6 05:10:12 dc01 sshd[1]: Accepted\r\x00\x1b[31m\x7fend\ttab " + strings.Repeat("é", 9)
	m := message.New([]byte(raw))
	defer m.Release()
	want := "<14>Dec  6 05:10:11 web1 app[7]: user input: x#012Dec  6 05:10:12 dc01 sshd[1]: Accepted#015#000#033[31m#177end\ttab " + strings.Repeat("é", 9) + "\n"
	if got := string(EncodingRaw.AppendLine([]byte("prefix\n"), m)); got != "prefix\n"+want {
		t.Errorf("raw line:\n got %q\nwant %q", got, "prefix\n"+want)
	}
	if got := EncodingJSON.AppendLine(nil, m); bytes.Count(got, []byte("\n")) != 1 || !bytes.Contains(got, []byte(`x\nDec`)) {
		t.Errorf("json line %q: want JSON's own escapes and one LF", got)
	}
	// Lengths around the 8-byte steps, control bytes at every position.
	for n := range 20 {
		for at := range n {
			b := []byte(strings.Repeat("a", n))
			b[at] = '\n'
			mm := message.New(b)
			got := string(EncodingRaw.AppendLine(nil, mm))
			mm.Release()
			if w := strings.Repeat("a", at) + "#012" + strings.Repeat("a", n-at-1) + "\n"; got != w {
				t.Fatalf("n=%d at=%d: %q, want %q", n, at, got, w)
			}
		}
	}
}

func BenchmarkAppendLine(b *testing.B) {
	m := message.New([]byte(`<134>1 2026-11-25T10:00:00.123456Z web-01 nginx 4242 ACCESS - GET /api/v1/items?page=7 HTTP/1.1 200 5120 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" rt=0.004`))
	defer m.Release()
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = EncodingRaw.AppendLine(dst[:0], m)
	}
}

func BenchmarkAppendRawNoEscape(b *testing.B) {
	m := message.New([]byte(`<134>1 2026-11-25T10:00:00.123456Z web-01 nginx 4242 ACCESS - GET /api/v1/items?page=7 HTTP/1.1 200 5120 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" rt=0.004`))
	defer m.Release()
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		dst = append(EncodingRaw.Append(dst[:0], m), '\n')
	}
}
