package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// twoPieces reads a, then b, as two reads would deliver them.
type twoPieces struct{ a, b []byte }

func (t *twoPieces) Read(p []byte) (int, error) {
	if len(t.a) > 0 {
		n := copy(p, t.a)
		t.a = t.a[n:]
		return n, nil
	}
	if len(t.b) > 0 {
		n := copy(p, t.b)
		t.b = t.b[n:]
		return n, nil
	}
	return 0, io.EOF
}

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
		"5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
		"1000000000000000\r\n",
	} {
		f.Add([]byte(s), uint8(len(s)/2))
	}
}

// FuzzHead: the head parsers never panic, spans stay inside the head, a
// parsed request has one framing, and the head's end is found the same
// whether the bytes come in one read or two.
func FuzzHead(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		c := min(int(cut), len(data))
		whole := findHeadEnd(data, 0)
		split := findHeadEnd(data[:c], 0)
		if split < 0 {
			split = findHeadEnd(data, c)
		}
		if whole != split {
			t.Fatalf("head end %d in one piece, %d in two (cut %d)", whole, split, c)
		}
		if whole < 0 {
			return
		}
		b := data[:whole]
		var h head
		if err := parseRequest(b, &h); err == nil {
			if h.n != len(b) {
				t.Fatalf("request head length %d, want %d", h.n, len(b))
			}
			if h.chunked && h.contentLength != contentLenNone {
				t.Fatal("request with both Content-Length and chunked accepted")
			}
			for _, fl := range h.fields {
				fl.name.of(b)
				fl.value.of(b)
				if bytes.ContainsAny(fl.value.of(b), "\r\n\x00") {
					t.Fatalf("field value %q holds CR, LF or NUL", fl.value.of(b))
				}
			}
			h.method.of(b)
			h.target.of(b)
		}
		if err := parseResponse(b, &h); err == nil {
			if h.n != len(b) || h.status < 100 || h.status > 999 {
				t.Fatalf("response n=%d status=%d", h.n, h.status)
			}
			h.reason.of(b)
		}
	})
}

// FuzzChunked: the chunked reader gives the same result in one read or
// two, and what it writes re-framed decodes to the same data.
func FuzzChunked(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		c := min(int(cut), len(data))
		run := func(rd io.Reader, decode bool) ([]byte, int64, error) {
			src := &rbuf{rd: rd, b: make([]byte, 16), max: 1 << 20}
			var out bytes.Buffer
			dst := &wbuf{w: &out, b: make([]byte, 0, 8)}
			n, err := copyChunked(dst, src, decode, 1024)
			if err == nil {
				err = dst.flush()
			}
			return out.Bytes(), n, err
		}
		o1, n1, e1 := run(bytes.NewReader(data), false)
		o2, n2, e2 := run(&twoPieces{a: data[:c], b: data[c:]}, false)
		if !errors.Is(e1, e2) && !errors.Is(e2, e1) || n1 != n2 || e1 == nil && !bytes.Equal(o1, o2) {
			t.Fatalf("one read: %q %d %v; two: %q %d %v", o1, n1, e1, o2, n2, e2)
		}
		if e1 != nil {
			return
		}
		d1, dn, de := run(bytes.NewReader(data), true)
		d2, _, de2 := run(bytes.NewReader(o1), true)
		if de != nil || de2 != nil || dn != n1 || !bytes.Equal(d1, d2) {
			t.Fatalf("decoded %q (%v), re-framed then decoded %q (%v)", d1, de, d2, de2)
		}
	})
}
