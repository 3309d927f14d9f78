package syslog

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"wharf/internal/testpki"

	"wharf/conf"
	"wharf/internal/testenv"
)

// newTLSFrameServer is a frameServer behind TLS with a certificate of ca
// for 127.0.0.1; clientCA, when set, makes it require client certificates.
func newTLSFrameServer(t *testing.T, ca *testpki.CA, clientCA *testpki.CA) (*frameServer, string) {
	t.Helper()
	cert, key := ca.Issue(t, "collector", true)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	if clientCA != nil {
		cfg.ClientCAs, cfg.ClientAuth = clientCA.Pool(), tls.RequireAndVerifyClientCert
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &frameServer{l: tls.NewListener(raw, cfg)}
	fs.done.Add(1)
	go fs.accept()
	t.Cleanup(fs.kill)
	return fs, "tls://" + raw.Addr().String()
}

func TestTLSServers(t *testing.T) {
	ca, other := testpki.NewCA(t, "collector CA"), testpki.NewCA(t, "other CA")
	clientCert, clientKey := ca.Issue(t, "wharf", false)
	f := func(name string, cfg conf.Sink, clientCA *testpki.CA, wantErr string) {
		t.Helper()
		fs, url := newTLSFrameServer(t, ca, clientCA)
		sc(&cfg).Servers = []string{url}
		sc(&cfg).DialTimeout = conf.Duration{Duration: 2 * time.Second}
		s, _ := newSink(t, cfg)
		defer s.Close()
		err := s.Write(t.Context(), msgs("<13>1 - h a - - - "+name, "<13>1 - h a - - - two"))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want one containing %q", name, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		testenv.Eventually(t, "the condition", func() bool { return len(fs.got()) == 2 })
		if got := fs.got(); got[0] != "<13>1 - h a - - - "+name {
			t.Errorf("%s: collector got %q", name, got)
		}
	}
	f("ca", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSCA: ca.File}}}, nil, "")
	f("wrong-ca", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSCA: other.File}}}, nil, "tls handshake: tls: failed to verify certificate")
	f("system-roots", conf.Sink{}, nil, "certificate signed by unknown authority")
	f("insecure", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSInsecureSkipVerify: true}}}, nil, "")
	f("server-name", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSCA: ca.File, TLSServerName: "localhost"}}}, nil, "")
	f("wrong-server-name", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSCA: ca.File, TLSServerName: "collector.example.net"}}}, nil, "not collector.example.net")
	f("mutual", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSCA: ca.File, TLSCert: clientCert, TLSKey: clientKey}}}, ca, "")
	// Without a certificate the TLS 1.3 handshake completes on our side
	// and the collector's refusal comes after it: the dial waits for it,
	// so Write fails (the batch is retried, the server marked down)
	// instead of reporting as sent what the collector drops. Before, Write
	// returned nil and every batch was lost.
	f("mutual-without-cert", conf.Sink{Options: &Config{ClientTLS: conf.ClientTLS{TLSCA: ca.File}}}, ca, "asked for a client certificate")
	// A collector that asks for a certificate but does not require one
	// (VerifyClientCertIfGiven) gets the batch after the wait.
	ask := func() (*frameServer, string) {
		t.Helper()
		cert, key := ca.Issue(t, "collector", true)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fs := &frameServer{l: tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven})}
		fs.done.Add(1)
		go fs.accept()
		t.Cleanup(fs.kill)
		return fs, "tls://" + raw.Addr().String()
	}
	fs, url := ask()
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{url}, ClientTLS: conf.ClientTLS{TLSCA: ca.File}}})
	defer s.Close()
	if err := s.Write(t.Context(), msgs("<13>1 - h a - - - optional")); err != nil {
		t.Fatalf("a collector asking for an optional certificate: %v", err)
	}
	testenv.Eventually(t, "the batch at the optional-certificate collector", func() bool { return len(fs.got()) == 1 })
}

// A TLS collector that closes its side (close_notify, FIN) is noticed
// before the next batch, which goes over a new connection, not into the
// dead one.
func TestTLSCollectorCloseIsNoticed(t *testing.T) {
	ca := testpki.NewCA(t, "collector CA")
	fs, url := newTLSFrameServer(t, ca, nil)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{url}, ClientTLS: conf.ClientTLS{TLSCA: ca.File}}})
	defer s.Close()
	if err := s.Write(t.Context(), msgs("<13>1 - h a - - - one")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the condition", func() bool { return len(fs.got()) == 1 })
	fs.mu.Lock()
	for _, c := range fs.conns {
		c.Close() // tls.Conn.Close sends close_notify
	}
	fs.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	if err := s.Write(t.Context(), msgs("<13>1 - h a - - - two")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the condition", func() bool { return len(fs.got()) == 2 })
}

func TestNewTLSValidates(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("nope"), 0o600)
	f := func(cfg conf.Sink, wantErr string) {
		t.Helper()
		cfg.Type = "syslog"
		_, err := newFromConf("fwd", &cfg)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("newFromConf(%+v) = %v, want error containing %q", cfg, err, wantErr)
		}
	}
	f(conf.Sink{Options: &Config{Servers: []string{"tls://127.0.0.1:6514"}, ClientTLS: conf.ClientTLS{TLSCA: bad}}}, "tls_ca: CA file "+bad+" holds no PEM certificate")
	f(conf.Sink{Options: &Config{Servers: []string{"tls://127.0.0.1:6514"}, ClientTLS: conf.ClientTLS{TLSCert: bad}}}, "set both tls_cert and tls_key")
	f(conf.Sink{Options: &Config{Servers: []string{"tls://127.0.0.1:6514"}, ClientTLS: conf.ClientTLS{TLSCert: bad, TLSKey: bad}}}, "tls_cert: certificate")
	f(conf.Sink{Options: &Config{Servers: []string{"tls://127.0.0.1"}}}, `"127.0.0.1": missing port in address`)
}

// TestCollectorTLS sends through a real syslog-ng TLS source (RFC 5425):
// 5000 messages verified against the collector's CA, then the same over
// mutual TLS with wharf's client certificate, and a refused client
// without one.
func TestCollectorTLS(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_TLS")
	maddr := testenv.Env(t, "WHARF_COLLECTOR_MTLS")
	ca := testenv.Env(t, "WHARF_COLLECTOR_CA")
	cert := testenv.Env(t, "WHARF_COLLECTOR_CLIENT_CERT")
	key := testenv.Env(t, "WHARF_COLLECTOR_CLIENT_KEY")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)

	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tls://" + addr}, ClientTLS: conf.ClientTLS{TLSCA: ca}}})
	want := testMessages(id, 0, 5000)
	r := forward(t, s, want)
	closeRunner(t, r)
	expectExact(t, collectorLines(t, filepath.Join(out, "tls.log"), id, len(want)), want)

	ms, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tls://" + maddr}, ClientTLS: conf.ClientTLS{TLSCA: ca, TLSCert: cert, TLSKey: key, TLSServerName: "localhost"}}})
	mwant := testMessages(id+"-mtls", 0, 1000)
	r = forward(t, ms, mwant)
	closeRunner(t, r)
	expectExact(t, collectorLines(t, filepath.Join(out, "mtls.log"), id+"-mtls", len(mwant)), mwant)

	// No client certificate: syslog-ng refuses it (required-trusted).
	ns, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tls://" + maddr}, DialTimeout: conf.Duration{Duration: 2 * time.Second}, ClientTLS: conf.ClientTLS{TLSCA: ca}}})
	defer ns.Close()
	var err error
	for i := range 3 {
		err = ns.Write(t.Context(), msgs(fmt.Sprintf("<13>1 - h a - - - %s-nocert %d", id, i)))
		time.Sleep(100 * time.Millisecond)
	}
	if got := collectorLines(t, filepath.Join(out, "mtls.log"), id+"-nocert", 0); len(got) != 0 {
		t.Fatalf("collector accepted %d messages from a client without a certificate (last error %v)", len(got), err)
	}
}

// Regression: syslog sinks offered collectors Go's default TLS 1.2 suites,
// CBC with SHA-1 among them. The collector here records what a real
// handshake offered.
func TestClientOffersOnlyAEADSuites(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	cert, _, _ := ca.ServerCert(t, "127.0.0.1")
	offered := make(chan []uint16, 4)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			offered <- h.CipherSuites
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := func(ciphers []string, want ...uint16) {
		t.Helper()
		s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tls://" + ln.Addr().String()}, ClientTLS: conf.ClientTLS{TLSCA: ca.File, TLSCiphers: ciphers}}})
		defer s.Close()
		if err := s.Write(ctx, msgs("<13>1 - h a - - - x")); err != nil {
			t.Fatal(err)
		}
		var got []uint16
		for _, id := range <-offered {
			if id < 0x1300 || id > 0x13ff { // TLS 1.3 suites are always offered
				got = append(got, id)
			}
		}
		if !slices.Equal(got, want) {
			names := func(ids []uint16) (n []string) {
				for _, id := range ids {
					n = append(n, tls.CipherSuiteName(id))
				}
				return n
			}
			t.Errorf("tls_ciphers %v: offered %v, want %v", ciphers, names(got), names(want))
		}
	}
	f(nil, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
	f([]string{"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"}, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA)
}
