package ascii

import (
	"encoding/binary"
	"slices"
)

// HasControl reports whether b holds a control character: a byte below
// 0x20 (TAB included) or DEL. It looks at 16 bytes a step (two words,
// independent chains): a byte below 0x20 sets its high bit in (x-0x20..)
// &^ x, a DEL byte is zero in x^0x7f.. and sets it in (v-0x01..) &^ v; a
// borrow only spills above a flagged byte, so no control byte is missed.
func HasControl(b []byte) bool {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	var any, any2 uint64
	for len(b) >= 16 {
		x, y := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		dx, dy := x^0x7f*ones, y^0x7f*ones
		any |= (x-0x20*ones)&^x | (dx-ones)&^dx
		any2 |= (y-0x20*ones)&^y | (dy-ones)&^dy
		b = b[16:]
	}
	any |= any2
	if len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		dx := x ^ 0x7f*ones
		any |= (x-0x20*ones)&^x | (dx-ones)&^dx
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return any&high != 0
}

// EscapeControl rewrites each control character of dst[from:] as '#' and
// three octal digits ("#012" for LF), rsyslog's escape, in place; with
// keepTab a TAB stays as it is. dst grows by 3 bytes per character
// escaped, moved from the end backwards, so it allocates only when dst
// has no room. Callers that expect plain text ask HasControl first.
func EscapeControl(dst []byte, from int, keepTab bool) []byte {
	ctl := func(c byte) bool { return c < 0x20 && (c != '\t' || !keepTab) || c == 0x7f }
	k := 0
	for _, c := range dst[from:] {
		if ctl(c) {
			k++
		}
	}
	if k == 0 {
		return dst
	}
	n := len(dst)
	dst = slices.Grow(dst, 3*k)[:n+3*k]
	w := len(dst)
	for r := n - 1; r >= from && w > r+1; r-- {
		c := dst[r]
		if !ctl(c) {
			w--
			dst[w] = c
			continue
		}
		w -= 4
		dst[w], dst[w+1], dst[w+2], dst[w+3] = '#', '0'+c>>6, '0'+c>>3&7, '0'+c&7
	}
	return dst
}
