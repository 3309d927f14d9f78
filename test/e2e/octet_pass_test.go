package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestRelayOctetFramesExact: a syslog sink with encoding raw and octet
// counting sends each message as "LEN SP RAW", and wharf passes the
// frames it read that way as they are (#16: outbox.pass). Over real
// sockets, one sender mixes every framing wharf reads (octet frames of
// one to five digit lengths, LF and NUL lines, a trailer inside an
// octet count, stray bytes between frames, a line that is not syslog),
// in writes of random sizes; the collector must receive exactly the
// octet framing of each message, in order, byte for byte.
func TestRelayOctetFramesExact(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got testenv.SyncBuffer // the collector's bytes, as received
	testenv.ServeEach(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(&got, c)
	})
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "c")+fmt.Sprintf(`
[sink.c]
type = "syslog"
servers = ["tcp://%s"]
out_framing = "octet-counting"
encoding = "raw"
`, ln.Addr()))

	rng := rand.New(rand.NewPCG(16, 7))
	var stream, want []byte
	octet := func(m string) string { return fmt.Sprintf("%d %s", len(m), m) }
	const n = 20000
	for i := range n {
		m := fmt.Sprintf("<134>1 2026-12-07T01:00:00.%06dZ host-%d app %d - - seq=%d %s", i%1000000, i%7, i, i, strings.Repeat("x", rng.IntN(200)))
		switch i % 10 {
		case 0: // a long one: a five-digit length
			m += strings.Repeat("y", 10000+rng.IntN(5000))
		case 1: // a short one: lengths of one and two digits
			m = fmt.Sprintf("<13>%05d", i%100000)[:1+rng.IntN(9)]
		}
		var wire string
		switch i % 7 {
		case 0, 1, 3, 6: // octet frames, most of a stream
			wire = octet(m)
		case 2: // stray bytes before an octet frame, within a run of them
			wire = "\n\x00" + octet(m)
		case 4: // an LF line
			wire = m + "\n"
		case 5: // a trailer inside the count: the message is without it
			wire = octet(m + "\r\n")
		}
		if i%13 == 0 {
			m = "not syslog at all " + fmt.Sprint(i) // forwarded raw (on_error default)
			wire = octet(m)
		}
		stream = append(stream, wire...)
		want = append(want, octet(m)...)
	}

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetNoDelay(true)
	for rest := stream; len(rest) > 0; {
		k := min(len(rest), 1+rng.IntN(40000))
		if _, err := c.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	c.Close()

	testenv.Poll(30*time.Second, func() bool { return got.Len() >= len(want) })
	sent := in.metric("wharf_sink_sent_total", `sink="c"`)
	in.stop()
	if got := []byte(got.String()); !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("collector has %d bytes, want %d; first difference at byte %d:\ngot  %q\nwant %q",
			len(got), len(want), i, clip(got, i), clip(want, i))
	}
	if sent != n {
		t.Errorf("wharf_sink_sent_total %v, want %d", sent, n)
	}
}

// clip returns up to 80 bytes of b from 20 before i.
func clip(b []byte, i int) []byte {
	return b[max(0, i-20):min(len(b), i+60)]
}
