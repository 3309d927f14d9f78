package tcp

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"wharf/proxy/internal/proxytest"
)

// BenchmarkForward pushes 64MiB per iteration through the proxy into a
// server that discards it and then reports the count back, and, for
// comparison, straight into the server.
func BenchmarkForward(b *testing.B) {
	sink := proxytest.Listen(b, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%d", n)
	})
	r := start(b, proxytest.OneServer("tcp", sink.Addr))
	const size = 64 << 20
	chunk := make([]byte, 256<<10)
	run := func(b *testing.B, addr string) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) != fmt.Sprint(size) {
				b.Fatalf("server counted %q bytes, want %d", got, size)
			}
		}
	}
	b.Run("proxy", func(b *testing.B) { run(b, r.addr()) })
	b.Run("direct", func(b *testing.B) { run(b, sink.Addr) })
}
