package httpproxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 limits the README states, each checked at its boundary: one
// step inside is served, one step outside is refused as documented.

// TestH2ContinuationLimitBoundary: a header block in exactly 128
// CONTINUATION frames (README, docs: "GOAWAY after 128 frames") is a request like any
// other; one in 129 ends the connection with GOAWAY ENHANCE_YOUR_CALM,
// counted as reason="header_block_size". TestH2ContinuationFlood only
// checks that an endless block is cut off somewhere.
func TestH2ContinuationLimitBoundary(t *testing.T) {
	r := startH2(t, h2echo, "")
	f := func(conts int, wantStatus string, wantGoAway bool) {
		t.Helper()
		x := dialRawH2(t, r)
		// Each fragment holds some of the block: split into conts+1 parts.
		blk := x.block("/conts", "x-pad", strings.Repeat("p", 600))
		parts := conts + 1
		step := len(blk) / parts
		if step == 0 {
			t.Fatalf("a %d-byte block cannot fill %d frames", len(blk), parts)
		}
		if err := x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:step], EndStream: true}); err != nil {
			t.Fatal(err)
		}
		rest := blk[step:]
		for i := 1; i <= conts; i++ {
			n := step
			if i == conts {
				n = len(rest)
			}
			if err := x.fr.WriteContinuation(1, i == conts, rest[:n]); err != nil {
				t.Fatalf("%d CONTINUATION frames: writing the %dth: %v", conts, i, err)
			}
			rest = rest[n:]
		}
		status, code, goAway := h2StatusOrGoAway(t, x, 1)
		switch {
		case wantGoAway && !goAway:
			t.Errorf("%d CONTINUATION frames: answered %s, want GOAWAY ENHANCE_YOUR_CALM", conts, status)
		case wantGoAway && code != http2.ErrCodeEnhanceYourCalm:
			t.Errorf("%d CONTINUATION frames: GOAWAY %v, want ENHANCE_YOUR_CALM", conts, code)
		case !wantGoAway && goAway:
			t.Errorf("%d CONTINUATION frames: GOAWAY %v, want the request served", conts, code)
		case !wantGoAway && status != wantStatus:
			t.Errorf("%d CONTINUATION frames: status %q, want %q", conts, status, wantStatus)
		}
	}
	const documented = 128 // the README's figure, not h2MaxContinuations: a change of it must fail here
	f(documented, "200", false)
	if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "header_block_size"); n != 0 {
		t.Errorf("header_block_size counted %v after a block within the limit, want 0", n)
	}
	f(documented+1, "", true)
	if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "header_block_size"); n != 1 {
		t.Errorf("header_block_size counted %v, want 1", n)
	}
}

// h2StatusOrGoAway reads frames until the response head of stream id
// (its :status) or a GOAWAY (its code).
func h2StatusOrGoAway(t *testing.T, x *rawH2, id uint32) (status string, code http2.ErrCode, goAway bool) {
	t.Helper()
	dec := hpack.NewDecoder(4096, nil)
	for {
		fm, err := x.fr.ReadFrame()
		if err != nil {
			t.Fatalf("neither an answer to stream %d nor a GOAWAY before: %v", id, err)
		}
		switch fm := fm.(type) {
		case *http2.GoAwayFrame:
			return "", fm.ErrCode, true
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(fm.HeaderBlockFragment())
			if err != nil {
				t.Fatalf("response head: %v", err)
			}
			if fm.StreamID != id {
				continue
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					return hf.Value, 0, false
				}
			}
			t.Fatalf("a response head without :status: %v", fields)
		case *http2.RSTStreamFrame:
			if fm.StreamID == id {
				t.Fatalf("stream %d reset: %v", id, fm.ErrCode)
			}
		}
	}
}

// countingConn counts the bytes written to the TCP connection under a
// TLS client: what wharf's lingering close reads (lingerDrain reads the
// socket, not TLS records).
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// pings is n bytes (rounded down to whole frames) of PING frames.
func pings(n int) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	for b.Len()+17 <= n {
		fr.WritePing(false, [8]byte{})
	}
	return b.Bytes()
}

// h2ProtocolError starts an HTTP/2 connection to r over cc and makes
// a connection error of it (RST_STREAM on a stream never opened: GOAWAY
// PROTOCOL_ERROR), optionally after a request for /big; it returns the
// client side.
func h2ProtocolError(t *testing.T, r *h2rig, cc net.Conn, request bool) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c := tls.Client(cc, &tls.Config{RootCAs: r.ca.Pool(), ServerName: "site.example.com", NextProtos: []string{"h2"}})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	if request {
		var hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "site.example.com"}, {":path", "/big"}} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
		// The response fills the stream's window, most of it queued at
		// wharf's end behind a receive buffer that is full.
		time.Sleep(200 * time.Millisecond)
	}
	if err := fr.WriteRSTStream(99, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// TestH2LingerWithinBounds: the client of a connection ended by a GOAWAY
// that goes on writing for a while, less than the lingering close's
// bounds (here 240 KiB in 700 ms, under 256 KiB and 1 s), before it reads,
// gets the GOAWAY and its code, then the end of the stream, not a reset.
// What wharf sent before (64 KiB of a response) waits in its send queue
// behind a 4 KiB receive buffer, so a reset would take the GOAWAY with
// it. TestH2GoAwayNotLostToReset sends 64 KiB at once, far inside both
// bounds; this one goes near each.
func TestH2LingerWithinBounds(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20)
	r := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(big) }), "")
	cc := &countingConn{Conn: dialSmallWindow(t, r.addr)}
	c, fr := h2ProtocolError(t, r, cc, true)
	from, start := cc.n.Load(), time.Now()
	chunk := pings(8 << 10)
	for cc.n.Load()-from+int64(len(chunk))+64 <= 240<<10 {
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("writing after the connection error (%d bytes in %v): %v", cc.n.Load()-from, time.Since(start), err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	sent, took := cc.n.Load()-from, time.Since(start)
	code, seen, err := readGoAway(fr)
	if !seen {
		t.Fatalf("%d bytes written in %v after the connection error, then no GOAWAY before: %v", sent, took, err)
	}
	if code != http2.ErrCodeProtocol {
		t.Errorf("GOAWAY %v, want PROTOCOL_ERROR", code)
	}
	for err == nil {
		_, err = fr.ReadFrame()
	}
	if err != io.EOF {
		t.Errorf("after the GOAWAY: %v, want EOF", err)
	}
	t.Logf("%d bytes written in %v after the connection error: GOAWAY %v, then EOF", sent, took.Round(time.Millisecond), code)
}

// TestH2LingerBounds: a client that goes on writing after a connection
// error's GOAWAY is cut off at the lingering close's bounds, not held
// for ever: writing fast (8 KiB each 10 ms), after 256 KiB (its writes
// fail once wharf has closed, within one or two writes of the 256 KiB),
// well before 1 s; writing slowly (1 KiB each 50 ms), after 1 s.
func TestH2LingerBounds(t *testing.T) {
	r := startH2(t, h2echo, "")
	f := func(name string, size int, every time.Duration, check func(written int64, after time.Duration) string) {
		t.Helper()
		d := net.Dialer{}
		raw, err := d.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		cc := &countingConn{Conn: raw}
		c, fr := h2ProtocolError(t, r, cc, false)
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: no GOAWAY before: %v", name, err)
			}
			if _, ok := fm.(*http2.GoAwayFrame); ok {
				break
			}
		}
		// wharf reads what comes after the GOAWAY from the socket, not
		// as frames: all of it counts.
		from, start := cc.n.Load(), time.Now()
		chunk := pings(size)
		for time.Since(start) < 3*time.Second {
			written := cc.n.Load() - from
			if _, err := c.Write(chunk); err != nil {
				after := time.Since(start)
				if msg := check(written, after); msg != "" {
					t.Errorf("%s: %s", name, msg)
				}
				t.Logf("%s: cut off after %d bytes written in %v (%v)", name, written, after.Round(time.Millisecond), err)
				return
			}
			time.Sleep(every)
		}
		t.Errorf("%s: still taking input 3 s after the GOAWAY (%d bytes)", name, cc.n.Load()-from)
	}
	f("256 KiB", 8<<10, 10*time.Millisecond, func(written int64, after time.Duration) string {
		// Cut at the write after the one wharf closed on (that one
		// draws the reset); a record is 8 KiB of PINGs and 22 bytes.
		const documented = 256 << 10 // the README's figure, not lingerMaxBytes
		if written < documented || written > documented+3*(8<<10+64) || after >= 900*time.Millisecond {
			return fmt.Sprintf("writes failed after %d bytes in %v, want after 256 KiB to 256 KiB + 3 writes, before 1 s", written, after)
		}
		return ""
	})
	f("1 s", 1<<10, 50*time.Millisecond, func(written int64, after time.Duration) string {
		if after < 900*time.Millisecond || after > 1500*time.Millisecond {
			return fmt.Sprintf("writes failed after %v (%d bytes), want after 1 s (0.9 to 1.5 s)", after, written)
		}
		return ""
	})
}
