package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"wharf/internal/testenv"
)

// More snippet pairs of docs/migrating.md side by side, as in
// migrating_test.go: rsyslog 6, 9 (with the Kafka broker make test
// starts) and 10, HAProxy 7, 9 and 11.

// dialFrom connects to addr from the loopback address from ("" for any)
// and returns what the server wrote within two seconds, or "closed" when
// the connection was closed (or reset) without a byte, "timeout" when it
// stayed open without one, or "refused".
func dialFrom(addr, from, send string) string {
	d := net.Dialer{Timeout: 2 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) { // reset before connect returned
		return "closed"
	}
	if err != nil {
		return "refused"
	}
	defer c.Close()
	if send != "" {
		io.WriteString(c, send)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	switch {
	case len(b) > 0:
		return string(b)
	case isTimeout(err):
		return "timeout"
	default:
		return "closed"
	}
}

// TestMigratingSourceACL: HAProxy pair 7, tcp-request connection reject
// by source address, against wharf's deny and allow. Loopback has only
// 127.0.0.0/8, so the snippet's networks move there: blocked
// 127.9.0.0/16 inside office 127.8.0.0/13, and a second office network
// 127.0.2.0/24. Connections from the same addresses reach the server or
// are closed without a byte, the same on both.
func TestMigratingSourceACL(t *testing.T) {
	mgmt := newNameServer(t, "mgmt")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend mgmt
    mode tcp
    bind 127.0.0.1:%d
    acl blocked src 127.9.0.0/16
    acl office src 127.8.0.0/13 127.0.2.0/24
    tcp-request connection reject if blocked
    tcp-request connection reject unless office
    default_backend mgmt
backend mgmt
    mode tcp
    server m1 %s
`, hp, mgmt.addr))
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.mgmt]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
deny = ["127.9.0.0/16"]           # checked first
allow = ["127.8.0.0/13", "127.0.2.0/24"]
backend = "mgmt"

[backend.mgmt]
[[backend.mgmt.server]]
address = %q
`, mgmt.addr))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "mgmt")}
	testenv.Poll(5*time.Second, func() bool { return dialFrom(proxies["haproxy"], "127.8.0.1", "") == "mgmt" })
	rejected := 0
	for _, tc := range []struct{ from, want string }{
		{"127.8.0.1", "mgmt"},       // office
		{"127.15.255.254", "mgmt"},  // office, its last /13 address
		{"127.9.0.1", "closed"},     // blocked, inside office
		{"127.9.255.255", "closed"}, // blocked
		{"127.10.0.1", "mgmt"},      // office, past blocked
		{"127.0.2.7", "mgmt"},       // the second office network
		{"127.0.3.1", "closed"},     // neither
		{"127.0.0.1", "closed"},     // neither
		{"127.16.0.1", "closed"},    // neither, just past office
	} {
		for _, who := range []string{"haproxy", "wharf"} {
			if got := dialFrom(proxies[who], tc.from, ""); got != tc.want {
				t.Errorf("%s: from %s: %s, want %s", who, tc.from, got, tc.want)
			}
		}
		if tc.want == "closed" {
			rejected++
		}
	}
	if n := in.metric("wharf_proxy_frontend_rejected_total", `reason="acl"`); n != float64(rejected) {
		t.Errorf(`wharf_proxy_frontend_rejected_total{reason="acl"} = %v, want %d`, n, rejected)
	}
}

// proxyV2Server is a TCP server that reads the PROXY protocol v2 header
// its client must send and answers with what it says (addresses, the
// command, the TLVs in hex) and then what followed it, until the client
// half-closes.
func proxyV2Server(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testenv.ServeEach(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 16)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		if !bytes.Equal(hdr[:12], []byte("\r\n\r\n\x00\r\nQUIT\n")) {
			fmt.Fprintf(c, "no v2 header: %q", hdr)
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[14:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		var what string
		switch cmd, fam := hdr[12], hdr[13]; {
		case cmd == 0x20:
			what = "LOCAL"
		case cmd == 0x21 && fam == 0x11 && len(body) >= 12:
			what = fmt.Sprintf("%s %s", netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:])),
				netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:])))
			body = body[12:]
		case cmd == 0x21 && fam == 0x21 && len(body) >= 36:
			what = fmt.Sprintf("%s %s", netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:])),
				netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:])))
			body = body[36:]
		default:
			what = fmt.Sprintf("cmd %#x family %#x", cmd, fam)
		}
		if len(body) > 0 {
			what += " tlv " + hex.EncodeToString(body)
		}
		rest, _ := io.ReadAll(c)
		fmt.Fprintf(c, "%s: %s", what, rest)
	})
	return ln.Addr().String()
}

// TestMigratingProxyProtocol: HAProxy pair 9, a tcp frontend that takes
// the PROXY protocol (v1 or v2) from the load balancer in front and a
// server that gets it as v2. The same clients through HAProxy and wharf:
// the server sees the same header (the client's addresses the load
// balancer sent, byte for byte) and the same bytes after it; a
// connection without a header is closed by both; for a v2 LOCAL header
// (the load balancer's own health check) or a v1 UNKNOWN both send the
// connection's own addresses. The snippet's trusted
// 10.0.0.0/8 is 127.0.0.0/16 here. What differs: HAProxy believes a
// PROXY header from any address, wharf only from trusted_proxies, and
// closes a connection from elsewhere (the guide says so).
func TestMigratingProxyProtocol(t *testing.T) {
	srv := proxyV2Server(t)
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend edge
    mode tcp
    bind 127.0.0.1:%d accept-proxy
    default_backend tls
backend tls
    mode tcp
    server t1 %s send-proxy-v2
`, hp, srv), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.edge]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
accept_proxy = true
trusted_proxies = ["127.0.0.0/16"]  # PROXY headers believed from these only
backend = "tls"

[backend.tls]
[[backend.tls.server]]
address = %q
send_proxy = "v2"
`, srv))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "edge")}
	v2 := func(src, dst string) string {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21")
		if s.Addr().Is4() {
			b = append(b, 0x11, 0, 12)
		} else {
			b = append(b, 0x21, 0, 36)
		}
		b = append(b, s.Addr().AsSlice()...)
		b = append(b, d.Addr().AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, s.Port())
		b = binary.BigEndian.AppendUint16(b, d.Port())
		return string(b)
	}
	// send writes hdr and payload from the loopback address from,
	// half-closes, and returns what the server answered, the connection's
	// own addresses written CLIENT and PROXY.
	send := func(addr, from, hdr string) string {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			return "closed"
		}
		if err != nil {
			return "refused"
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, hdr+"hello")
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if len(b) == 0 {
			if isTimeout(err) {
				return "timeout"
			}
			return "closed"
		}
		// The connection's own addresses, where the server sees them.
		return strings.NewReplacer(c.LocalAddr().String(), "CLIENT", c.RemoteAddr().String(), "PROXY").Replace(string(b))
	}
	for _, tc := range []struct {
		name, from, hdr, want string
		wharf                 string // what wharf does where it differs
	}{
		{"v1", "127.0.0.1", "PROXY TCP4 203.0.113.7 198.51.100.1 4444 443\r\n", "203.0.113.7:4444 198.51.100.1:443: hello", ""},
		{"v1 IPv6", "127.0.0.1", "PROXY TCP6 2001:db8::7 2001:db8::1 4444 443\r\n", "[2001:db8::7]:4444 [2001:db8::1]:443: hello", ""},
		{"v2", "127.0.0.2", v2("203.0.113.8:5555", "198.51.100.1:443"), "203.0.113.8:5555 198.51.100.1:443: hello", ""},
		{"v2 IPv6", "127.0.0.2", v2("[2001:db8::8]:5555", "[2001:db8::1]:443"), "[2001:db8::8]:5555 [2001:db8::1]:443: hello", ""},
		{"v2 LOCAL", "127.0.0.1", "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00", "CLIENT PROXY: hello", ""}, // the LB's own check
		{"v1 UNKNOWN", "127.0.0.1", "PROXY UNKNOWN\r\n", "CLIENT PROXY: hello", ""},
		{"no header", "127.0.0.1", "", "closed", ""},
		{"garbage header", "127.0.0.1", "PROXY TCP4 203.0.113.7\r\n", "closed", ""},
		// HAProxy believes anyone's header; wharf closes the connection.
		{"untrusted", "127.1.0.1", "PROXY TCP4 203.0.113.9 198.51.100.1 4444 443\r\n", "203.0.113.9:4444 198.51.100.1:443: hello", "closed"},
	} {
		want := map[string]string{"haproxy": tc.want, "wharf": tc.want}
		if tc.wharf != "" {
			want["wharf"] = tc.wharf
		}
		got := map[string]string{}
		for _, who := range []string{"haproxy", "wharf"} {
			got[who] = send(proxies[who], tc.from, tc.hdr)
			if got[who] != want[who] {
				t.Errorf("%s: %s: server saw %q, want %q", tc.name, who, got[who], want[who])
			}
		}
		t.Logf("%-14s haproxy %q, wharf %q", tc.name, got["haproxy"], got["wharf"])
	}
}

// accessLineRE picks the fields HAProxy's httplog line and wharf's
// access log text share: the syslog PRI, client address, frontend,
// backend/server, status, bytes and request line.
var accessLineRE = regexp.MustCompile(`^<(\d+)>.* (\d+\.\d+\.\d+\.\d+:\d+) \[[^\]]+\] (\S+) (\S+) \S+ (-?\d+) (\d+) .*"([^"]*)"$`)

// TestMigratingAccessLog: HAProxy pair 11, option httplog to a syslog
// collector (UDP) against wharf's access_log to a syslog sink. The same
// requests (200, 404, a 500 from the server, a 503 with the server down)
// through both give one line each at the collector with the same
// facility, client address and port, frontend, backend/server, status
// and request line. What differs: HAProxy sends RFC 3164 lines with its
// own field list, at severity info for every request (err only with
// option log-separate-errors), wharf RFC 5424 with structured data, err
// for a 5xx; HAProxy's byte count includes the response headers, wharf's
// is the body; HAProxy logs a connection closed without a request, wharf
// does not (the guide says so).
func TestMigratingAccessLog(t *testing.T) {
	hc, wc := newUDPCollector(t), newUDPCollector(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/boom":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			io.WriteString(w, "hello")
		}
	}))
	t.Cleanup(web.Close)
	webAddr := strings.TrimPrefix(web.URL, "http://")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`global
    log %s local0
defaults
    log global
    option httplog
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend www
    mode http
    bind 127.0.0.1:%d
    default_backend web
backend web
    mode http
    server w1 %s
`, hc.addr, hp, webAddr), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.www]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"
access_log = ["central"]

[backend.web]
[[backend.web.server]]
address = %q
name = "w1"

[sink.central]
type = "syslog"
servers = ["udp://%s"]
`, webAddr, wc.addr))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "www")}
	cols := map[string]*frameCollector{"haproxy": hc, "wharf": wc}
	// get sends one request on its own connection and returns the
	// client's address and the status.
	get := func(addr, path string) (string, int) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return c.LocalAddr().String(), 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return c.LocalAddr().String(), resp.StatusCode
	}
	paths := []string{"/", "/missing?q=1", "/boom", "/down"}
	type line struct{ pri, client, frontend, server, status, bytes, request string }
	lines := map[string][]line{}
	// A connection closed without a request, as startHAProxy's probe of
	// the port: HAProxy logs it (400 "<BADREQ>"; the snippet has no
	// option dontlognull), wharf does not (its line count is checked
	// below). HAProxy's is skipped.
	if c, err := net.Dial("tcp", proxies["wharf"]); err == nil {
		c.Close()
	}
	testenv.Poll(2*time.Second, func() bool { return len(hc.snapshot()) > 0 })
	skip := map[string]int{"haproxy": len(hc.snapshot())}
	for _, who := range []string{"haproxy", "wharf"} {
		var clients []string
		for _, p := range paths {
			if p == "/down" {
				web.Listener.Close() // w1 down: 503
				web.CloseClientConnections()
			}
			client, status := get(proxies[who], p)
			clients = append(clients, client)
			t.Logf("%s: GET %s: %d", who, p, status)
			time.Sleep(20 * time.Millisecond) // the lines in order
		}
		web.Listener, _ = net.Listen("tcp", webAddr) // w1 back for the next run
		go web.Config.Serve(web.Listener)
		testenv.Poll(5*time.Second, func() bool { return len(cols[who].snapshot()) >= skip[who]+len(paths) })
		got := cols[who].snapshot()[skip[who]:]
		t.Logf("%s:\n  %s", who, strings.Join(got, "\n  "))
		if len(got) != len(paths) {
			t.Fatalf("%s: %d access log lines, want %d", who, len(got), len(paths))
		}
		for i, m := range got {
			f := accessLineRE.FindStringSubmatch(m)
			if f == nil {
				t.Fatalf("%s: access log line %q does not parse", who, m)
			}
			if f[2] != clients[i] {
				t.Errorf("%s: line %d names client %s, want %s", who, i, f[2], clients[i])
			}
			lines[who] = append(lines[who], line{f[1], "client", f[3], f[4], f[5], f[6], f[7]})
		}
	}
	for i := range paths {
		h, w := lines["haproxy"][i], lines["wharf"][i]
		// wharf's differences: err (PRI 131) for a 5xx, the body's bytes.
		if h.status[0] == '5' && w.pri == "131" && h.pri == "134" {
			h.pri = w.pri
		}
		h.bytes, w.bytes = "", ""
		if h != w {
			t.Errorf("GET %s:\nhaproxy %+v\nwharf   %+v", paths[i], h, w)
		}
	}
}

// sendLF writes each message, LF-framed, on one TCP connection to addr.
func sendLF(t *testing.T, addr string, msgs []string) {
	t.Helper()
	sendEach(t, "tcp", addr, msgs, "\n", 0)
}

// TestMigratingRegexSD: rsyslog pair 6, a regular expression on the
// message and a structured data value, against wharf's msg_regex and sd
// routes. The same messages over TCP to rsyslog with the snippet and to
// wharf with the guide's block reach the same collectors (siem, dc1, the
// rest). rsyslog fills $!rfc5424-sd only with mmpstrucdata loaded and
// run first (without it the sd line matches nothing), and runs every
// matching action where wharf takes the first matching route: the
// snippet says so with mmpstrucdata, "& stop", a stop after dc1 and a
// last line for the rest.
func TestMigratingRegexSD(t *testing.T) {
	msgs := []string{
		"<134>Dec  6 05:10:01 fw1 kernel: DENY tcp 10.0.0.1:22 id=1",
		"<134>Dec  6 05:10:02 fw1 kernel: REJECT udp 10.0.0.1:53 id=2",
		"<134>Dec  6 05:10:03 fw1 kernel: DENY icmp 10.0.0.1 id=3",
		"<134>Dec  6 05:10:04 fw1 kernel: deny tcp lower case id=4",
		"<134>Dec  6 05:10:05 fw1 kernel: DENYtcp no space id=5",
		`<134>1 2026-12-06T05:10:06Z fw2 pf 7 - - REJECT tcp in rfc5424 id=6`,
		`<134>1 2026-12-06T05:10:07Z web1 app 7 - [origin ip="10.1.2.3"] from dc1 id=7`,
		`<134>1 2026-12-06T05:10:08Z web1 app 7 - [origin ip="10.10.2.3"] not 10.1. id=8`,
		`<134>1 2026-12-06T05:10:09Z web1 app 7 - [meta@32473 a="b"][origin x="1" ip="10.1.9.9"] second element id=9`,
		`<134>1 2026-12-06T05:10:10Z web1 app 7 - [origin@32473 ip="10.1.2.3"] other SD-ID id=10`,
		`<134>1 2026-12-06T05:10:11Z web1 app 7 - [origin ip="10.1.2.3"] DENY tcp both id=11`,
		`<134>1 2026-12-06T05:10:12Z web1 app 7 - [x@32473 note="DENY tcp"] regex in SD only id=12`,
		`<134>1 2026-12-06T05:10:13Z web1 app 7 - [origin ip="192.0.2.1"] other ip id=13`,
		"<13>Dec  6 05:10:14 web1 app[7]: origin ip=10.1.2.3 in the text id=14",
		`<134>1 2026-12-06T05:10:15Z web1 app 7 - - no SD id=15`,
		`<134>1 2026-12-06T05:10:16Z web1 app 7 - [Origin ip="10.1.2.3"] SD-ID in capitals id=16`,
		`<134>1 2026-12-06T05:10:17Z web1 app 7 - [origin IP="10.1.2.3"] name in capitals id=17`,
		`<134>1 2026-12-06T05:10:18Z web1 app 7 - [origin ip="10.1.2.3\"x"] escaped quote id=18`,
		`<134>1 2026-12-06T05:10:19Z web1 app 7 - [origin ip="10.1.2.3"][origin ip="192.0.2.1"] twice id=19`,
		`<134>1 2026-12-06T05:10:20Z web1 app 7 - [origin ip="192.0.2.1"][origin ip="10.1.2.3"] twice id=20`,
	}
	got := map[string]destinations{}
	var in *instance
	for _, who := range []string{"rsyslog", "wharf"} {
		siem, dc1, rest := newTCPCollector(t, ""), newTCPCollector(t, ""), newTCPCollector(t, "")
		port := testenv.FreePort(t)
		if who == "rsyslog" {
			startRsyslog(t, fmt.Sprintf(`module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
module(load="mmpstrucdata")
action(type="mmpstrucdata")                  # [origin ip="10.1.2.3"] into $!rfc5424-sd
:msg, ereregex, "(DENY|REJECT) (tcp|udp)"   @@%s
& stop
if $!rfc5424-sd!origin!ip startswith "10.1." then {
    @@%s
    stop
}
*.* @@%s
`, port, siem.addr, dc1.addr, rest.addr), fmt.Sprintf("127.0.0.1:%d", port))
		} else {
			in = start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["rest"]

[[frontend.syslog.route]]
msg_regex = '(DENY|REJECT) (tcp|udp)'   # RE2: linear time, no backtracking blowups
sinks = ["siem"]

[[frontend.syslog.route]]
sd = { "origin.ip" = "10.1.*" }          # [origin ip="10.1.2.3"], value as a glob
sinks = ["dc1"]

[sink.siem]
type = "syslog"
servers = ["tcp://%s"]

[sink.dc1]
type = "syslog"
servers = ["tcp://%s"]

[sink.rest]
type = "syslog"
servers = ["tcp://%s"]
`, port, siem.addr, dc1.addr, rest.addr))
		}
		sendLF(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
		waitStill(5*time.Second, len(msgs), func() int {
			return len(siem.snapshot()) + len(dc1.snapshot()) + len(rest.snapshot())
		})
		got[who] = destinations{"siem": ids(siem.snapshot()), "dc1": ids(dc1.snapshot()), "rest": ids(rest.snapshot())}
		t.Logf("%s:\n%s", who, got[who])
	}
	// What differs (the guide says so): mmpstrucdata lowercases SD-IDs
	// and parameter names (sd_name.lowercase), so [Origin ip=...] (16)
	// and [origin IP=...] (17) match $!rfc5424-sd!origin!ip; wharf
	// compares them case-sensitively, as RFC 5424 does. An SD-ID twice
	// (19, 20; RFC 5424 forbids it) makes the message malformed for wharf,
	// counted, and no sd route matches it; rsyslog keeps the last one.
	want := destinations{}
	for k, v := range got["rsyslog"] {
		want[k] = append([]int(nil), v...)
	}
	for _, id := range []int{16, 17, 20} {
		if i := slices.Index(want["dc1"], id); i >= 0 {
			want["dc1"] = slices.Delete(want["dc1"], i, i+1)
			want["rest"] = append(want["rest"], id)
		}
	}
	sort.Ints(want["rest"])
	if want.String() != got["wharf"].String() {
		t.Errorf("routing differs:\nrsyslog, as wharf is expected to route\n%swharf\n%s", want, got["wharf"])
	}
	if !slices.Contains(got["rsyslog"]["dc1"], 16) {
		t.Errorf("rsyslog no longer routes [Origin ip=...] to dc1: the guide says it does")
	}
	if n := in.metric("wharf_frontend_malformed_total"); n != 2 {
		t.Errorf("wharf_frontend_malformed_total = %v, want 2 (the messages with an SD-ID twice)", n)
	}
}

// TestMigratingDiskQueue: rsyslog pair 10, a disk-assisted action queue
// that retries for ever, against wharf's disk buffer. Messages sent while
// the collector is down reach it once it is up, from both; so do messages
// queued when the relay is stopped and started again before the
// collector is back (saveOnShutdown; wharf's buffer is on disk all
// along). rsyslog retries a suspended action every action.resumeInterval
// (30s by default: 1s here, to keep the test short); wharf within its
// retry_max_backoff (5s). The first message after the collector went
// away is written to the dead connection: rsyslog loses it (it finds the
// connection broken on the next write), wharf writes it again on the next
// connection (the guide says so).
func TestMigratingDiskQueue(t *testing.T) {
	who := []string{"rsyslog", "wharf"}
	work, ports, colAddr := map[string]string{}, map[string]int{}, map[string]string{}
	for _, w := range who {
		work[w], ports[w], colAddr[w] = t.TempDir(), testenv.FreePort(t), testenv.ClosedAddr(t)
	}
	stops := map[string]func(){}
	run := func(w string) {
		if w == "rsyslog" {
			_, colPort, _ := net.SplitHostPort(colAddr[w])
			r := startRsyslog(t, fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="%s" protocol="tcp"
       queue.type="LinkedList" queue.filename="central" queue.maxDiskSpace="20g"
       queue.saveOnShutdown="on" action.resumeRetryCount="-1" action.resumeInterval="1")
`, work[w], ports[w], colPort), fmt.Sprintf("127.0.0.1:%d", ports[w]))
			stops[w] = func() {
				r.cmd.Process.Signal(syscall.SIGTERM)
				err := <-r.exited
				r.exited <- err // for startRsyslog's cleanup
			}
			return
		}
		in := startIn(t, work[w], "127.0.0.1:0", fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["central"]

[sink.central]
type = "syslog"
servers = ["tcp://%s"]
max_retries = 0                   # resumeRetryCount -1: retry until it works

[sink.central.buffer]
dir = "{{DIR}}/buffer/central"
max_bytes = "20GiB"               # queue.maxDiskSpace
on_full = "block"                 # then hold TCP senders back
`, ports[w], colAddr[w]))
		stops[w] = func() { in.stop() }
	}
	send := func(from, to int) {
		var msgs []string
		for id := from; id <= to; id++ {
			msgs = append(msgs, prioLine(1, 5, id, "web1", "app"))
		}
		for _, w := range who {
			sendLF(t, fmt.Sprintf("127.0.0.1:%d", ports[w]), msgs)
		}
	}
	seq := func(from, to int) string {
		var s []int
		for id := from; id <= to; id++ {
			s = append(s, id)
		}
		return fmt.Sprint(s)
	}
	cols := map[string]*frameCollector{}
	// collected waits until w's collector has want ids and returns them,
	// each once; it logs those that came twice (both are at least once).
	collected := func(w string, want int) []int {
		waitStill(6*time.Second, want, func() int { return len(cols[w].snapshot()) })
		got := ids(cols[w].snapshot())
		if d := len(got) - len(slices.Compact(slices.Clone(got))); d > 0 {
			t.Logf("%s: %d duplicates: %v", w, d, got)
		}
		return slices.Compact(got)
	}
	for _, w := range who {
		run(w)
	}

	// 1. The collector is down when the messages come, up a second later.
	send(1, 50)
	time.Sleep(500 * time.Millisecond)
	for _, w := range who {
		cols[w] = newTCPCollector(t, colAddr[w])
	}
	for _, w := range who {
		if got := fmt.Sprint(collected(w, 50)); got != seq(1, 50) {
			t.Errorf("%s: collector down, then up: got %s, want 1 to 50", w, got)
		}
	}

	// 2. The collector goes down; the relays are stopped with messages
	// queued and started again; then the collector comes back.
	for _, w := range who {
		cols[w].close()
	}
	send(51, 51) // written to the dead connection
	time.Sleep(300 * time.Millisecond)
	send(52, 100)
	time.Sleep(300 * time.Millisecond)
	for _, w := range who {
		t0 := time.Now()
		stops[w]()
		took := time.Since(t0).Round(100 * time.Millisecond)
		t.Logf("%s stopped in %v", w, took)
		if w == "wharf" && took > time.Second {
			t.Errorf("wharf took %v to stop with its collector down, want at most a second: what is buffered stays on disk", took)
		}
		run(w)
		cols[w] = newTCPCollector(t, colAddr[w])
	}
	for _, w := range who {
		got := collected(w, 49)
		want := seq(51, 100)
		if w == "rsyslog" && len(got) > 0 && got[0] == 52 {
			t.Logf("rsyslog lost id=51, written to the dead connection")
			want = seq(52, 100)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s: queued across a restart: got %v, want %s", w, got, want)
		}
	}
}

// readTopic reads every record of topic (on the plain-text brokers) and
// returns them as "key<TAB>value", key "<nil>" for none, by partition.
func readTopic(t *testing.T, brokers, topic string, want int) map[int][]string {
	t.Helper()
	out := map[int][]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testenv.Poll(10*time.Second, func() bool {
		n := 0
		for p := range 3 {
			last, err := lastOffset(brokers, topic, p)
			if err != nil {
				return false
			}
			n += int(last)
		}
		return n >= want
	})
	for p := range 3 {
		last, err := lastOffset(brokers, topic, p)
		if err != nil {
			t.Fatalf("%s partition %d: %v", topic, p, err)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for off := int64(0); off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("%s partition %d offset %d: %v", topic, p, off, err)
			}
			key := "<nil>"
			if m.Key != nil {
				key = string(m.Key)
			}
			out[p] = append(out[p], key+"\t"+string(m.Value))
		}
		r.Close()
	}
	return out
}

// TestMigratingKafka: rsyslog pair 9, omkafka against wharf's kafka sink,
// both over SASL_SSL with lz4 to the test broker (its user and CA). wharf
// authenticates with SCRAM-SHA-512 as in the snippet; rsyslog with PLAIN:
// the librdkafka of Debian 12's rsyslog (2.0.2) fails SCRAM against a
// Kafka 4 broker (fixed in librdkafka 2.6.1, confluentinc/librdkafka#4895).
// The same messages reach the topic with the same RFC 5424 text from
// both, but: omkafka's template ends each record with a LF, wharf's does
// not; for an RFC 3164 sender the zone of the timestamp (which has none;
// both write the relay's, TZ=UTC here) is "+00:00" from rsyslog, "Z" from
// wharf, and rsyslog writes two spaces before the text; omkafka sends no
// key (partitions.auto spreads the records over the partitions), wharf
// the hostname (one host's records on one partition, in order). The
// guide says so.
func TestMigratingKafka(t *testing.T) {
	t.Setenv("TZ", "UTC")
	plain := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	sasl := testenv.Env(t, "WHARF_KAFKA_SASL_BROKERS")
	ca := testenv.Env(t, "WHARF_KAFKA_CA")
	user, password := testenv.Env(t, "WHARF_KAFKA_SASL_USER"), testenv.Env(t, "WHARF_KAFKA_SASL_PASSWORD")
	run := time.Now().UnixNano()
	topics := map[string]string{"rsyslog": fmt.Sprintf("syslog-rsyslog-%d", run), "wharf": fmt.Sprintf("syslog-wharf-%d", run)}
	var msgs []string
	for i := range 12 {
		msgs = append(msgs, prioLine(1, 5, i, fmt.Sprintf("web%d", i%3), "app"))
	}
	msgs = append(msgs,
		`<165>1 2026-12-06T05:10:11.123456Z web1 app 7 ID47 [ex@32473 k="v"] rfc5424 id=12`,
		`<13>1 2026-12-06T05:10:12+02:00 web2 - - - - no app id=13`,
	)
	for _, who := range []string{"rsyslog", "wharf"} {
		port := testenv.FreePort(t)
		if who == "rsyslog" {
			startRsyslog(t, fmt.Sprintf(`module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
module(load="omkafka")
action(type="omkafka" broker=["%s"] topic="%s"
       partitions.auto="on" template="RSYSLOG_SyslogProtocol23Format"
       confParam=["security.protocol=SASL_SSL", "sasl.mechanisms=PLAIN",
                  "sasl.username=%s", "sasl.password=%s",
                  "ssl.ca.location=%s", "compression.codec=lz4"])
`, port, sasl, topics[who], user, password, ca), fmt.Sprintf("127.0.0.1:%d", port))
		} else {
			dir := t.TempDir()
			pwFile := filepath.Join(dir, "kafka-password")
			if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["kafka"]

[sink.kafka]
type = "kafka"
brokers = ["%s"]
topic = "%s"
key = "hostname"                  # one host's messages in order on one partition
encoding = "rfc5424"              # RSYSLOG_SyslogProtocol23Format; "json" for parsed fields
compression = "lz4"
required_acks = "all"
tls = true
tls_ca = %q
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = %q
sasl_password_file = %q   # not in the config file
`, port, sasl, topics[who], ca, user, pwFile))
		}
		sendLF(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	}
	recs := map[string][]string{}
	for _, who := range []string{"rsyslog", "wharf"} {
		parts := readTopic(t, plain, topics[who], len(msgs))
		onPart := map[string]map[int]bool{} // key -> partitions
		for p, rs := range parts {
			for _, r := range rs {
				k, v, _ := strings.Cut(r, "\t")
				if onPart[k] == nil {
					onPart[k] = map[int]bool{}
				}
				onPart[k][p] = true
				if who == "wharf" && !strings.Contains(v, " "+k+" ") {
					t.Errorf("wharf: key %q for %q, want its hostname", k, v)
				}
				recs[who] = append(recs[who], v)
			}
		}
		t.Logf("%s: keys on partitions %v", who, onPart)
		for k, ps := range onPart {
			switch {
			case who == "rsyslog" && k != "<nil>":
				t.Errorf("rsyslog: a record with key %q, want none", k)
			case who == "wharf" && len(ps) != 1:
				t.Errorf("wharf: key %s on partitions %v, want one", k, ps)
			}
		}
		sort.Strings(recs[who])
	}
	// What differs in the records (the guide says so): omkafka's template
	// ends in a LF; for an RFC 3164 sender rsyslog writes "+00:00" where
	// wharf writes "Z", and two spaces before the text (its MSG keeps the
	// one after the tag's colon).
	var want []string
	for _, r := range recs["rsyslog"] {
		if !strings.HasSuffix(r, "\n") {
			t.Errorf("rsyslog: %q does not end in a LF", r)
		}
		r = strings.TrimSuffix(r, "\n")
		if strings.HasPrefix(r, "<13>1 2026-12-06T05:10:") && strings.Contains(r, " event id=") {
			r = strings.Replace(r, "+00:00 ", "Z ", 1)
			r = strings.Replace(r, " - -  event", " - - event", 1)
		}
		want = append(want, r)
	}
	sort.Strings(want)
	if len(recs["rsyslog"]) != len(msgs) || strings.Join(want, "\n") != strings.Join(recs["wharf"], "\n") {
		t.Errorf("records differ:\nrsyslog, as wharf is expected to write them\n  %s\nwharf\n  %s", strings.Join(want, "\n  "), strings.Join(recs["wharf"], "\n  "))
	}
}
