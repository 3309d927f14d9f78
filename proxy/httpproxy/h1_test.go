package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseRequest(t *testing.T) {
	// f parses in (a whole head; "|" stands for CRLF) and checks the
	// error, and for a valid head a summary of what was recorded.
	f := func(in string, wantErr error, want string) {
		t.Helper()
		b := []byte(strings.ReplaceAll(in, "|", "\r\n"))
		var h head
		err := parseRequest(b, &h)
		if !errors.Is(err, wantErr) {
			t.Errorf("%q: err %v, want %v", in, err, wantErr)
			return
		}
		if err != nil {
			return
		}
		got := string(h.method.of(b)) + " " + string(h.target.of(b)) + " 1." + string(rune('0'+h.minor)) +
			" host=" + string(h.host.of(b)) + " cl=" + string(appendInt(nil, max(h.contentLength, 0))) +
			" chunked=" + boolStr(h.chunked) + " close=" + boolStr(h.connClose) + " ka=" + boolStr(h.connKeepAlive) +
			" up=" + string(h.upgrade.of(b)) + " expect=" + boolStr(h.expect100)
		if got != want || h.n != len(b) {
			t.Errorf("%q:\n got %s (n %d)\nwant %s (n %d)", in, got, h.n, want, len(b))
		}
	}
	// Valid heads.
	f("GET / HTTP/1.1|Host: a||", nil, "GET / 1.1 host=a cl=0 chunked=0 close=0 ka=0 up= expect=0")
	f("GET /x?y=1 HTTP/1.1|host:a.example:80||", nil, "GET /x?y=1 1.1 host=a.example:80 cl=0 chunked=0 close=0 ka=0 up= expect=0")
	f("GET / HTTP/1.0||", nil, "GET / 1.0 host= cl=0 chunked=0 close=0 ka=0 up= expect=0")
	f("GET / HTTP/1.0|Connection: Keep-Alive||", nil, "GET / 1.0 host= cl=0 chunked=0 close=0 ka=1 up= expect=0")
	f("POST / HTTP/1.1|Host: a|Content-Length: 5||", nil, "POST / 1.1 host=a cl=5 chunked=0 close=0 ka=0 up= expect=0")
	f("POST / HTTP/1.1|Host: a|Content-Length: 5, 5|Content-Length:5||", nil, "POST / 1.1 host=a cl=5 chunked=0 close=0 ka=0 up= expect=0")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: Chunked |Expect: 100-continue||", nil, "POST / 1.1 host=a cl=0 chunked=1 close=0 ka=0 up= expect=1")
	f("GET /ws HTTP/1.1|Host: a|Connection: keep-alive, Upgrade|Upgrade: websocket||", nil, "GET /ws 1.1 host=a cl=0 chunked=0 close=0 ka=1 up=websocket expect=0")
	f("GET / HTTP/1.1|Host: a|Connection: close, X-Secret|X-Secret: 1|X: \t spaced \t||", nil, "GET / 1.1 host=a cl=0 chunked=0 close=1 ka=0 up= expect=0")
	f("OPTIONS * HTTP/1.1|Host: a||", nil, "OPTIONS * 1.1 host=a cl=0 chunked=0 close=0 ka=0 up= expect=0")
	f("GET http://a/b HTTP/1.1|Host: a|X: caf\xc3\xa9||", nil, "GET http://a/b 1.1 host=a cl=0 chunked=0 close=0 ka=0 up= expect=0")
	// Request smuggling vectors and other malformed heads.
	f("POST / HTTP/1.1|Host: a|Content-Length: 5|Transfer-Encoding: chunked||", errCLAndTE, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked|Content-Length: 5||", errCLAndTE, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: 5|Content-Length: 6||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: 5, 6||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: 5,||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: +5||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: -1||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: 0x10||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: ||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: 1 2||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Content-Length: 99999999999999999999||", errBadCL, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: gzip, chunked||", errBadTE, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked, chunked||", errBadTE, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked|Transfer-Encoding: chunked||", errBadTE, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: xchunked||", errBadTE, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding: identity||", errBadTE, "")
	f("POST / HTTP/1.0|Transfer-Encoding: chunked||", errBadTE, "")
	f("POST / HTTP/1.1|Host: a|Transfer-Encoding : chunked||", errBadField, "")
	f("POST / HTTP/1.1|Host: a|Content-Length : 5||", errBadField, "")
	f("GET / HTTP/1.1|Host: a|X: 1| folded||", errObsFold, "")
	f("GET / HTTP/1.1|Host: a|X: 1|\tfolded||", errObsFold, "")
	f("GET / HTTP/1.1|Host: a|X: a\rb||", errBadField, "")
	f("GET / HTTP/1.1|Host: a|X: a\x00b||", errBadField, "")
	f("GET / HTTP/1.1|Host: a|X: a\x7fb||", errBadField, "")
	f("GET / HTTP/1.1|Host: a\nX: 1||", errBareLF, "")
	f("GET / HTTP/1.1\nHost: a||", errBareLF, "")
	f("GET / HTTP/1.1|: empty name||", errBadField, "")
	f("GET / HTTP/1.1|Host: a|No colon||", errBadField, "")
	f("GET / HTTP/1.1|Host: a|X(y): 1||", errBadField, "")
	f("GET / HTTP/1.1||", errBadHost, "")
	f("GET / HTTP/1.1|Host: a|Host: b||", errBadHost, "")
	f("GET / HTTP/1.1|Host: a/b||", errBadHost, "")
	f("GET / HTTP/1.1|Host: a b||", errBadHost, "")
	f("GET / HTTP/1.1|Host: user@a||", errBadHost, "")
	f("PRI * HTTP/2.0||SM||", errVersion, "")
	f("GET / HTTP/2.0|Host: a||", errVersion, "")
	f("GET / HTTP/1.10|Host: a||", errBadLine, "")
	f("GET / http/1.1|Host: a||", errBadLine, "")
	f("GET  / HTTP/1.1|Host: a||", errBadLine, "")
	f("GET / HTTP/1.1 |Host: a||", errBadLine, "")
	f("GET /a\x01 HTTP/1.1|Host: a||", errBadLine, "")
	f("G(T / HTTP/1.1|Host: a||", errBadLine, "")
	f(" GET / HTTP/1.1|Host: a||", errBadLine, "")
	f("GET / HTTP/1.1|Host: a|Connection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q||", errBadConn, "")
	f("GET / HTTP/1.1|Host: a|"+strings.Repeat("X: 1|", maxFields)+"|", errTooLarge, "")
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func TestParseResponse(t *testing.T) {
	f := func(in string, wantErr error, want string) {
		t.Helper()
		b := []byte(strings.ReplaceAll(in, "|", "\r\n"))
		var h head
		err := parseResponse(b, &h)
		if !errors.Is(err, wantErr) {
			t.Errorf("%q: err %v, want %v", in, err, wantErr)
			return
		}
		if err != nil {
			return
		}
		got := string(appendInt(nil, int64(h.status))) + " " + string(h.reason.of(b)) + " cl=" + string(appendInt(nil, max(h.contentLength, -1+1))) +
			" te=" + boolStr(h.te) + " chunked=" + boolStr(h.chunked) + " close=" + boolStr(h.connClose)
		if h.contentLength == contentLenNone {
			got += " nocl"
		}
		if got != want {
			t.Errorf("%q:\n got %s\nwant %s", in, got, want)
		}
	}
	f("HTTP/1.1 200 OK|Content-Length: 5||", nil, "200 OK cl=5 te=0 chunked=0 close=0")
	f("HTTP/1.1 204||", nil, "204  cl=0 te=0 chunked=0 close=0 nocl")
	f("HTTP/1.1 404 Not  Found|Connection: close||", nil, "404 Not  Found cl=0 te=0 chunked=0 close=1 nocl")
	f("HTTP/1.0 200 OK||", nil, "200 OK cl=0 te=0 chunked=0 close=0 nocl")
	// Transfer-Encoding wins over Content-Length, which is then dropped.
	f("HTTP/1.1 200 OK|Content-Length: 5|Transfer-Encoding: chunked||", nil, "200 OK cl=0 te=1 chunked=1 close=0 nocl")
	f("HTTP/1.1 200 OK|Transfer-Encoding: gzip, chunked||", nil, "200 OK cl=0 te=1 chunked=1 close=0 nocl")
	f("HTTP/1.1 200 OK|Transfer-Encoding: gzip||", nil, "200 OK cl=0 te=1 chunked=0 close=0 nocl")
	f("HTTP/1.1 200 OK|Transfer-Encoding: chunked, gzip||", errBadResponse, "")
	f("HTTP/1.1 200 OK|Transfer-Encoding: chunked|Transfer-Encoding: gzip||", errBadResponse, "")
	f("HTTP/1.1 200 OK|Content-Length: 5|Content-Length: 7||", errBadResponse, "")
	f("HTTP/1.1 20 OK||", errBadResponse, "")
	f("HTTP/1.1 099 X||", errBadResponse, "")
	f("HTTP/1.1 200OK||", errBadResponse, "")
	f("HTTP/2 200 OK||", errBadResponse, "")
	f("HTTP/1.1 200 OK|X: a\x00||", errBadResponse, "")
	f("HTTP/1.1 200 O\x01K||", errBadResponse, "")
}

func TestChunked(t *testing.T) {
	// f sends in ("|" is CRLF) through copyChunked, read whole and one
	// byte at a time, and checks the re-framed output, the decoded data
	// and the error.
	f := func(in, wantFramed, wantData string, wantErr error) {
		t.Helper()
		in = strings.ReplaceAll(in, "|", "\r\n")
		wantFramed = strings.ReplaceAll(wantFramed, "|", "\r\n")
		for _, decode := range []bool{false, true} {
			for _, oneByte := range []bool{false, true} {
				var rd io.Reader = strings.NewReader(in)
				if oneByte {
					rd = iotest.OneByteReader(rd)
				}
				src := &rbuf{rd: rd, b: make([]byte, 64), max: 64}
				var out bytes.Buffer
				dst := &wbuf{w: &out, b: make([]byte, 0, 16)}
				n, err := copyChunked(dst, src, decode, 100)
				if err == nil {
					err = dst.flush()
				}
				if !errors.Is(err, wantErr) {
					t.Errorf("%q decode=%v oneByte=%v: err %v, want %v", in, decode, oneByte, err, wantErr)
					continue
				}
				if err != nil {
					continue
				}
				want := wantFramed
				if decode {
					want = wantData
				}
				if out.String() != want || n != int64(len(wantData)) {
					t.Errorf("%q decode=%v: got %q (%d data bytes), want %q (%d)", in, decode, out.String(), n, want, len(wantData))
				}
			}
		}
	}
	f("5|hello|0||", "5|hello|0||", "hello", nil)
	f("5;ext=1|hello|6 ; x|, wor!|0||rest", "5|hello|6|, wor!|0||", "hello, wor!", nil)
	f("A|0123456789|0|X-Sum: 42||", "a|0123456789|0|X-Sum: 42||", "0123456789", nil)
	f("0||", "0||", "", nil)
	f("zz|", "", "", errBadChunk)
	f("|", "", "", errBadChunk)
	f("-5|hello|0||", "", "", errBadChunk)
	f("5 x|hello|0||", "", "", errBadChunk)
	f("5\nhello|0||", "", "", errBadChunk)
	f("5;a\x00b|hello|0||", "", "", errBadChunk)
	f("1000000000000000|", "", "", errBadChunk) // 16 hex digits
	f("5|helloX|0||", "", "", errBadChunk)
	f("5|hello0||", "", "", errBadChunk)
	f("5|hello|0|Bad trailer||", "", "", errBadChunk)
	f("5|hello|0|X: "+strings.Repeat("a", 100)+"||", "", "", errBadChunk)
	f("5|hel", "", "", io.ErrUnexpectedEOF)
	f("5|hello|0|", "", "", io.ErrUnexpectedEOF)
	// A chunk over maxOutChunk is split (here maxOutChunk is 4).
	defer func(n int64) { maxOutChunk = n }(maxOutChunk)
	maxOutChunk = 4
	f("a|0123456789|4|abcd|0||", "4|0123|4|4567|2|89|4|abcd|0||", "0123456789abcd", nil)
	f("8|0123456789|0||", "", "", errBadChunk)
}

// Regression: findHeadEnd resuming a scan must find an end that straddles
// the previous read's boundary.
func TestFindHeadEndResume(t *testing.T) {
	in := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	for cut := 1; cut < len(in); cut++ {
		scan := 0
		if findHeadEnd(in[:cut], scan) >= 0 {
			continue
		}
		scan = cut
		if got := findHeadEnd(in, scan); got != len(in) {
			t.Errorf("cut %d: end %d, want %d", cut, got, len(in))
		}
	}
}

func TestHostRouting(t *testing.T) {
	f := func(pattern, host string, want bool) {
		t.Helper()
		if got := matchHost(pattern, hostOnly([]byte(host))); got != want {
			t.Errorf("matchHost(%q, %q) = %v, want %v", pattern, host, got, want)
		}
	}
	f("api.example.com", "API.example.com:8080", true)
	f("api.example.com", "api.example.com.", true)
	f("api.example.com", "xapi.example.com", false)
	f("*.web.example.com", "a.web.example.com", true)
	f("*.web.example.com", "a.b.web.example.com", false)
	f("*.web.example.com", "web.example.com", false)
	f("::1", "[::1]:80", true)
	f("::1", "::1", true) // as net.SplitHostPort: too many colons, unchanged
	f("a", "a:1:2", false)
}
