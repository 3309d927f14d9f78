package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRequest sends small GETs over one keep-alive client
// connection through the proxy (which keeps its own pool to the server),
// and straight to the server for comparison.
func BenchmarkRequest(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	defer s.Close()
	r := start(b, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, hostPort(s)))
	run := func(b *testing.B, url string) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("proxy", func(b *testing.B) { run(b, r.url()+"/") })
	b.Run("direct", func(b *testing.B) { run(b, s.URL+"/") })
}
