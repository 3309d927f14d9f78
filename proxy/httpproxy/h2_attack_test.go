package httpproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Attacks on the HTTP/2 frontend that public CVEs made against other
// proxies, beside TestH2RapidReset and TestH2ContinuationFlood.

// startH2Counting is startH2 with a backend that counts the TCP
// connections wharf opens to it.
func startH2Counting(t *testing.T, extra string) (*h2rig, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	s.Config.ConnState = func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return startH2Before(t, s, extra), &conns
}

// TestH2MadeYouReset guards against CVE-2025-8671: streams the client
// makes wharf reset (here a WINDOW_UPDATE overflowing the stream's
// window) count toward the same 100 a second as its own RST_STREAMs.
func TestH2MadeYouReset(t *testing.T) {
	r, _ := startH2Counting(t, "")
	x := dialRawH2(t, r)
	blk := x.block("/")
	go func() {
		for id := uint32(1); id < 2*2000; id += 2 {
			if x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}) != nil ||
				x.fr.WriteWindowUpdate(id, 1<<31-1) != nil {
				return
			}
		}
	}()
	// The connection ends with a GOAWAY, which reaches us although our
	// frames are still arriving: wharf lingers after it (b57bc19; before,
	// its close could turn into a reset that took the GOAWAY with it).
	x.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := x.fr.ReadFrame()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the connection still open 5 s into 2000 streams reset by wharf")
		}
		if err != nil {
			t.Fatalf("the connection ended without a GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", ga.ErrCode)
			}
			break
		}
	}
	if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "rapid_reset"); n != 1 {
		t.Errorf("rapid_reset counted %v, want 1", n)
	}
}

// TestH2ResetStreamTakesNoServerConnection guards against rapid reset
// turning into a flood of server connections: a stream the client
// resets before its request is sent neither opens a connection to a
// server nor closes an idle pooled one.
func TestH2ResetStreamTakesNoServerConnection(t *testing.T) {
	r, conns := startH2Counting(t, "")
	x := dialRawH2(t, r)
	blk := x.block("/")
	// One request answered first, so the pool holds an idle connection.
	x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true})
	for {
		f, err := x.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamEnded() {
			break
		}
	}
	// 80 streams opened and reset at once: under the 100 a second.
	for id := uint32(3); id < 3+2*80; id += 2 {
		if err := x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if err := x.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	// Some streams may have a connection dialled when the reset came;
	// those go back to the pool, unused.
	if n := conns.Load(); n > 8 {
		t.Errorf("80 streams reset at once opened %d connections to the server, want at most 8", n)
	}
}

// TestH2StreamsPerSource guards against one source holding far more
// requests (and server connections) over HTTP/2 than maxconn_per_ip
// lets it over HTTP/1.1: its streams in flight, over all its
// connections, are capped at maxconn_per_ip; the rest are refused
// (REFUSED_STREAM) and counted.
func TestH2StreamsPerSource(t *testing.T) {
	release := make(chan struct{})
	var inServer atomic.Int64
	r := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		inServer.Add(1)
		<-release
		io.WriteString(w, "ok")
	}), `maxconn_per_ip = 5`)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	refused := make(chan uint32, 16)
	for range 3 {
		x := dialRawH2(t, r)
		for i := range 4 {
			x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: x.block("/"), EndStream: true, EndHeaders: true})
		}
		go func() {
			for {
				f, err := x.fr.ReadFrame()
				if err != nil {
					return
				}
				if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.ErrCode == http2.ErrCodeRefusedStream {
					refused <- rst.StreamID
				}
			}
		}()
	}
	deadline := time.After(5 * time.Second)
	for n := 0; n < 7; n++ {
		select {
		case <-refused:
		case <-deadline:
			t.Fatalf("%d of 12 streams refused, want 7 (maxconn_per_ip 5); %d reached the server", n, inServer.Load())
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := inServer.Load(); n != 5 {
		t.Errorf("%d streams reached the server, want 5", n)
	}
	if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "maxconn_per_ip"); n != 7 {
		t.Errorf("maxconn_per_ip counted %v, want 7", n)
	}
	close(release)
	// The slots are given back when the streams end.
	time.Sleep(200 * time.Millisecond)
	req, _ := http.NewRequest("GET", r.url("/"), nil)
	if resp, body := r.do(t, req); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the streams ended: %d %q", resp.StatusCode, body)
	}
}

// TestH2HPACKBomb: a header block whose bytes decode to a huge list (a
// 4 KB header put in the dynamic table, then referenced by each of 60,000
// more bytes: 240 MB of fields) ends the connection with GOAWAY
// ENHANCE_YOUR_CALM once the list passes 4 x max_header_bytes, instead
// of being decoded whole and answered 431 with the connection kept
// (27 ns a byte: 4 connections held 1.2 cores; audit).
func TestH2HPACKBomb(t *testing.T) {
	r, _ := startH2Counting(t, "")
	x := dialRawH2(t, r)
	blk := x.block("/", "x-big", strings.Repeat("b", 4000)) // indexed: dynamic entry 62
	blk = append(blk, bytes.Repeat([]byte{0x80 | 62}, 60000)...)
	first, rest := blk[:16384], blk[16384:]
	if err := x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	for len(rest) > 0 {
		n := min(len(rest), 16384)
		if err := x.fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
			break // wharf may close while the block is still coming
		}
		rest = rest[n:]
	}
	start := time.Now()
	if code := x.goAway(t); code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
	}
	t.Logf("GOAWAY %v after the block", time.Since(start))
	if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "header_list_size"); n != 1 {
		t.Errorf("header_list_size counted %v, want 1", n)
	}
}

// TestH2MalformedStreamsCounted guards against streams wharf resets for
// a fault the client made cheap to repeat: malformed request fields,
// a HEADERS depending on itself, END_STREAM with a content-length, a
// WINDOW_UPDATE of 0, each answered with RST_STREAM before any handler
// runs or server connection is taken. They count toward the same 100 a
// second as the client's own RST_STREAMs, then GOAWAY ENHANCE_YOUR_CALM
// (reason="rapid_reset").
func TestH2MalformedStreamsCounted(t *testing.T) {
	r, conns := startH2Counting(t, "")
	f := func(name string, open func(x *rawH2, id uint32) error) {
		t.Helper()
		before := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "rapid_reset")
		x := dialRawH2(t, r)
		go func() {
			for id := uint32(1); id < 2*300; id += 2 {
				if open(x, id) != nil {
					return
				}
			}
		}()
		start := time.Now()
		x.c.SetReadDeadline(start.Add(2 * time.Second))
		resets := 0
		for {
			fm, err := x.fr.ReadFrame()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("%s: %d streams reset by wharf and the connection still open", name, resets)
				return
			}
			if err != nil {
				t.Errorf("%s: no GOAWAY before %v (%d streams reset)", name, err, resets)
				return
			}
			switch fm := fm.(type) {
			case *http2.RSTStreamFrame:
				resets++
			case *http2.GoAwayFrame:
				if fm.ErrCode != http2.ErrCodeEnhanceYourCalm {
					t.Errorf("%s: GOAWAY %v, want ENHANCE_YOUR_CALM", name, fm.ErrCode)
				}
				if most := resetBudget(time.Since(start)); resets > most {
					t.Errorf("%s: GOAWAY after %d resets, want at most %d", name, resets, most)
				}
				if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "rapid_reset"); n != before+1 {
					t.Errorf("%s: rapid_reset counted %v, want %v", name, n-before, 1)
				}
				return
			}
		}
	}
	headers := func(blk []byte, end bool) func(x *rawH2, id uint32) error {
		return func(x *rawH2, id uint32) error {
			return x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: end, EndHeaders: true})
		}
	}
	// Blocks of literals and static entries only, valid on any connection
	// and repeatable.
	lit := func(path string, extra ...string) []byte {
		x := &rawH2{}
		x.enc = hpack.NewEncoder(&x.buf)
		return x.block(path, extra...)
	}
	f("empty :path", headers(lit(""), true))
	f("uppercase field name", headers(lit("/", "X-Upper", "1"), true))
	f("content-length with END_STREAM", headers(lit("/", "content-length", "5"), true))
	f("depends on itself", func(x *rawH2, id uint32) error {
		return x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: lit("/"), EndStream: true, EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: id, Weight: 15}})
	})
	f("WINDOW_UPDATE of 0", func(x *rawH2, id uint32) error {
		x.fr.AllowIllegalWrites = true
		return x.fr.WriteWindowUpdate(id, 0)
	})
	if n := conns.Load(); n > 5 {
		t.Errorf("malformed streams opened %d connections to the server", n)
	}
}

// resetBudget is the most stream resets wharf may take in d before its
// GOAWAY: 100, and 100 more a second. d is measured by the client from
// its first frame to the GOAWAY, which spans the server's own interval.
func resetBudget(d time.Duration) int {
	return h2MaxResetsPerSec + 1 + int(d.Seconds()*h2MaxResetsPerSec) + 1
}

// TestH2ResetBudgetAcrossSecond guards the reset budget at a second's
// boundary: 90 streams reset just before it and more just after are
// one burst, and a count per calendar second would let it through
// with 190. The GOAWAY must come within resetBudget of the burst's span.
func TestH2ResetBudgetAcrossSecond(t *testing.T) {
	r, _ := startH2Counting(t, "")
	x := dialRawH2(t, r)
	blk := x.block("/")
	open := func(id uint32) error {
		if err := x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
			return err
		}
		return x.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	// Wait for 0.9 s into a second, so the burst's two halves fall into
	// two calendar seconds.
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(1900*time.Millisecond).Sub(now) % time.Second)
	start := time.Now()
	boundary := start.Truncate(time.Second).Add(time.Second)
	go func() {
		id := uint32(1)
		for range 90 {
			if open(id) != nil {
				return
			}
			id += 2
		}
		time.Sleep(time.Until(boundary.Add(20 * time.Millisecond)))
		for range 200 {
			if open(id) != nil {
				return
			}
			id += 2
		}
	}()
	x.c.SetReadDeadline(start.Add(3 * time.Second))
	for {
		f, err := x.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY for 290 streams reset: %v", err)
		}
		ga, ok := f.(*http2.GoAwayFrame)
		if !ok {
			continue
		}
		took := time.Since(start)
		if ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", ga.ErrCode)
		}
		// Every stream up to the GOAWAY's last one was opened and reset.
		n := int(ga.LastStreamID+1) / 2
		if most := resetBudget(took); n > most {
			t.Errorf("GOAWAY after %d resets in %v, want at most %d", n, took.Round(time.Millisecond), most)
		}
		t.Logf("GOAWAY after %d resets in %v", n, took.Round(time.Millisecond))
		return
	}
}

// TestH2ResetsBelowTheRate: a client cancelling 50 requests a second,
// under the budget's rate, keeps its connection for 2.5 s and is
// answered after.
func TestH2ResetsBelowTheRate(t *testing.T) {
	r, _ := startH2Counting(t, "")
	x := dialRawH2(t, r)
	blk := x.block("/")
	errc := make(chan error, 1)
	go func() {
		// Read and drop what wharf sends (the streams' answers, if any),
		// failing on a GOAWAY.
		for {
			f, err := x.fr.ReadFrame()
			if err != nil {
				errc <- err
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				errc <- fmt.Errorf("GOAWAY %v", ga.ErrCode)
				return
			}
			if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == 1001 {
				errc <- nil
				return
			}
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	id := uint32(1)
	for ; id < 2*125; id += 2 {
		<-tick.C
		if err := x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if err := x.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1001, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	x.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := <-errc; err != nil {
		t.Fatalf("125 requests cancelled at 50 a second, then a request: %v", err)
	}
	if n := r.metric("wharf_proxy_http2_errors_total", "frontend", "f", "reason", "rapid_reset"); n != 0 {
		t.Errorf("rapid_reset counted %v, want 0", n)
	}
}
