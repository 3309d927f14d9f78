package ingest

import (
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// Regression: one source could hold every maxconn slot of a bind with
// idle connections (client_timeout is off by default, frame_timeout only
// closes incomplete frames) and lock every other sender out. Now
// 127.0.0.1 holds its maxconn_per_ip and 127.0.0.2 still delivers, on
// tcp:// (gnet), tls:// and relp:// binds.
func TestMaxConnPerIP(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	for _, scheme := range []string{"tcp", "tls", "relp"} {
		t.Run(scheme, func(t *testing.T) {
			fe := &conf.Frontend{MaxConn: 10, MaxConnPerIP: 4}
			if scheme == "tls" {
				fe = tlsFrontend(t, ca)
				fe.MaxConn, fe.MaxConnPerIP = 10, 4
			}
			l, reg, tgt := listen(t, scheme, fe)
			dial := func(src string) (net.Conn, error) {
				d := &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				if scheme == "tls" {
					c, err := tls.DialWithDialer(d, "tcp", l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
					if err != nil {
						return nil, err
					}
					return c, nil
				}
				return d.Dial("tcp", l.Addr())
			}
			// The greedy source opens maxconn idle connections.
			var greedy []net.Conn
			for range 10 {
				c, err := dial("127.0.0.1")
				if err != nil {
					continue // a TLS handshake on a refused connection fails
				}
				defer c.Close()
				greedy = append(greedy, c)
			}
			testenv.Eventually(t, "6 maxconn_per_ip rejections", func() bool {
				return counter(reg, "wharf_frontend_rejected_total", "maxconn_per_ip") == 6
			})
			if n := counter(reg, "wharf_frontend_connections", ""); n != 4 {
				t.Fatalf("%v connections open, want 4 (the cap)", n)
			}
			// Another source still gets in and delivers.
			c, err := dial("127.0.0.2")
			if err != nil {
				t.Fatalf("127.0.0.2 could not connect: %v", err)
			}
			defer c.Close()
			const msg = "<13>1 2026-11-25T10:00:00Z h app - - - from 127.0.0.2"
			if scheme == "relp" {
				p := &relpPeer{t: t, c: c}
				p.open()
				p.rsp(p.send("syslog", msg), 200)
			} else if _, err := c.Write([]byte(octet(msg))); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, "the message of 127.0.0.2", func() bool { return tgt.count() == 1 })
			if n := counter(reg, "wharf_frontend_rejected_total", "maxconn"); n != 0 {
				t.Errorf("maxconn rejections = %v, want 0", n)
			}
			// Its slots free when its connections close.
			greedyAddr := netip.MustParseAddr("127.0.0.1")
			if p := l.perIP.Open(greedyAddr); p != 4 {
				t.Errorf("127.0.0.1 holds %d, want 4", p)
			}
			for _, c := range greedy {
				c.Close()
			}
			testenv.Eventually(t, "127.0.0.1's slots to free", func() bool { return l.perIP.Open(greedyAddr) == 0 })
		})
	}
}
