package ascii

import (
	"bytes"
	"fmt"
	"testing"
)

// naiveEscape is EscapeControl's rule written plainly.
func naiveEscape(b []byte, keepTab bool) []byte {
	var out []byte
	for _, c := range b {
		if c < 0x20 && (c != '\t' || !keepTab) || c == 0x7f {
			out = fmt.Appendf(out, "#%03o", c)
			continue
		}
		out = append(out, c)
	}
	return out
}

// Every byte value at every position of lines around the 8- and 16-byte
// steps: HasControl misses no control byte, flags no plain line, and
// EscapeControl writes what the plain rule writes, after any prefix.
func TestControl(t *testing.T) {
	for n := 1; n <= 33; n++ {
		for at := range n {
			for c := range 256 {
				b := bytes.Repeat([]byte{'a'}, n)
				b[at] = byte(c)
				ctl := c < 0x20 || c == 0x7f
				if HasControl(b) != ctl {
					t.Fatalf("HasControl(%q) = %v", b, !ctl)
				}
				for _, keepTab := range []bool{false, true} {
					got := EscapeControl(append([]byte("pre#"), b...), 4, keepTab)
					if want := append([]byte("pre#"), naiveEscape(b, keepTab)...); !bytes.Equal(got, want) {
						t.Fatalf("EscapeControl(%q, keepTab %v) = %q, want %q", b, keepTab, got, want)
					}
				}
			}
		}
	}
	if HasControl(nil) || HasControl(bytes.Repeat([]byte("é"), 40)) {
		t.Fatal("HasControl flags plain text")
	}
}
