package message

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// scanPrefixBytewise is the 19-byte "YYYY-MM-DDThh:mm:ss" check of
// scanRFC3339 one byte at a time, as it was before the word-at-a-time
// version: the reference for TestScanRFC3339WordsAsBytes.
func scanPrefixBytewise(b []byte) (t tsFields, ok bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return t, false
	}
	var ok1, ok2, ok3, ok4, ok5, ok6 bool
	t.year, ok1 = digits(b[0:4])
	t.month, ok2 = digits(b[5:7])
	t.day, ok3 = digits(b[8:10])
	t.hour, ok4 = digits(b[11:13])
	t.min, ok5 = digits(b[14:16])
	t.sec, ok6 = digits(b[17:19])
	ok = ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && t.month >= 1 && t.month <= 12 &&
		t.day >= 1 && t.day <= daysIn(t.month, t.year) && t.hour <= 23 && t.min <= 59 && t.sec <= 59
	return t, ok
}

// checkScanAsBytes fails t unless scanRFC3339 gives b the verdict and
// the fields scanPrefixBytewise does.
func checkScanAsBytes(t *testing.T, b []byte) {
	t.Helper()
	var got tsFields
	n := scanRFC3339(b, 6, true, &got)
	want, ok := scanPrefixBytewise(b)
	if (n > 0) != ok {
		t.Fatalf("%q: scanRFC3339 = %d, bytewise ok = %v", b, n, ok)
	}
	if ok && (got.year != want.year || got.month != want.month || got.day != want.day ||
		got.hour != want.hour || got.min != want.min || got.sec != want.sec) {
		t.Fatalf("%q: fields %+v, bytewise %+v", b, got, want)
	}
}

// TestScanRFC3339WordsAsBytes: every byte value at every position of the
// 19-byte prefix gives the same verdict and fields as the byte-at-a-time
// check (a borrow or carry between the 8-byte lanes would show here).
func TestScanRFC3339WordsAsBytes(t *testing.T) {
	for _, base := range []string{"2003-10-11T22:14:15Z", "1999-12-31T23:59:59Z", "2024-02-29T00:00:00Z", "2000-01-01T09:09:09Z"} {
		for pos := range 19 {
			for c := range 256 {
				b := []byte(base)
				b[pos] = byte(c)
				checkScanAsBytes(t, b)
			}
		}
	}
}

// TestScanRFC3339Calendar: every month and day number around the
// calendar's bounds, in leap and common years, with the time's fields at
// their bounds, gives the byte-at-a-time verdict and fields.
func TestScanRFC3339Calendar(t *testing.T) {
	checked := 0
	for _, year := range []int{0, 1900, 1999, 2000, 2023, 2024, 2100, 9999} {
		for month := range 14 {
			for day := range 33 {
				for _, hms := range [][3]int{{0, 0, 0}, {23, 59, 59}, {24, 0, 0}, {0, 60, 0}, {0, 0, 60}, {19, 9, 30}} {
					b := fmt.Appendf(nil, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, month, day, hms[0], hms[1], hms[2])
					checkScanAsBytes(t, b)
					checked++
				}
			}
		}
	}
	if checked != 8*14*33*6 {
		t.Fatalf("checked %d", checked)
	}
}

// TestFracDigits checks the word-at-a-time fraction reader against a
// digit-at-a-time one on random runs of digits followed by the bytes
// that could upset it (below '0', just above '9', 0xFA and above, whose
// +6 carries), at every length around 8 and every max.
func TestFracDigits(t *testing.T) {
	ref := func(b []byte, max int) (int, int) {
		n, v := 0, 0
		for n < len(b) && isDigit(b[n]) && n < max {
			v = v*10 + int(b[n]-'0')
			n++
		}
		if n == 0 || (n < len(b) && isDigit(b[n])) {
			return 0, 0
		}
		return n, v
	}
	others := []byte{'Z', '+', '-', ' ', '/', ':', '.', 0, 0x2A, 0x2F, 0x3A, 0x3F, 0x7F, 0x80, 0xF9, 0xFA, 0xFF}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := make([]byte, rng.IntN(14))
		for i := range b {
			if rng.IntN(4) > 0 {
				b[i] = '0' + byte(rng.IntN(10))
			} else {
				b[i] = others[rng.IntN(len(others))]
			}
		}
		max := 1 + rng.IntN(9)
		n, v := fracDigits(b, max)
		if wn, wv := ref(b, max); n != wn || v != wv {
			t.Fatalf("fracDigits(%q, %d) = %d, %d; want %d, %d", b, max, n, v, wn, wv)
		}
	}
	for _, tc := range []struct {
		in     string
		max    int
		n, val int
	}{
		{"99999999Z", 9, 8, 99999999},
		{"123456789Z", 9, 9, 123456789},
		{"1234567Z", 6, 0, 0},
		{"000003-07:00", 6, 6, 3},
		{"1\xffxxxxxx", 6, 1, 1},
	} {
		if n, v := fracDigits([]byte(tc.in), tc.max); n != tc.n || v != tc.val {
			t.Errorf("fracDigits(%q, %d) = %d, %d; want %d, %d", tc.in, tc.max, n, v, tc.n, tc.val)
		}
	}
}
