package sni

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// clientHello records the ClientHello crypto/tls sends for serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""})
		_ = tc.Handshake()
		c.Close()
	}()
	var buf []byte
	tmp := make([]byte, 4096)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := s.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if _, herr := handshakeMessage(buf); herr == nil {
			return buf
		}
		if err != nil {
			t.Fatalf("reading ClientHello: %v (have %d bytes)", err, len(buf))
		}
	}
}

func TestServerNameFromCryptoTLS(t *testing.T) {
	for _, name := range []string{"example.com", "db.internal.example.org", ""} {
		hello := clientHello(t, name)
		got, err := ServerName(hello)
		if err != nil || got != name {
			t.Errorf("ServerName = %q, %v; want %q", got, err, name)
		}
		// Every proper prefix asks for more.
		for i := range len(hello) {
			if _, err := ServerName(hello[:i]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("prefix %d of %d: %v, want ErrNeedMore", i, len(hello), err)
			}
		}
		// The same hello split over two records still parses.
		split := splitRecords(hello, 100)
		if got, err := ServerName(split); err != nil || got != name {
			t.Errorf("split over records: %q, %v; want %q", got, err, name)
		}
	}
}

// splitRecords re-frames the first record's fragment as two records, the
// first carrying at most n bytes.
func splitRecords(b []byte, n int) []byte {
	frag := b[5 : 5+(int(b[3])<<8|int(b[4]))]
	var out []byte
	for _, part := range [][]byte{frag[:n], frag[n:]} {
		out = append(out, 22, 3, 1, byte(len(part)>>8), byte(len(part)))
		out = append(out, part...)
	}
	return out
}

// seedHello is a ClientHello for "example.com" with one extension.
var seedHello = func() []byte {
	sniExt := []byte{0, 0, 0, 16, 0, 14, 0, 0, 11}
	sniExt = append(sniExt, "example.com"...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)       // random
	body = append(body, 0, 0, 2, 0x13, 0x01, 1, 0) // no session id, one suite, null compression
	body = append(body, byte(len(sniExt)>>8), byte(len(sniExt)))
	body = append(body, sniExt...)
	msg := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}()

func TestSeedHello(t *testing.T) {
	if got, err := ServerName(seedHello); err != nil || got != "example.com" {
		t.Fatalf("seedHello: %q, %v", got, err)
	}
}

func TestServerNameBad(t *testing.T) {
	f := func(in []byte, want error) {
		t.Helper()
		if _, err := ServerName(in); !errors.Is(err, want) {
			t.Errorf("ServerName(%q) = %v, want %v", in, err, want)
		}
	}
	f([]byte("GET / HTTP/1.1\r\n"), ErrNotTLS)
	f([]byte("\x16\x02\x00\x00\x05"), ErrNotTLS)
	f([]byte("\x16\x03\x01\x00\x00"), ErrMalformed)
	f([]byte("\x16\x03\x01\x00\x04\x02\x00\x00\x00"), ErrNotTLS)        // ServerHello, not ClientHello
	f([]byte("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"), ErrMalformed) // body too short
	f([]byte("\x16\x03\x01\x00\x04\x01\xff\xff\xff"), ErrMalformed)     // absurd length
	f([]byte("\x16\x03"), ErrNeedMore)
	hello := clientHello(t, "example.com")
	for i := 0; i < len(hello); i++ {
		if hello[i] == 'e' && string(hello[i:i+11]) == "example.com" {
			hello[i+3] = ' ' // a space in the name
			break
		}
	}
	f(hello, ErrMalformed)
}

func TestMatch(t *testing.T) {
	f := func(pattern, name string, want bool) {
		t.Helper()
		if got := Match(pattern, name); got != want {
			t.Errorf("Match(%q, %q) = %v, want %v", pattern, name, got, want)
		}
	}
	f("example.com", "example.com", true)
	f("example.com", "EXAMPLE.com.", true)
	f("example.com", "www.example.com", false)
	f("*.example.com", "www.example.com", true)
	f("*.example.com", "WWW.Example.COM", true)
	f("*.example.com", "example.com", false)
	f("*.example.com", ".example.com", false)
	f("*.example.com", "a.b.example.com", false)
	f("*.example.com", "wwwexample.com", false)
	// A leading dot: any depth below, not the name itself (HAProxy's
	// req_ssl_sni -m end .example.com).
	f(".example.com", "a.example.com", true)
	f(".example.com", "a.b.example.com", true)
	f(".example.com", "A.B.Example.COM.", true)
	f(".example.com", "example.com", false)
	f(".example.com", "wwwexample.com", false)
	f(".example.com", ".example.com", false)
	f(".example.com", "example.org", false)
	f(".example.com.", "a.example.com", true)
	for _, p := range []string{"*.example.com", ".example.com"} {
		if n := testing.AllocsPerRun(100, func() { Match(p, "WWW.example.com") }); n != 0 {
			t.Errorf("Match(%q) allocates %v times", p, n)
		}
	}
}

// FuzzServerName checks ServerName never panics and that any prefix of an
// input that parses asks for more (so a proxy reading in pieces gets the
// same answer).
func FuzzServerName(f *testing.F) {
	// Seeds are fixed bytes: a fuzz worker should not run TLS handshakes.
	f.Add(seedHello, 50)
	f.Add(splitRecords(seedHello, 10), 7)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		name, err := ServerName(b)
		if err != nil || len(b) == 0 {
			return
		}
		if cut < 0 {
			cut = -cut
		}
		cut %= len(b)
		n2, err2 := ServerName(b[:cut])
		if err2 == nil && n2 != name {
			t.Fatalf("prefix %d gives %q, whole gives %q", cut, n2, name)
		}
	})
}
