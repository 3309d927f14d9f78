package stamp

import (
	"strings"
	"testing"
)

func TestTemplateRoundTrip(t *testing.T) {
	f := func(format, framing string, size int) {
		t.Helper()
		tp, err := NewTemplate(Options{Format: format, Framing: framing, Size: size, Run: "r1", Conn: 7})
		if err != nil {
			t.Fatal(err)
		}
		tp.SetSeq(999)
		tp.IncSeq()
		tp.SetTime(1764097000123456789)
		msg := tp.Frame
		switch framing {
		case OctetCounting:
			sp := strings.IndexByte(string(msg), ' ')
			msg = msg[sp+1:]
		case LF:
			if msg[len(msg)-1] != '\n' {
				t.Fatalf("%s/%s: no LF", format, framing)
			}
			msg = msg[:len(msg)-1]
		}
		if size > 200 && len(msg) != size {
			t.Fatalf("%s/%s: size %d, want %d", format, framing, len(msg), size)
		}
		s, ok := Parse(msg)
		if !ok || string(s.Run) != "r1" || s.Conn != 7 || s.Seq != 1000 || s.Time != 1764097000123456789 {
			t.Fatalf("%s/%s: Parse(%q) = %+v %v", format, framing, msg, s, ok)
		}
	}
	for _, format := range []string{RFC5424, RFC3164} {
		for _, framing := range []string{None, LF, OctetCounting} {
			f(format, framing, 300)
			f(format, framing, 1024)
			f(format, framing, 10)
		}
	}
}

func TestParse(t *testing.T) {
	f := func(in string, ok bool, seq uint64) {
		t.Helper()
		s, got := Parse([]byte(in))
		if got != ok || (ok && s.Seq != seq) {
			t.Fatalf("Parse(%q) = %+v %v, want ok=%v seq=%d", in, s, got, ok, seq)
		}
	}
	f(`<134>1 - h a - - [wb@32473 run="x" c="1" seq="5" t="9"] m`, true, 5)
	f(`<134>1 - h a - - [wb@32473 t="9" seq="6" c="1" run="x"]`, true, 6) // reordered params
	f(`<134>h a: wb@32473 run=x c=1 seq=7 t=9 pad`, true, 7)
	f(`<134>h a: wb@32473 run=x c=1 seq=7`, false, 0)      // truncated
	f(`<134>h a: wb@32473 run=x c=1 seq=7a t=9`, false, 0) // bad digits
	f(`<134>1 - h a - - [wb@32473 run="x" c="1" seq="5 t="9"]`, false, 0)
	f(`no stamp at all`, false, 0)
	f(``, false, 0)
}

func TestParseAllocs(t *testing.T) {
	msg := []byte(`<134>1 - h a - - [wb@32473 run="x" c="1" seq="5" t="9"] m`)
	if n := testing.AllocsPerRun(100, func() { Parse(msg) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`<134>1 - h a - - [wb@32473 run="x" c="1" seq="5" t="9"] m`))
	f.Add([]byte(`wb@32473 run=x c=1 seq=7 t=9`))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
		Parse(b[:len(b)/2])
	})
}

func BenchmarkParse(b *testing.B) {
	tp, _ := NewTemplate(Options{Size: 300, Run: "abcdefgh"})
	b.ReportAllocs()
	b.SetBytes(int64(len(tp.Frame)))
	for b.Loop() {
		Parse(tp.Frame)
	}
}
