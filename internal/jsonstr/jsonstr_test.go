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
