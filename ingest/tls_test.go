package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
	"wharf/internal/testpki"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/metrics"
	"wharf/route"
)

// tlsFrontend returns a frontend serving a fresh server certificate of ca.
func tlsFrontend(t *testing.T, ca *testpki.CA) *conf.Frontend {
	t.Helper()
	cert, key := ca.Issue(t, "wharf-server", true)
	return &conf.Frontend{TLSCert: cert, TLSKey: key}
}

// dialTLS connects with cfg and finishes the handshake.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestTLSOctetCountedDelivered(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	l, reg, tgt := listen(t, "tls", tlsFrontend(t, ca))
	c, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var b strings.Builder
	for i := range n {
		// One message carries a newline: octet counting (RFC 5425) keeps it.
		b.WriteString(octet(fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - msg %d\nline two", i)))
	}
	b.WriteString("<13>1 2026-11-25T10:00:00Z h app - - - lf framed\n") // auto detection stays on
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "every message", func() bool { return tgt.count() == n+1 })
	tgt.mu.Lock()
	first, last := tgt.msgs[0], tgt.msgs[n]
	tgt.mu.Unlock()
	if first != "msg 0\nline two" || last != "lf framed" {
		t.Fatalf("got %q ... %q", first, last)
	}
	if got := counter(reg, "wharf_frontend_connections_total", ""); got != 1 {
		t.Fatalf("connections_total = %v, want 1", got)
	}
	if got := counter(reg, "wharf_frontend_rejected_total", ""); got != 0 {
		t.Fatalf("rejected = %v, want 0", got)
	}
}

// A message split across many TLS records and writes is reassembled; an
// oversize one is truncated to max_message_size, not buffered beyond it.
func TestTLSPartialWritesAndOversize(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.MaxMessageSize = 100
	l, reg, tgt := listen(t, "tls", fe)
	c, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	msg := octet(valid)
	for i := range len(msg) {
		if _, err := c.Write([]byte{msg[i]}); err != nil {
			t.Fatal(err)
		}
	}
	big := "<13>1 2026-11-25T10:00:00Z h app - - - " + strings.Repeat("x", 1000)
	c.Write([]byte(octet(big) + octet(valid)))
	testenv.Eventually(t, "three messages", func() bool { return tgt.count() == 3 })
	if got := counter(reg, "wharf_frontend_truncated_total", ""); got != 1 {
		t.Fatalf("truncated = %v, want 1", got)
	}
	tgt.mu.Lock()
	defer tgt.mu.Unlock()
	if tgt.msgs[0] != "hello" || tgt.msgs[2] != "hello" || len(tgt.msgs[1]) != 100-len("<13>1 2026-11-25T10:00:00Z h app - - - ") {
		t.Fatalf("got %q", tgt.msgs)
	}
}

func TestTLSMutualRefusesBadClients(t *testing.T) {
	ca, other := testpki.NewCA(t, "test CA"), testpki.NewCA(t, "other CA")
	fe := tlsFrontend(t, ca)
	fe.TLSClientCA = ca.File
	l, reg, tgt := listen(t, "tls", fe)

	// send dials with cfg, writes one message and reports whether the
	// server took it (a refused TLS 1.3 client only learns on reading).
	send := func(cfg *tls.Config, text string) error {
		cfg.RootCAs, cfg.ServerName = ca.Pool(), "localhost"
		c, err := dialTLS(t, l.Addr(), cfg)
		if err != nil {
			return err
		}
		c.Write([]byte(octet("<13>1 2026-11-25T10:00:00Z h app - - - " + text)))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil // still open: accepted
		}
		return err
	}
	f := func(name string, cfg *tls.Config, wantOK bool) {
		t.Helper()
		err := send(cfg, name)
		if wantOK && err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		if !wantOK && err == nil {
			t.Errorf("%s: accepted, want refused", name)
		}
	}
	f("good", &tls.Config{Certificates: []tls.Certificate{ca.ClientCert(t, "good")}}, true)
	f("nocert", &tls.Config{}, false)
	f("othercert", &tls.Config{Certificates: []tls.Certificate{other.ClientCert(t, "intruder")}}, false)
	f("nocert12", &tls.Config{MaxVersion: tls.VersionTLS12}, false)

	testenv.Eventually(t, "three handshake rejections", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 3 })
	time.Sleep(50 * time.Millisecond)
	tgt.mu.Lock()
	defer tgt.mu.Unlock()
	if len(tgt.msgs) != 1 || tgt.msgs[0] != "good" {
		t.Fatalf("delivered %q, want only the good client's message", tgt.msgs)
	}
}

func TestTLSMinVersion(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.TLSMinVersion = "1.3"
	l, reg, _ := listen(t, "tls", fe)
	if _, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 client was accepted with tls_min_version 1.3")
	}
	c, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3", v)
	}
	testenv.Eventually(t, "the rejection counted", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 1 })
}

// Without tls_min_version a TLS 1.1 (or 1.0) client is refused and a TLS
// 1.2 one served: README's default. Two settings hold it, each alone: the
// minimum version (1.2) and the default suites (AEAD only, which TLS 1.0
// and 1.1 cannot use); the test is the user's view of both.
func TestTLSMinVersionDefault(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	l, reg, _ := listen(t, "tls", tlsFrontend(t, ca))
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if _, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: v}); err == nil {
			t.Fatalf("a client of at most %s was accepted by default", tls.VersionName(v))
		}
	}
	c, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("a TLS 1.2 client was refused by default: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("negotiated %s, want TLS 1.2", tls.VersionName(v))
	}
	testenv.Eventually(t, "both rejections counted", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 2 })
}

// Plaintext senders, silent clients and denied peers never reach a parser.
func TestTLSHandshakeTimeoutPlaintextAndACL(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.HeaderTimeout = conf.Duration{Duration: 200 * time.Millisecond}
	l, reg, tgt := listen(t, "tls", fe)

	silent, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	plain, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte(octet(valid)))
	testenv.Eventually(t, "both refused", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 2 })
	silent.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: read %v, want EOF after the handshake timeout", err)
	}
	// The connection gauge drops just after the socket is closed, so the
	// client may see EOF a moment before it does.
	testenv.Eventually(t, "no open connections", func() bool { return counter(reg, "wharf_frontend_connections", "") == 0 })
	if n := tgt.count(); n != 0 {
		t.Fatalf("delivered %d messages from a plaintext or silent client", n)
	}

	fe2 := tlsFrontend(t, ca)
	fe2.Deny = []string{"127.0.0.1/32"}
	l2, reg2, _ := listen(t, "tls", fe2)
	if _, err := dialTLS(t, l2.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}); err == nil {
		t.Fatal("denied peer completed a handshake")
	}
	if counter(reg2, "wharf_frontend_rejected_total", "acl") != 1 || counter(reg2, "wharf_frontend_rejected_total", "tls_handshake") != 0 {
		t.Fatal("want one acl rejection and no handshake")
	}
}

// Certificates rotate without a restart: after the files are replaced and
// Update runs, new handshakes get the new certificate while an open
// connection keeps working. A broken file leaves the old one serving.
func TestTLSCertificateRotation(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.Name = "edge"
	l, _, tgt := listen(t, "tls", fe)
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	serialOf := func() string {
		t.Helper()
		c, err := dialTLS(t, l.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old, err := dialTLS(t, l.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := serialOf()

	newCert, newKey := ca.Issue(t, "wharf-server-2", true)
	for _, p := range [][2]string{{newCert, fe.TLSCert}, {newKey, fe.TLSKey}} {
		b, _ := os.ReadFile(p[0])
		testpki.WriteFile(t, p[1], b)
	}
	if got := serialOf(); got != before {
		t.Fatalf("certificate changed before Update: %s -> %s", before, got)
	}
	if err := l.Update(fe); err != nil {
		t.Fatal(err)
	}
	after := serialOf()
	if after == before {
		t.Fatalf("still serving serial %s after Update", before)
	}
	old.Write([]byte(octet(valid)))
	testenv.Eventually(t, "a message on the connection opened before the rotation", func() bool { return tgt.count() == 1 })

	testpki.WriteFile(t, fe.TLSCert, []byte("garbage"))
	if err := l.Update(fe); err != nil {
		t.Fatalf("Update with a broken cert file: %v (want the old certificate kept, no error)", err)
	}
	if got := serialOf(); got != after {
		t.Fatalf("serving %s after a failed reload, want %s", got, after)
	}
}

// openssl s_client as a real RFC 5425 client, with a client certificate.
func TestTLSOpenSSLClient(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.TLSClientCA = ca.File
	l, reg, tgt := listen(t, "tls", fe)
	cert, key := ca.Issue(t, "openssl-client", false)
	var in strings.Builder
	for i := range 100 {
		in.WriteString(octet(fmt.Sprintf("<134>1 2026-11-25T10:00:00Z h openssl - - - s_client %d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", l.Addr(), "-CAfile", ca.File,
		"-cert", cert, "-key", key, "-verify_return_error", "-quiet", "-no_ign_eof")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	testenv.Eventually(t, "100 messages from openssl", func() bool { return tgt.count() == 100 })
	tgt.mu.Lock()
	last := tgt.msgs[99]
	tgt.mu.Unlock()
	if last != "s_client 99" {
		t.Fatalf("last message %q", last)
	}
	if n := counter(reg, "wharf_frontend_rejected_total", ""); n != 0 {
		t.Fatalf("rejected %v", n)
	}

	// Without its certificate, openssl is refused and counted.
	cmd = exec.CommandContext(ctx, openssl, "s_client", "-connect", l.Addr(), "-CAfile", ca.File, "-quiet", "-no_ign_eof")
	cmd.Stdin = strings.NewReader(octet(valid))
	cmd.CombinedOutput()
	testenv.Eventually(t, "the certless openssl refused", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 1 })
	if tgt.count() != 100 {
		t.Fatalf("delivered %d, want 100", tgt.count())
	}
}

// Stop closes open TLS connections and waits for their goroutines.
func TestTLSStopClosesConnections(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	l, reg, _ := listen(t, "tls", tlsFrontend(t, ca))
	c, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(octet(valid)))
	testenv.Eventually(t, "the connection counted", func() bool { return counter(reg, "wharf_frontend_connections", "") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Stop")
	}
	if _, err := net.Dial("tcp", l.Addr()); err == nil {
		t.Fatal("listener still accepting after Stop")
	}
}

// client_timeout and frame_timeout hold on tls:// binds too (read
// deadlines there, where tcp:// binds use the gnet ticker's sweep).
func TestTLSIdleAndFrameTimeouts(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.ClientTimeout = conf.Duration{Duration: 400 * time.Millisecond}
	fe.FrameTimeout = conf.Duration{Duration: 200 * time.Millisecond}
	l, reg, tgt := listen(t, "tls", fe)
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	idle, err := dialTLS(t, l.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	idle.Write([]byte(octet(valid)))
	slow, err := dialTLS(t, l.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	slow.Write([]byte("50 <13>1 2026"))
	testenv.Eventually(t, "both closed", func() bool {
		return counter(reg, "wharf_frontend_closed_total", "idle_timeout") == 1 &&
			counter(reg, "wharf_frontend_closed_total", "frame_timeout") == 1
	})
	if tgt.count() != 1 || counter(reg, "wharf_frontend_dropped_total", "incomplete_frame_at_close") != 1 {
		t.Fatalf("delivered %d, incomplete %v; want 1 and 1", tgt.count(), counter(reg, "wharf_frontend_dropped_total", "incomplete_frame_at_close"))
	}
}

// Idle TLS connections hold no read buffer: 300 connections that each
// sent one message cost far less than max_message_size (64KiB) apiece,
// client and server side together (both live in this process).
func TestTLSIdleConnectionsHoldNoBuffer(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	l, reg, tgt := listen(t, "tls", tlsFrontend(t, ca))
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	const n = 300
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]*tls.Conn, 0, n)
	for range n {
		c, err := dialTLS(t, l.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(octet(valid)))
		conns = append(conns, c)
	}
	testenv.Eventually(t, "a message per connection", func() bool { return tgt.count() == n })
	testenv.Eventually(t, "every connection counted", func() bool { return counter(reg, "wharf_frontend_connections", "") == n })
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapInuse) + int64(after.StackInuse) - int64(before.HeapInuse) - int64(before.StackInuse)) / n
	t.Logf("%d idle TLS connections: %d KiB each (client and server side, heap and stacks)", n, per>>10)
	if per > 48<<10 {
		t.Fatalf("%d KiB per idle connection: a read buffer is held while idle?", per>>10)
	}
	runtime.KeepAlive(conns)
}

// BenchmarkTLSIngest measures one TLS connection sending 300-byte
// octet-counted messages through framing, parsing and routing.
func BenchmarkTLSIngest(b *testing.B) {
	ca := testpki.NewCA(b, "bench CA")
	cert, key := ca.Issue(b, "wharf-server", true)
	fe := &conf.Frontend{Name: "edge", Sinks: []string{"out"}, TLSCert: cert, TLSKey: key}
	tgt := &collector{}
	tab, err := route.Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}, map[string]route.Target{"out": tgt})
	if err != nil {
		b.Fatal(err)
	}
	h := &route.Holder{}
	h.Store(tab)
	l, err := New(fe, conf.Bind{Scheme: "tls", Host: "127.0.0.1", Addr: "127.0.0.1:0"}, h, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Start(); err != nil {
		b.Fatal(err)
	}
	defer l.Stop(context.Background())
	c, err := tls.Dial("tcp", l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := octet("<13>1 2026-11-25T10:00:00Z host app 42 ID - " + strings.Repeat("x", 250))
	const per = 1000
	chunk := []byte(strings.Repeat(msg, per))
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
		for tgt.count() < (i+1)*per {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "msgs/s")
}
