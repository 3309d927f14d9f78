package framing

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// result is one non-NeedMore outcome of Next, as a comparable string:
// "ok:<frame>", "oversize:<frame>" (empty when dropped) or "invalid:<reason>".
func result(frame []byte, st Status, reason string) string {
	switch st {
	case OK:
		return "ok:" + string(frame)
	case Oversize:
		return "oversize:" + string(frame)
	case Invalid:
		return "invalid:" + reason
	}
	return st.String()
}

// feed plays a connection: every chunk is appended to the input buffer and
// Next is called until NeedMore, discarding what it consumed, the way the
// gnet handler does. It returns the outcomes and what is left buffered, and
// checks the invariants every call must keep.
func feed(t testing.TB, fr *Framer, chunks ...[]byte) (out []string, rest []byte) {
	t.Helper()
	var buf []byte
	for _, c := range chunks {
		buf = append(buf, c...)
		limit := len(buf) + 1
		for calls := 0; ; calls++ {
			if calls > limit {
				t.Fatalf("Next does not make progress on %q", buf)
			}
			frame, n, st := fr.Next(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("consumed %d of %d bytes", n, len(buf))
			}
			max := fr.Max
			if max <= 0 {
				max = DefaultMax
			}
			if len(frame) > max {
				t.Fatalf("frame of %d bytes exceeds Max %d", len(frame), max)
			}
			switch st {
			case OK, Invalid:
				if n == 0 {
					t.Fatalf("status %v with nothing consumed on %q", st, buf)
				}
			case Oversize:
				if n == 0 {
					t.Fatalf("oversize with nothing consumed")
				}
				if fr.Truncate != (frame != nil) {
					t.Fatalf("oversize frame %q with Truncate=%v", frame, fr.Truncate)
				}
				if fr.Truncate && (len(frame) > max || len(frame) < max-3) {
					t.Fatalf("truncated frame of %d bytes, want Max %d (less at most the 3 bytes of a UTF-8 sequence cut in half)", len(frame), max)
				}
			case NeedMore:
				if frame != nil {
					t.Fatalf("NeedMore with a frame %q", frame)
				}
			}
			// What Wire counts is the message's octet frame, as consumed.
			if w := fr.Wire(); w > 0 && (st != OK || w > n || string(buf[n-w:n]) != strconv.Itoa(len(frame))+" "+string(frame)) {
				t.Fatalf("status %v, Wire %d of %q consumed, frame %q", st, w, buf[:n], frame)
			}
			if st != NeedMore {
				out = append(out, result(frame, st, fr.Reason()))
			}
			buf = buf[n:]
			if st == NeedMore {
				break
			}
		}
	}
	return out, buf
}

func TestFramer(t *testing.T) {
	f := func(fr Framer, in string, want ...string) {
		t.Helper()
		// Whole stream in one read.
		first := fr
		got, _ := feed(t, &first, []byte(in))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%v %q:\n got %q\nwant %q", fr.Mode, in, got, want)
		}
		// Every split point of the stream, and one byte per read.
		for i := 0; i <= len(in); i++ {
			fr2 := fr
			got, _ := feed(t, &fr2, []byte(in[:i]), []byte(in[i:]))
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("%v %q split at %d:\n got %q\nwant %q", fr.Mode, in, i, got, want)
			}
		}
		var bytewise [][]byte
		for i := range len(in) {
			bytewise = append(bytewise, []byte{in[i]})
		}
		fr3 := fr
		if got, _ := feed(t, &fr3, bytewise...); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%v %q byte by byte:\n got %q\nwant %q", fr.Mode, in, got, want)
		}
	}
	oc := Framer{Mode: OctetCounting, Max: 16}
	lf := Framer{Mode: LF, Max: 16}
	nul := Framer{Mode: NUL, Max: 16}
	auto := Framer{Mode: Auto, Max: 16}
	trunc := func(fr Framer) Framer { fr.Truncate = true; return fr }

	// Octet counting: several frames per read, frames with LF and NUL inside.
	f(oc, "5 hello3 abc", "ok:hello", "ok:abc")
	f(oc, "7 a\nb\x00c\r\n1 x", "ok:a\nb\x00c", "ok:x") // one trailing CRLF, LF or NUL trimmed (TrimEnd)
	f(oc, "4 ab\n\n3 c\x00d", "ok:ab\n", "ok:c\x00d")
	f(oc, "16 0123456789abcdef", "ok:0123456789abcdef")
	// Max bytes plus a trailer inside the count: not oversize.
	f(oc, "17 0123456789abcdef\n", "ok:0123456789abcdef")
	f(oc, "18 0123456789abcdef\r\n", "ok:0123456789abcdef")
	f(oc, "17 0123456789abcdefX1 x", "oversize:", "ok:x") // one byte over, no trailer
	// Stray LF after octet-counted frames (some senders add one) is an empty frame.
	f(oc, "2 ab\n2 cd\r\n", "ok:ab", "ok:cd")
	// Oversize: drop skips the rest, even across reads; truncate keeps Max bytes.
	f(oc, "20 0123456789abcdefghij2 ok", "oversize:", "ok:ok")
	f(trunc(oc), "20 0123456789abcdefghij2 ok", "oversize:0123456789abcdef", "ok:ok")
	f(oc, "17 0123456789abcdefg", "oversize:")
	// Bad prefix: leading zero, zero length, non-digit, missing SP, too many digits;
	// resynchronise after the next LF.
	f(oc, "05 hello\n3 abc", "invalid:bad_length_prefix", "ok:abc")
	f(oc, "0 \n3 abc", "invalid:bad_length_prefix", "ok:abc")
	f(oc, "<13>hi\n3 abc", "invalid:bad_length_prefix", "ok:abc")
	f(oc, "5hello\n3 abc", "invalid:bad_length_prefix", "ok:abc")
	f(oc, "1234567890 x\n3 abc", "invalid:bad_length_prefix", "ok:abc")
	f(oc, "123456789 x", "oversize:") // 9 digits: a (huge) length, skipped
	f(oc, "x y z", "invalid:bad_length_prefix")
	f(oc, "12" /* incomplete prefix */)
	f(oc, "5 hel" /* incomplete frame */)

	// LF: CRLF, empty frames, NUL inside, incomplete last line.
	f(lf, "<13>a\n<14>b\r\n\n\r\n<15>c\x00d\nrest", "ok:<13>a", "ok:<14>b", "ok:<15>c\x00d")
	f(lf, "a\rb\n", "ok:a\rb")
	f(lf, "\n\n\n")
	// Oversize without a terminator within Max is reported at once; the rest
	// of the line is skipped across reads.
	f(lf, "0123456789abcdefXYZXYZXYZ\nok\n", "oversize:", "ok:ok")
	f(trunc(lf), "0123456789abcdefXYZXYZXYZ\nok\n", "oversize:0123456789abcdef", "ok:ok")
	f(lf, "0123456789abcdef\r\nok\n", "ok:0123456789abcdef", "ok:ok") // exactly Max with CRLF
	f(lf, "0123456789abcdefg\nok\n", "oversize:", "ok:ok")
	f(lf, "0123456789abcdefg\r\nok\n", "oversize:", "ok:ok")
	f(lf, "0123456789abcdefghijklmnopqrstuvwxyz", "oversize:")

	// NUL: LF stays inside the message.
	f(nul, "<13>a\nb\x00<14>c\x00\x00d", "ok:<13>a\nb", "ok:<14>c")
	f(trunc(nul), "0123456789abcdefXY\n\x00ok\x00", "oversize:0123456789abcdef", "ok:ok")

	// Auto: detected per frame, so framings mix on one connection.
	f(auto, "5 hello<13>a\n3 abc<14>b\x00<15>c\r\n", "ok:hello", "ok:<13>a", "ok:abc", "ok:<14>b", "ok:<15>c")
	f(auto, "05 x\n<13>a\n", "invalid:bad_length_prefix", "ok:<13>a")
	f(auto, "20 0123456789abcdefghij<13>a\n", "oversize:", "ok:<13>a")
	f(auto, "<13>0123456789abcdefghij\x00<13>a\n", "oversize:", "ok:<13>a")
	f(trunc(auto), "<13>0123456789abcdefghij\n<13>a\n", "oversize:<13>0123456789ab", "ok:<13>a")
	f(auto, "hello world\n", "ok:hello world")
}

// An oversize octet-counted frame fed in many small reads is reported once
// and skipped exactly, so the next frame is found.
func TestFramerOversizeAcrossReads(t *testing.T) {
	for _, truncate := range []bool{false, true} {
		fr := Framer{Mode: Auto, Max: 100, Truncate: truncate}
		body := bytes.Repeat([]byte("x"), 10000)
		stream := append([]byte(fmt.Sprintf("%d ", len(body))), body...)
		stream = append(stream, "<13>after\n"...)
		var chunks [][]byte
		for len(stream) > 0 {
			n := min(7, len(stream))
			chunks = append(chunks, stream[:n])
			stream = stream[n:]
		}
		got, rest := feed(t, &fr, chunks...)
		want := "oversize:"
		if truncate {
			want += string(body[:100])
		}
		if len(got) != 2 || got[0] != want || got[1] != "ok:<13>after" || len(rest) != 0 {
			t.Fatalf("truncate=%v: got %q rest %q", truncate, got, rest)
		}
	}
}

// The handler never has to buffer more than Max plus a small header.
func TestFramerBoundedBuffer(t *testing.T) {
	for _, m := range []Mode{Auto, OctetCounting, LF, NUL} {
		fr := Framer{Mode: m, Max: 64}
		in := bytes.Repeat([]byte("7"), 1000) // digits: a length prefix for octet modes
		if m == LF || m == NUL {
			in = bytes.Repeat([]byte("a"), 1000)
		}
		var buf []byte
		for i := range in {
			buf = append(buf, in[i])
			for {
				_, n, st := fr.Next(buf)
				buf = buf[n:]
				if st == NeedMore {
					break
				}
			}
			if len(buf) > 64+10 {
				t.Fatalf("%v: %d bytes buffered, Max is 64", m, len(buf))
			}
		}
	}
}

func TestParseMode(t *testing.T) {
	f := func(s string, want Mode, ok bool) {
		t.Helper()
		m, err := ParseMode(s)
		if (err == nil) != ok || m != want {
			t.Fatalf("ParseMode(%q) = %v, %v", s, m, err)
		}
		if ok && s != "" && m.String() != s {
			t.Fatalf("%v.String() = %q", m, m.String())
		}
	}
	f("auto", Auto, true)
	f("", Auto, true)
	f("octet-counting", OctetCounting, true)
	f("lf", LF, true)
	f("nul", NUL, true)
	f("LF", Auto, false)
	f("octet", Auto, false)
}

func TestTrimEnd(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(TrimEnd([]byte(in))); got != want {
			t.Fatalf("TrimEnd(%q) = %q, want %q", in, got, want)
		}
	}
	f("", "")
	f("msg", "msg")
	f("msg\n", "msg")
	f("msg\r\n", "msg")
	f("msg\x00", "msg")
	f("msg\n\n", "msg\n")
	f("msg\r", "msg\r")
	f("\n", "")
}

func TestFramerZeroAllocs(t *testing.T) {
	stream := benchStream(OctetCounting, 50)
	lfs := benchStream(LF, 50)
	for _, tc := range []struct {
		mode Mode
		in   []byte
	}{{OctetCounting, stream}, {Auto, stream}, {LF, lfs}, {Auto, lfs}, {NUL, []byte("<13>a\x00<13>b\x00")}} {
		fr := Framer{Mode: tc.mode, Max: 1024}
		allocs := testing.AllocsPerRun(100, func() {
			buf := tc.in
			for {
				_, n, st := fr.Next(buf)
				buf = buf[n:]
				if st == NeedMore {
					break
				}
			}
		})
		if allocs != 0 {
			t.Fatalf("%v: %v allocs per run, want 0", tc.mode, allocs)
		}
	}
}

// benchStream returns n frames of ~300 bytes in the given framing.
func benchStream(m Mode, n int) []byte {
	msg := []byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry with enough text to make the whole message about three hundred bytes long, as real logs are`)
	var b []byte
	for range n {
		if m == OctetCounting {
			b = fmt.Appendf(b, "%d ", len(msg))
			b = append(b, msg...)
		} else {
			b = append(b, msg...)
			b = append(b, '\n')
		}
	}
	return b
}

func benchFramer(b *testing.B, m Mode) {
	const frames = 1000
	stream := benchStream(m, frames)
	fr := Framer{Mode: m, Max: 64 << 10}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / frames))
	b.ResetTimer()
	for i := 0; i < b.N; {
		buf := stream
		for ; i < b.N; i++ {
			frame, n, st := fr.Next(buf)
			if st != OK || len(frame) == 0 {
				b.Fatalf("status %v", st)
			}
			buf = buf[n:]
			if len(buf) == 0 {
				i++
				break
			}
		}
	}
}

// BenchmarkFramerOctetCounting reports per message (~300 B frames).
func BenchmarkFramerOctetCounting(b *testing.B) { benchFramer(b, OctetCounting) }

// BenchmarkFramerLF reports per message (~300 B frames).
func BenchmarkFramerLF(b *testing.B) { benchFramer(b, LF) }

// TestCutUTF8: a truncation that ends inside a UTF-8 sequence drops its
// start, so the message stays valid UTF-8; complete sequences, ASCII and
// bytes that are not UTF-8 at all are kept.
func TestCutUTF8(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{"ab\xc3\xa9", "ab\xc3\xa9"},                 // é whole
		{"ab\xc3", "ab"},                             // é cut after its first byte
		{"ab\xe2\x82", "ab"},                         // € cut after two of three
		{"ab\xe2\x82\xac", "ab\xe2\x82\xac"},         // € whole
		{"ab\xf0\x9f\x98", "ab"},                     // 😀 cut after three of four
		{"ab\x80\x80\x80\x80", "ab\x80\x80\x80\x80"}, // not UTF-8: kept
		{"", ""},
	} {
		if got := string(CutUTF8([]byte(tc.in))); got != tc.want {
			t.Errorf("CutUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Truncating "é" x 10 at every max gives valid UTF-8, never shorter
	// than max-1.
	s := []byte(strings.Repeat("é", 10))
	for max := 1; max < len(s); max++ {
		fr := Framer{Mode: OctetCounting, Max: max, Truncate: true}
		frame, _, st := fr.Next(append([]byte(fmt.Sprintf("%d ", len(s))), s...))
		if st != Oversize || !utf8.Valid(frame) || len(frame) < max-1 {
			t.Fatalf("max %d: %q (%v): want valid UTF-8 of %d or %d bytes", max, frame, st, max-1, max)
		}
	}
}

// TestLenDigitsFastPath compares lenDigits with the digit-at-a-time loop
// on every string of up to six bytes over digits, a space and others.
func TestLenDigitsFastPath(t *testing.T) {
	loop := func(buf []byte) (n, i int) {
		for ; i < len(buf); i++ {
			c := buf[i]
			if c < '0' || c > '9' {
				break
			}
			if i == maxLenDigits {
				return 0, maxLenDigits + 1
			}
			n = n*10 + int(c-'0')
		}
		return n, i
	}
	alphabet := []byte("0159 x/:")
	var b []byte
	checked := 0
	var walk func(depth int)
	walk = func(depth int) {
		n1, i1 := lenDigits(b)
		n2, i2 := loop(b)
		if n1 != n2 || i1 != i2 {
			t.Fatalf("%q: lenDigits = %d, %d; loop = %d, %d", b, n1, i1, n2, i2)
		}
		checked++
		if depth == 0 {
			return
		}
		for _, c := range alphabet {
			b = append(b, c)
			walk(depth - 1)
			b = b[:len(b)-1]
		}
	}
	walk(6)
	for _, s := range []string{"1234567890 ", "123456789 ", "999 x", "100 ", "000 "} {
		n1, i1 := lenDigits([]byte(s))
		n2, i2 := loop([]byte(s))
		if n1 != n2 || i1 != i2 {
			t.Fatalf("%q: lenDigits = %d, %d; loop = %d, %d", s, n1, i1, n2, i2)
		}
	}
	if checked < 200000 {
		t.Fatalf("only %d checked", checked)
	}
}

// TestWire: the frame as it arrived is counted for an octet frame whose
// message Next did not trim, and for nothing else.
func TestWire(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		in   string
		want string // the last Wire() bytes consumed
	}{
		{Auto, "5 hello", "5 hello"},
		{OctetCounting, "5 hello", "5 hello"},
		{Auto, "\n\r\x0011 hello world", "11 hello world"}, // skipped bytes before it are not part of it
		{Auto, "6 hello\n", ""},                            // trimmed: MSG is "hello"
		{Auto, "7 hello\r\n", ""},
		{Auto, "6 hello\x00", ""},
		{Auto, "<13>hello\n", ""}, // LF framing
		{LF, "<13>hello\n", ""},
		{NUL, "<13>hello\x00", ""},
		{Auto, "120 " + strings.Repeat("y", 120), "120 " + strings.Repeat("y", 120)},
	} {
		fr := Framer{Mode: tc.mode, Max: 1024}
		if tc.mode == Auto || tc.mode == OctetCounting {
			// A Wire left from the frame before must not stay.
			if _, n, st := fr.Next([]byte("5 first")); st != OK || fr.Wire() != n {
				t.Fatalf("first frame: status %v, Wire %d of %d", st, fr.Wire(), n)
			}
		}
		in := []byte(tc.in)
		_, n, st := fr.Next(in)
		if st != OK {
			t.Fatalf("%q: status %v", tc.in, st)
		}
		if got := string(in[n-fr.Wire() : n]); got != tc.want {
			t.Errorf("mode %v, %q: Wire covers %q, want %q", tc.mode, tc.in, got, tc.want)
		}
	}
}
