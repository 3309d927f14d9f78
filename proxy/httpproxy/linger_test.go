package httpproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"wharf/internal/testpki"
)

// dialSmallWindow dials addr with a 4 KiB receive buffer, so what the
// server sends while the client is not reading waits in the server's
// send queue.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// TestH2GoAwayNotLostToReset guards against a connection error's GOAWAY
// being thrown away: a client that sent more than wharf read before it
// ended the connection, and has not read all wharf sent (here a
// response's first 64 KiB, its stream window), must still get the
// GOAWAY and its code, then the end of the stream, not a TCP reset
// (closing a socket with unread input resets it and drops what is
// still queued to send). Before, the GOAWAY was written and the socket
// closed at once.
func TestH2GoAwayNotLostToReset(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20)
	r := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(big) }), "")
	f := func(name string, want http2.ErrCode, trigger func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer)) {
		t.Helper()
		c := tls.Client(dialSmallWindow(t, r.addr), &tls.Config{RootCAs: r.ca.Pool(), ServerName: "site.example.com", NextProtos: []string{"h2"}})
		if err := c.Handshake(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		bw := bufio.NewWriterSize(c, 64<<10)
		fr := http2.NewFramer(bw, c)
		var hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		io.WriteString(bw, http2.ClientPreface)
		fr.WriteSettings()
		for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "site.example.com"}, {":path", "/big"}} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
		if err := bw.Flush(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The response fills the stream's window, most of it queued at
		// wharf's end behind a receive buffer that is full.
		time.Sleep(200 * time.Millisecond)
		trigger(fr, enc, &hbuf)
		// More than wharf will read: 64 KiB of PINGs after the frames
		// that end the connection.
		for range 64 << 10 / 17 {
			fr.WritePing(false, [8]byte{})
		}
		bw.Flush()
		time.Sleep(200 * time.Millisecond)
		got, seen, err := readGoAway(fr)
		if !seen {
			t.Errorf("%s: no GOAWAY before %v", name, err)
			return
		}
		if got != want {
			t.Errorf("%s: GOAWAY %v, want %v", name, got, want)
		}
		// Then the end: close_notify, not a reset.
		for err == nil {
			_, err = fr.ReadFrame()
		}
		if err != io.EOF {
			t.Errorf("%s: after the GOAWAY: %v, want EOF", name, err)
		}
	}
	f("rapid reset", http2.ErrCodeEnhanceYourCalm, func(fr *http2.Framer, _ *hpack.Encoder, _ *bytes.Buffer) {
		for range h2MaxResetsPerSec + 10 {
			fr.WriteRSTStream(1, http2.ErrCodeCancel)
		}
	})
	f("HPACK bomb", http2.ErrCodeEnhanceYourCalm, func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer) {
		hbuf.Reset()
		for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "site.example.com"}, {":path", "/"}, {"x-big", strings.Repeat("b", 4000)}} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		blk := append(bytes.Clone(hbuf.Bytes()), bytes.Repeat([]byte{0x80 | 62}, 60000)...) // each byte: the 4000-byte entry again
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:16384], EndStream: true})
		for rest := blk[16384:]; len(rest) > 0; {
			n := min(len(rest), 16384)
			fr.WriteContinuation(3, n == len(rest), rest[:n])
			rest = rest[n:]
		}
	})
	f("protocol error", http2.ErrCodeProtocol, func(fr *http2.Framer, _ *hpack.Encoder, _ *bytes.Buffer) {
		fr.WriteRSTStream(99, http2.ErrCodeCancel) // a stream never opened
	})
}

// TestH1ClosingAnswerNotLostToReset guards against the last answer on
// a connection being thrown away when the client is still sending: one
// that pipelined a request for a 64 KiB response and then a bad request
// (wharf's 400; 431 and 505 close the same way) or a POST the server
// answers 413 before reading its body, goes on sending (128,000 bytes in
// 64-byte writes) and reads late through a small receive buffer must
// get both answers, then the end of the stream, not a TCP reset. Before,
// wharf's own answers were followed by at most 64 reads before the close
// (64 TLS records, or a few KiB in small segments), and a server's early
// answer by none: the close with input unread reset the connection,
// which dropped what was still queued to send. Both engines, and
// HTTP/1.1 over TLS.
func TestH1ClosingAnswerNotLostToReset(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	var conns atomic.Int64
	backend := rawServer(t, &conns, func(line string) (string, bool) {
		if strings.HasPrefix(line, "POST") { // the body stays unread
			return "HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + big, false
	})
	f := func(t *testing.T, c net.Conn, second string, want int) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"+second)
			// The server has answered the POST and closed by then: the
			// first body bytes wharf forwards find it gone.
			time.Sleep(100 * time.Millisecond)
			chunk := bytes.Repeat([]byte("a"), 64)
			for range 2000 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		time.Sleep(300 * time.Millisecond) // wharf answers into a full window
		br := bufio.NewReader(c)
		for _, code := range []int{200, want} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the %d answer: %v", code, err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != code || err != nil {
				t.Fatalf("answer %d (%d bytes, %v), want %d", resp.StatusCode, n, err, code)
			}
		}
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after the %d: %d bytes, %v, want EOF", want, n, err)
		}
		<-done
	}
	cases := func(t *testing.T, dial func(t *testing.T) net.Conn) {
		t.Run("400", func(t *testing.T) { f(t, dial(t), "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400) })
		t.Run("413", func(t *testing.T) {
			f(t, dial(t), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 128000\r\n\r\n", 413)
		})
	}
	frontend := func(t *testing.T, extra string) string {
		r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
%s
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, extra, backend))
		return r.f.Addrs()[0].String()
	}
	bothEngines(t, func(t *testing.T, engine string) {
		addr := frontend(t, fmt.Sprintf("engine = %q", engine))
		cases(t, func(t *testing.T) net.Conn { return dialSmallWindow(t, addr) })
	})
	t.Run("tls", func(t *testing.T) {
		ca := testpki.NewCA(t, "test CA")
		_, certFile, keyFile := ca.ServerCert(t, "site.example.com")
		addr := frontend(t, fmt.Sprintf("tls_cert = %q\ntls_key = %q", certFile, keyFile))
		cases(t, func(t *testing.T) net.Conn {
			return tls.Client(dialSmallWindow(t, addr), &tls.Config{RootCAs: ca.Pool(), ServerName: "site.example.com", NextProtos: []string{"http/1.1"}})
		})
	})
}

// readGoAway reads frames until a GOAWAY, returning its code, or until
// an error (seen false), returning it.
func readGoAway(fr *http2.Framer) (code http2.ErrCode, seen bool, err error) {
	for {
		fm, err := fr.ReadFrame()
		if err != nil {
			return 0, false, err
		}
		if ga, ok := fm.(*http2.GoAwayFrame); ok {
			return ga.ErrCode, true, nil
		}
	}
}
