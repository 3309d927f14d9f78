package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"wharf/proxy/internal/proxytest"
)

// TestChunkSplitBoundary: the README's "a chunk of 2^31 bytes or more
// split into chunks of 1GiB", at its edges, in both directions and both
// engines. What the far end gets as the first chunk-size line of a body
// whose first chunk is announced as size: up to 1 GiB (0x40000000) as
// sent; one byte more, 2^31 - 1, 2^31 and the largest size wharf takes
// (15 hex digits) as a chunk of exactly 1 GiB. Only the first line is
// checked: the second would follow a GiB of data (TestCopyChunked checks
// the whole split with a small maxOutChunk).
func TestChunkSplitBoundary(t *testing.T) {
	const gib = "40000000"
	cases := []struct{ sent, want string }{
		{"3fffffff", "3fffffff"},
		{"40000000", gib},
		{"40000001", gib},
		{"7fffffff", gib},
		{"80000000", gib},
		{"fffffffffffffff", gib},
	}
	// firstChunkLine reads an HTTP/1.1 head and returns the line after it.
	firstChunkLine := func(br *bufio.Reader) (string, error) {
		if _, err := readHead(br); err != nil {
			return "", err
		}
		l, err := br.ReadString('\n')
		return strings.TrimSuffix(l, "\r\n"), err
	}
	bothEngines(t, func(t *testing.T, engine string) {
		t.Run("request", func(t *testing.T) {
			got := make(chan string, 1)
			s := proxytest.Listen(t, func(c net.Conn) {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				l, err := firstChunkLine(bufio.NewReader(c))
				if err != nil {
					l = "error: " + err.Error()
				}
				got <- l
			})
			r := start(t, fmt.Sprintf("[frontend.f]\nengine = %q\n", engine)+strings.TrimPrefix(proxytest.OneServer("http", s.Addr), "\n[frontend.f]\n"))
			for _, c := range cases {
				rc := dialRaw(t, r)
				rc.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + c.sent + "\r\n" + strings.Repeat("a", 1024))
				select {
				case l := <-got:
					if l != c.want {
						t.Errorf("a chunk of 0x%s bytes: the server got chunk-size line %q, want %q", c.sent, l, c.want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("a chunk of 0x%s bytes: the server saw no chunk", c.sent)
				}
				rc.c.Close()
			}
		})
		t.Run("response", func(t *testing.T) {
			sizes := make(chan string, len(cases))
			for _, c := range cases {
				sizes <- c.sent
			}
			read := make(chan struct{}) // the client has its line: the server may go
			s := proxytest.Listen(t, func(c net.Conn) {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := readHead(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+<-sizes+"\r\n"+strings.Repeat("a", 1024))
				<-read // then closed, the body cut short
			})
			r := start(t, fmt.Sprintf("[frontend.f]\nengine = %q\n", engine)+strings.TrimPrefix(proxytest.OneServer("http", s.Addr), "\n[frontend.f]\n"))
			for _, c := range cases {
				rc := dialRaw(t, r)
				rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				l, err := firstChunkLine(rc.br)
				if err != nil || l != c.want {
					t.Errorf("a chunk of 0x%s bytes: the client got chunk-size line %q (%v), want %q", c.sent, l, err, c.want)
				}
				select {
				case read <- struct{}{}:
				case <-time.After(5 * time.Second):
				}
				rc.c.Close()
			}
		})
	})
}
