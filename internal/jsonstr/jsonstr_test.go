package jsonstr

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppend(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(Append([]byte("x"), []byte(in))); got != "x"+want {
			t.Errorf("Append(%q) = %s, want %s", in, got[1:], want)
		}
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
	}
	f("", `""`)
	f("plain é", `"plain é"`)
	f("q\"b\\", `"q\"b\\"`)
	f("n\nr\rt\t", `"n\nr\rt\t"`)
	f("\x00\x1f\x7f", `"\u0000\u001f`+"\x7f"+`"`)
	f("ls\u2028ps\u2029", `"ls\u2028ps\u2029"`)
	f("bad\xffutf8", `"bad\ufffdutf8"`)
}

// Whatever the input, the output is one JSON string that decodes to the
// input (with invalid UTF-8 replaced, as encoding/json does).
func FuzzAppend(f *testing.F) {
	f.Add([]byte("a\"\\\n\x01\u2028\xff"))
	f.Fuzz(func(t *testing.T, s []byte) {
		out := Append(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		if want := strings.ToValidUTF8(string(s), "\uFFFD"); got != want && utf8.Valid(s) {
			t.Fatalf("%q -> %s decodes to %q", s, out, got)
		}
	})
}

// A typical log line (ASCII, a few quotes) and one with UTF-8 text.
var benchLines = map[string][]byte{
	"ascii": []byte(`GET /api/v1/items?page=7 HTTP/1.1 200 5120 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" rt=0.004 upstream=10.0.3.17:8080`),
	"utf8":  []byte(`Benutzer „müller“ hat sich angemeldet; Sitzung 4f2a, Größe 12 KiB — Zeitüberschreitung nach 30 s`),
}

func BenchmarkAppend(b *testing.B) {
	for _, name := range []string{"ascii", "utf8"} {
		s := benchLines[name]
		b.Run(name, func(b *testing.B) {
			dst := make([]byte, 0, 4*len(s))
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				dst = Append(dst[:0], s)
			}
		})
	}
}
