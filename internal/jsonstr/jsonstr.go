// Package jsonstr appends JSON string literals to a byte slice without
// allocating: the one encoder behind the json sink encoding, the tap and
// the dead-letter file.
package jsonstr

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// Append appends s as a quoted JSON string and returns the extended
// slice. Invalid UTF-8 becomes U+FFFD; control characters, quote and
// backslash are escaped (\n, \r, \t by name, the others as \u00XX), and
// so are U+2028/U+2029, so the output is also safe inside JavaScript. s is
// only read.
func Append(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip 8 plain ASCII bytes at a time (see special); a word with
		// one is left at its first, which the byte code below handles.
		for i+8 <= len(s) {
			if sp := special(binary.LittleEndian.Uint64(s[i:])); sp != 0 {
				i += bits.TrailingZeros64(sp) / 8
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// special returns x (8 bytes, the first in the low byte) with the high
// bit set in each byte Append cannot copy as it is: below 0x20, '"', '\\'
// or 0x80 and above (UTF-8 to check). The subtractions can borrow only
// out of a byte that is itself flagged, so the lowest flagged byte is
// exact; bytes above it may be flagged falsely, which costs only a look.
func special(x uint64) uint64 {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	q, bs := x^('"'*ones), x^('\\'*ones) // a zero byte where x has '"', '\\'
	return ((x - 0x20*ones) | (q-ones)&^q | (bs-ones)&^bs | x) & high
}

// AppendString is Append for a string, without copying it.
func AppendString(dst []byte, s string) []byte {
	return Append(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// AppendHex appends b as lower-case hex digits, unquoted.
func AppendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}
