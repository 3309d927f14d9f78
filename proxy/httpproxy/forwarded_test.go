package httpproxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"wharf/proxy/internal/proxytest"
)

// headCatcher is a server that hands the request head it reads (up to the
// blank line) to the test and answers 200 with an empty body.
func headCatcher(t *testing.T) (*proxytest.Server, chan string) {
	t.Helper()
	got := make(chan string, 4)
	s := proxytest.Listen(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		h, err := readHead(bufio.NewReader(c))
		if err != nil {
			return
		}
		got <- h
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	})
	return s, got
}

// nextHead returns the next request head headCatcher's server read.
func nextHead(t *testing.T, got chan string) string {
	t.Helper()
	select {
	case h := <-got:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the server saw no request")
		return ""
	}
}

// withEngine pins frontend f of toml to engine.
func withEngine(toml, engine string) string {
	return strings.Replace(toml, "[frontend.f]\n", "[frontend.f]\nengine = \""+engine+"\"\n", 1)
}

// TestForwardingFieldsOnlyFromTrusted: README's Security promise that
// client-sent Forwarded/X-Forwarded-* (and X-Real-IP) are dropped unless
// the peer is in trusted_proxies, for every such field, not only the
// three wharf writes itself: a server behind wharf that builds URLs or
// redirects from X-Forwarded-Port or -Prefix must not see a client's.
// A trusted proxy's are passed on. Before, only X-Forwarded-For, -Proto,
// -Host and Forwarded were dropped.
func TestForwardingFieldsOnlyFromTrusted(t *testing.T) {
	const spoof = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nForwarded: for=6.6.6.6\r\n" +
		"X-Forwarded-Port: 6666\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Server: evil.example\r\n" +
		"X-Forwarded-Scheme: https\r\nX-Forwarded-Ssl: on\r\nX-Real-IP: 6.6.6.6\r\n"
	for _, engine := range []string{"event-loop", "goroutines"} {
		for _, trusted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/trusted=%v", engine, trusted), func(t *testing.T) {
				s, got := headCatcher(t)
				cfg := withEngine(proxytest.OneServer("http", s.Addr), engine)
				if trusted {
					cfg = strings.Replace(cfg, "[frontend.f]\n", "[frontend.f]\ntrusted_proxies = [\"127.0.0.0/8\"]\n", 1)
				}
				r := start(t, cfg)
				rc := dialRaw(t, r)
				rc.send("GET /p HTTP/1.1\r\nHost: h.example\r\n" + spoof + "\r\n")
				if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				head := nextHead(t, got)
				seen := 0
				for _, l := range strings.Split(head, "\r\n") {
					name, value, ok := strings.Cut(l, ":")
					lname := strings.ToLower(name)
					if !ok || (!strings.HasPrefix(lname, "x-forwarded-") && lname != "forwarded" && lname != "x-real-ip") {
						continue
					}
					if strings.Contains(value, "6.6.6.6") || strings.Contains(value, "evil") ||
						strings.Contains(value, "6666") || lname == "x-forwarded-scheme" || lname == "x-forwarded-ssl" ||
						(lname == "x-forwarded-proto" && strings.TrimSpace(value) == "https") { // wharf's own says http
						seen++
						if !trusted {
							t.Errorf("an untrusted client's %q reached the server", strings.TrimSpace(l))
						}
					}
				}
				// Trusted: all ten fields, XFF and Forwarded with wharf's
				// hop appended.
				if trusted && seen != 10 {
					t.Errorf("a trusted proxy's forwarding fields: %d of 10 reached the server", seen)
				}
				if t.Failed() {
					t.Logf("server got:\n%s", head)
				}
			})
		}
	}
}

// TestHTTP10WithoutHost holds README's "an HTTP/1.0 request without
// Host is sent on as HTTP/1.1 with the server's address as Host".
func TestHTTP10WithoutHost(t *testing.T) {
	for _, engine := range []string{"event-loop", "goroutines"} {
		t.Run(engine, func(t *testing.T) {
			s, got := headCatcher(t)
			r := start(t, withEngine(proxytest.OneServer("http", s.Addr), engine))
			rc := dialRaw(t, r)
			rc.send("GET /p HTTP/1.0\r\n\r\n")
			if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			head := nextHead(t, got)
			want := "GET /p HTTP/1.1\r\nHost: " + s.Addr + "\r\n"
			if !strings.HasPrefix(head, want) {
				t.Errorf("server got\n%q\nwant it to start with\n%q", head, want)
			}
		})
	}
}
