package proxyproto

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	f := func(in string, wantSrc, wantDst string, wantLocal bool, wantN int, wantErr error) {
		t.Helper()
		h, n, err := Parse([]byte(in))
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Errorf("Parse(%q) err = %v, want %v", in, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			return
		}
		if n != wantN || h.Local != wantLocal || (!wantLocal && (h.Source.String() != wantSrc || h.Dest.String() != wantDst)) {
			t.Errorf("Parse(%q) = %+v, %d; want %s -> %s local=%v n=%d", in, h, n, wantSrc, wantDst, wantLocal, wantN)
		}
	}
	v1 := "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
	f(v1+"GET /", "192.0.2.1:56324", "198.51.100.2:443", false, len(v1), nil)
	f("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", "[2001:db8::1]:1", "[2001:db8::2]:65535", false, 44, nil)
	f("PROXY UNKNOWN\r\n", "", "", true, 15, nil)
	f("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", "", "", true, 59, nil)
	f("PROXY TCP4 192.0.2.1 198.51.100.2 56324", "", "", false, 0, ErrNeedMore)
	f("PRO", "", "", false, 0, ErrNeedMore)
	f("", "", "", false, 0, ErrNeedMore)
	f("GET / HTTP/1.1\r\n", "", "", false, 0, ErrNotProxy)
	f("PROXZ", "", "", false, 0, ErrNotProxy)
	f("\x16\x03\x01", "", "", false, 0, ErrNotProxy)
	f("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", "", "", false, 0, ErrInvalid)
	f("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", "", "", false, 0, ErrInvalid)
	f("PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", "", "", false, 0, ErrInvalid)
	f("PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n", "", "", false, 0, ErrInvalid)
	f("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", "", "", false, 0, ErrInvalid)
	f("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", "", "", false, 0, ErrInvalid)
	f("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", "", "", false, 0, ErrInvalid)
	f("PROXY TCP4 "+string(make([]byte, 100)), "", "", false, 0, ErrInvalid)

	src := netip.MustParseAddrPort("192.0.2.1:1000")
	dst := netip.MustParseAddrPort("198.51.100.2:443")
	v2 := string(AppendV2(nil, src, dst))
	f(v2+"payload", "192.0.2.1:1000", "198.51.100.2:443", false, 28, nil)
	f(v2[:27], "", "", false, 0, ErrNeedMore)
	f(v2[:5], "", "", false, 0, ErrNeedMore)
	v26 := string(AppendV2(nil, netip.MustParseAddrPort("[2001:db8::1]:5"), netip.MustParseAddrPort("[::1]:6")))
	f(v26, "[2001:db8::1]:5", "[::1]:6", false, 52, nil)
	f(string(AppendV2Local(nil)), "", "", true, 16, nil)
	bad := []byte(v2)
	bad[12] = 0x11 // version 1 in a v2 header
	f(string(bad), "", "", false, 0, ErrInvalid)
	bad[12], bad[13] = 0x21, 0x31 // AF_UNIX
	f(string(bad), "", "", false, 0, ErrInvalid)
	bad[13], bad[15] = 0x11, 4 // address block too short
	f(string(bad[:20]), "", "", false, 0, ErrInvalid)
	f("\r\n\r\n\x00\r\nQUIX\n", "", "", false, 0, ErrNotProxy)
	f("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", "", "", false, 0, ErrInvalid)
}

func TestAppendRoundTrip(t *testing.T) {
	f := func(src, dst string, wantV1 string) {
		t.Helper()
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		b1 := AppendV1(nil, s, d)
		if string(b1) != wantV1 {
			t.Errorf("AppendV1(%s, %s) = %q, want %q", src, dst, b1, wantV1)
		}
		for _, b := range [][]byte{b1, AppendV2(nil, s, d)} {
			h, n, err := Parse(b)
			if err != nil || n != len(b) || h.Source.String() != s.String() || h.Dest.String() != d.String() {
				t.Errorf("round trip %q: %+v %d %v", b, h, n, err)
			}
		}
	}
	f("10.0.0.1:1234", "10.0.0.2:80", "PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\n")
	f("[2001:db8::1]:1234", "[2001:db8::2]:80", "PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n")
	if got := string(AppendV1(nil, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("[::1]:2"))); got != "PROXY UNKNOWN\r\n" {
		t.Errorf("mixed families v1 = %q", got)
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 128)
	s, d := netip.MustParseAddrPort("10.0.0.1:1234"), netip.MustParseAddrPort("10.0.0.2:80")
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendV1(buf[:0], s, d)
		buf = AppendV2(buf[:0], s, d)
		_, _, _ = Parse(buf)
	}); n != 0 {
		t.Errorf("%v allocs per AppendV1+AppendV2+Parse(v2), want 0", n)
	}
}

// FuzzParse checks Parse never panics, never claims more bytes than it
// got, and gives the same answer when the input arrives in two pieces
// (ErrNeedMore on the first piece, then the full result).
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello"), 10)
	f.Add([]byte("PROXY UNKNOWN\r\n"), 3)
	f.Add(AppendV2(nil, netip.MustParseAddrPort("[2001:db8::1]:5"), netip.MustParseAddrPort("[::1]:6")), 20)
	f.Add(AppendV2Local(nil), 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		h, n, err := Parse(b)
		if err == nil && (n <= 0 || n > len(b)) {
			t.Fatalf("n = %d of %d", n, len(b))
		}
		if cut < 0 {
			cut = -cut
		}
		if len(b) == 0 {
			return
		}
		cut %= len(b)
		_, _, err1 := Parse(b[:cut])
		if err == nil && cut < n && !errors.Is(err1, ErrNeedMore) {
			t.Fatalf("prefix %d of a %d-byte header: %v, want ErrNeedMore", cut, n, err1)
		}
		if err == nil {
			h2, n2, err2 := Parse(b[:n])
			if err2 != nil || n2 != n || h2 != h {
				t.Fatalf("exact header re-parse differs: %+v %d %v", h2, n2, err2)
			}
		}
	})
}
