package framing

import (
	"slices"
	"testing"
)

// FuzzFramer checks that framing a stream in one read and in two reads split
// anywhere gives the same frames, statuses and leftover, for every mode, and
// that Next keeps its invariants (see feed).
func FuzzFramer(f *testing.F) {
	f.Add([]byte("5 hello3 abc"), uint8(0), uint8(16), false, uint16(3))
	f.Add([]byte("<13>a\n<14>b\r\n\n<15>c\x00d\n"), uint8(2), uint8(8), true, uint16(5))
	f.Add([]byte("20 0123456789abcdefghij<13>a\n"), uint8(0), uint8(16), false, uint16(10))
	f.Add([]byte("05 x\n<13>a\x00<14>b\x00"), uint8(3), uint8(4), true, uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, mode, max uint8, truncate bool, split uint16) {
		fr := Framer{Mode: Mode(mode % 4), Max: int(max%64) + 1, Truncate: truncate}
		at := int(split) % (len(in) + 1)
		a, b := fr, fr
		whole, restWhole := feed(t, &a, in)
		parts, restParts := feed(t, &b, in[:at], in[at:])
		if !slices.Equal(whole, parts) || string(restWhole) != string(restParts) {
			t.Fatalf("%+v split at %d of %q:\nwhole %q rest %q\nparts %q rest %q", fr, at, in, whole, restWhole, parts, restParts)
		}
	})
}
