package message

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"time"
)

// RFC3339Len returns the length of the RFC3339 timestamp at the start of b,
// or 0 when there is none: RFC 5424 §6.2.3 (uppercase 'T' and 'Z', at most
// maxFrac fraction digits, a real calendar day); without needOffset
// (RFC3164 "ISO" timestamps) the UTC offset may be missing. A timestamp it
// accepts decodes with ParseTimestamp.
func RFC3339Len(b []byte, maxFrac int, needOffset bool) int {
	var t tsFields
	return scanRFC3339(b, maxFrac, needOffset, &t)
}

// BSDLen returns the length of the RFC3164 (BSD) timestamp at the start of
// b, or 0 when there is none; see scanBSD for the forms accepted. A
// timestamp it accepts decodes with ParseTimestamp.
func BSDLen(b []byte) int {
	var t tsFields
	return scanBSD(b, &t)
}

// tsFields are the parts of a timestamp; offMin is the UTC offset in
// minutes when hasOffset.
type tsFields struct {
	year, month, day, hour, min, sec, nsec int
	offMin                                 int
	hasOffset                              bool
}

// fracScale[n] turns n fraction digits into nanoseconds.
var fracScale = [10]int{0, 1e8, 1e7, 1e6, 1e5, 1e4, 1e3, 1e2, 1e1, 1}

// scanRFC3339 reads an RFC3339 timestamp (RFC 5424 §6.2.3: uppercase 'T'
// and 'Z', at most maxFrac fraction digits, a real calendar day) at the
// start of b and returns its length, or 0. Without needOffset (RFC3164
// "ISO" timestamps) the offset may be missing. The parts go into t, which
// the caller owns: returning them by value cost a store-forwarding stall
// per message (the copy-out read 16 bytes over two 8-byte stores), a
// sixth of the TCP relay's CPU in perf.
func scanRFC3339(b []byte, maxFrac int, needOffset bool, t *tsFields) int {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' ||
		!isDigit(b[17]) || !isDigit(b[18]) {
		return 0
	}
	// "YYYY-MM-" and "DDThh:mm" as two words: their 12 digits are tested
	// at once (the separators were checked above, so no lane carries).
	x, y := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
	if notDigits(x, 0x00FFFF00FFFFFFFF)|notDigits(y, 0xFFFF00FFFF00FFFF) != 0 {
		return 0
	}
	// Each two-digit value at once: with the digits' values in their
	// lanes (the others zeroed), lane i of v*10 + v>>8 is 10*d[i] +
	// d[i+1], below 256, so no lane carries into the next. (Reading
	// "hh:mm:ss" as a third word instead of the bytes was 5 instructions
	// more.)
	vx, vy := x&0x000F0F000F0F0F0F, y&0x0F0F000F0F000F0F
	px, py := vx*10+vx>>8, vy*10+vy>>8
	t.year = int(byte(px))*100 + int(byte(px>>16))
	t.month, t.day, t.hour, t.min = int(byte(px>>40)), int(byte(py)), int(byte(py>>24)), int(byte(py>>48))
	t.sec = int(b[17]-'0')*10 + int(b[18]-'0')
	// uint(v-1) >= 12 is v < 1 || v > 12, one branch for all of them.
	if uint(t.month-1) >= 12 || uint(t.day-1) >= 31 || t.hour > 23 || t.min > 59 || t.sec > 59 {
		return 0
	}
	if t.day > 28 && t.day > daysIn(t.month, t.year) {
		return 0
	}
	p := 19
	if p < len(b) && b[p] == '.' {
		n, frac := fracDigits(b[p+1:], maxFrac)
		if n == 0 {
			return 0
		}
		t.nsec = frac * fracScale[n] // no division per digit
		p += 1 + n
	}
	if p == len(b) {
		if needOffset {
			return 0
		}
		return p
	}
	switch b[p] {
	case 'Z':
		t.hasOffset = true
		return p + 1
	case '+', '-':
		if len(b) < p+6 || b[p+3] != ':' {
			return 0
		}
		h, ok1 := digits(b[p+1 : p+3])
		mi, ok2 := digits(b[p+4 : p+6])
		if !ok1 || !ok2 || h > 23 || mi > 59 {
			return 0
		}
		t.offMin = h*60 + mi
		if b[p] == '-' {
			t.offMin = -t.offMin
		}
		t.hasOffset = true
		return p + 6
	}
	if needOffset {
		return 0
	}
	return p
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// fracDigits returns the length and value of the run of digits at the
// start of b (a fraction of a second), or n = 0 when there is none or it
// is longer than max (at most 9). When b has eight bytes they are tested
// and summed as one word: scanRFC3339 with a digit at a time was 286 of
// the TCP relay path's ~1900 instructions per message for a timestamp
// with six fraction digits, 257 with this (bench/instr.sh).
func fracDigits(b []byte, max int) (n, v int) {
	if len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if n = digitRun(x); n < 8 {
			if n == 0 || n > max {
				return 0, 0
			}
			return n, digitsValue(x, n)
		}
	}
	for n = 0; n < len(b) && isDigit(b[n]); n++ {
		if n == max {
			return 0, 0
		}
		v = v*10 + int(b[n]-'0')
	}
	return n, v
}

// digitRun returns how many of x's bytes, first (lowest) first, are ASCII
// digits before the first that is not (8 when all are). As in notDigits:
// a byte is flagged when its high nibble is not 3 or adding 6 carries
// out of its low nibble; a carry out of a byte of 0xFA or above spills
// only into the bytes after it, which do not count.
func digitRun(x uint64) int {
	const hi, d = 0xF0 * ones8, 0x30 * ones8
	bad := ((x & hi) ^ d) | (((x + 0x06*ones8) & hi) ^ d)
	// A flagged byte's high nibble is not 0: move it down and add 0x7F,
	// which sets the byte's top bit (and carries no further).
	bad = ((bad>>4)&(0x0F*ones8) + 0x7F*ones8) & (0x80 * ones8)
	return bits.TrailingZeros64(bad) / 8
}

// digitsValue returns the number that x's first n bytes (1..8, all ASCII
// digits, the first the most significant) spell. The n digits are moved
// to the top bytes, zeros below them, and summed pairwise: bytes into
// two-digit values, those into four, those into eight. A borrow of
// x - '0' out of a byte after the digits goes only further up, and is
// shifted out.
func digitsValue(x uint64, n int) int {
	v := (x - 0x30*ones8) << (8 * (8 - n))
	v = (v*10 + v>>8) & 0x00FF00FF00FF00FF
	v = (v*100 + v>>16) & 0x0000FFFF0000FFFF
	v = (v*10000 + v>>32) & 0xFFFFFFFF
	return int(v)
}

const ones8 = 0x0101010101010101

// notDigits is 0 when every byte of x that lanes selects (0xFF) is an
// ASCII digit: its high nibble is 3, and adding 6 does not carry out of
// its low nibble. A lane not selected must not be 0xFA or above (its
// carry would spill into the next lane).
func notDigits(x, lanes uint64) uint64 {
	const hi, d = 0xF0 * ones8, 0x30 * ones8
	return (((x & hi) ^ d) | (((x + 0x06*ones8) & hi) ^ d)) & lanes
}

// digits parses an all-digit slice.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// months in BSD timestamps, matched case-insensitively.
var months = [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// scanBSD reads an RFC3164 timestamp at the start of b and returns its
// length, or 0. Accepted, as rsyslog does: "Mmm dd hh:mm:ss" with the day
// as " d", "dd", "0d" or "d", an optional ".fraction" (1..9 digits), and an
// optional year before the time ("Mmm dd yyyy hh:mm:ss", Cisco style).
// The parts go into t (as scanRFC3339); t.year is 0 when absent.
func scanBSD(b []byte, t *tsFields) int {
	if len(b) < 14 || b[3] != ' ' {
		return 0
	}
	for i, name := range months {
		if b[0]|0x20 == name[0] && b[1]|0x20 == name[1] && b[2]|0x20 == name[2] {
			t.month = i + 1
			break
		}
	}
	if t.month == 0 {
		return 0
	}
	p := 4
	if b[p] == ' ' {
		p++
	}
	start := p
	for p < len(b) && p-start < 2 && isDigit(b[p]) {
		t.day = t.day*10 + int(b[p]-'0')
		p++
	}
	if p == start || t.day < 1 || t.day > 31 || p == len(b) || b[p] != ' ' {
		return 0
	}
	p++
	// Optional "yyyy " before the time.
	if len(b) >= p+5 && b[p+4] == ' ' {
		y, ok := digits(b[p : p+4])
		if !ok {
			return 0
		}
		t.year = y
		p += 5
	}
	if len(b) < p+8 || b[p+2] != ':' || b[p+5] != ':' {
		return 0
	}
	var ok1, ok2, ok3 bool
	t.hour, ok1 = digits(b[p : p+2])
	t.min, ok2 = digits(b[p+3 : p+5])
	t.sec, ok3 = digits(b[p+6 : p+8])
	if !ok1 || !ok2 || !ok3 || t.hour > 23 || t.min > 59 || t.sec > 60 {
		return 0
	}
	p += 8
	if p < len(b) && b[p] == '.' {
		p++
		start, scale := p, 100000000
		for p < len(b) && isDigit(b[p]) && p-start < 9 {
			t.nsec += int(b[p]-'0') * scale
			scale /= 10
			p++
		}
		if p == start {
			return 0
		}
	}
	return p
}

// ParseTimestamp decodes m's Timestamp span: RFC3339 for RFC5424, RFC3339
// or BSD ("Mmm dd hh:mm:ss") for RFC3164. A BSD timestamp, or an RFC3339
// one without offset, is read in the local time zone, as rsyslog does; see
// ParseTimestampIn. It reports false when there is no timestamp.
func ParseTimestamp(m *Message) (time.Time, bool) {
	return ParseTimestampIn(m, time.Local)
}

// ParseTimestampIn is ParseTimestamp with loc for timestamps that carry no
// zone. A BSD timestamp has no year either: it gets the latest year that
// puts it no more than bsdAhead after the receive time (m.Received, or
// now when zero), as rsyslog and syslog-ng do: logs are of the past, but
// a sender's clock may run a little ahead. So a "Dec 31" message
// received on January 1st is dated last year, a "Jan 1" one received on
// December 31st next year, and a "Mar 1" one received in December this
// year (the nearest year, used before, made it next March).
//
// It is meant for encoders that need a time.Time, lazily; it does not
// allocate except the first time it meets a given numeric UTC offset
// (zones are cached).
func ParseTimestampIn(m *Message, loc *time.Location) (time.Time, bool) {
	ts := m.Field(m.Timestamp)
	if len(ts) == 0 || m.Format == FormatRaw {
		return time.Time{}, false
	}
	if isDigit(ts[0]) {
		maxFrac := 9
		if m.Format == FormatRFC5424 {
			maxFrac = 6
		}
		var t tsFields
		n := scanRFC3339(ts, maxFrac, m.Format == FormatRFC5424, &t)
		if n != len(ts) {
			return time.Time{}, false
		}
		if t.hasOffset {
			loc = fixedZone(t.offMin)
		}
		return time.Date(t.year, time.Month(t.month), t.day, t.hour, t.min, t.sec, t.nsec, loc), true
	}
	var t tsFields
	n := scanBSD(ts, &t)
	if n != len(ts) {
		return time.Time{}, false
	}
	if t.year != 0 {
		return time.Date(t.year, time.Month(t.month), t.day, t.hour, t.min, t.sec, t.nsec, loc), true
	}
	ref := time.Now()
	if m.Received != 0 {
		ref = time.Unix(0, m.Received)
	}
	ref = ref.In(loc)
	for y := ref.Year() + 1; ; y-- {
		c := time.Date(y, time.Month(t.month), t.day, t.hour, t.min, t.sec, t.nsec, loc)
		if c.Sub(ref) <= bsdAhead || y < ref.Year() {
			return c, true
		}
	}
}

// bsdAhead is how far after its receive time a timestamp without a year
// may be and still get the year that puts it there (see ParseTimestampIn).
const bsdAhead = 31 * 24 * time.Hour

// zones caches one *time.Location per UTC offset in minutes
// (-23:59..+23:59), so that decoding timestamps does not allocate a zone
// per message.
var zones [2*24*60 + 1]atomic.Pointer[time.Location]

func fixedZone(offMin int) *time.Location {
	if offMin == 0 {
		return time.UTC
	}
	z := &zones[offMin+24*60]
	if l := z.Load(); l != nil {
		return l
	}
	l := time.FixedZone("", offMin*60)
	z.Store(l)
	return l
}
