package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"wharf/internal/testpki"

	"github.com/segmentio/kafka-go/sasl/plain"

	"wharf/conf"
)

// TLS and SASL keys map onto the Transport of Write and of Check.
func TestNewMapsTLSAndSASL(t *testing.T) {
	ca := testpki.NewCA(t, "broker CA")
	cert, key := ca.Issue(t, "wharf", false)
	base := func() conf.Sink { return conf.Sink{Options: &Config{Brokers: []string{"127.0.0.1:9093"}, Topic: "t"}} }
	f := func(mod func(*conf.Sink), wantTLS bool, wantMech string, check func(*Sink)) {
		t.Helper()
		cfg := base()
		mod(&cfg)
		s, err := newFromConf("out", &cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		k := s.(*Sink)
		if (k.tr.TLS != nil) != wantTLS {
			t.Errorf("TLS on = %v, want %v", k.tr.TLS != nil, wantTLS)
		}
		got := ""
		if k.tr.SASL != nil {
			got = k.tr.SASL.Name()
		}
		if got != wantMech {
			t.Errorf("SASL %q, want %q", got, wantMech)
		}
		if check != nil {
			check(k)
		}
	}
	f(func(*conf.Sink) {}, false, "", nil)
	f(func(c *conf.Sink) { kc(c).TLS = true }, true, "", func(k *Sink) {
		if k.tr.TLS.RootCAs != nil || k.tr.TLS.MinVersion != tls.VersionTLS12 || k.tr.TLS.InsecureSkipVerify {
			t.Errorf("tls = true: want system roots, TLS 1.2+, verification on; got %+v", k.tr.TLS)
		}
	})
	f(func(c *conf.Sink) { kc(c).TLSCA = ca.File; kc(c).TLSServerName = "kafka.example.net" }, true, "", func(k *Sink) {
		if k.tr.TLS.RootCAs == nil || k.tr.TLS.ServerName != "kafka.example.net" {
			t.Errorf("tls_ca/tls_server_name not mapped: %+v", k.tr.TLS)
		}
	})
	f(func(c *conf.Sink) { kc(c).TLSCert, kc(c).TLSKey = cert, key }, true, "", func(k *Sink) {
		if len(k.tr.TLS.Certificates) != 1 {
			t.Errorf("client certificate not mapped")
		}
	})
	f(func(c *conf.Sink) { kc(c).SASLMechanism, kc(c).SASLUsername, kc(c).SASLPassword = "PLAIN", "u", "p" }, false, "PLAIN", func(k *Sink) {
		if m, ok := k.tr.SASL.(plain.Mechanism); !ok || m.Username != "u" || m.Password != "p" {
			t.Errorf("PLAIN mechanism %+v", k.tr.SASL)
		}
	})
	f(func(c *conf.Sink) {
		kc(c).TLS, kc(c).SASLMechanism, kc(c).SASLUsername, kc(c).SASLPassword = true, "SCRAM-SHA-256", "u", "p"
	}, true, "SCRAM-SHA-256", nil)
	f(func(c *conf.Sink) {
		kc(c).SASLMechanism, kc(c).SASLUsername, kc(c).SASLPassword = "SCRAM-SHA-512", "u", "p"
	}, false, "SCRAM-SHA-512", nil)
	// sasl_password_file: the password is the file's trimmed content.
	pw := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pw, []byte("  from-file\n"), 0o600)
	f(func(c *conf.Sink) { kc(c).SASLMechanism, kc(c).SASLUsername, kc(c).SASLPasswordFile = "PLAIN", "u", pw }, false, "PLAIN", func(k *Sink) {
		if m, ok := k.tr.SASL.(plain.Mechanism); !ok || m.Password != "from-file" {
			t.Errorf("PLAIN from sasl_password_file: %+v", k.tr.SASL)
		}
	})
}

func TestNewRejectsBadTLSAndSASL(t *testing.T) {
	f := func(mod func(*conf.Sink), wantErr string) {
		t.Helper()
		cfg := conf.Sink{Options: &Config{Brokers: []string{"127.0.0.1:9093"}, Topic: "t"}}
		mod(&cfg)
		_, err := newFromConf("out", &cfg)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	f(func(c *conf.Sink) { kc(c).SASLMechanism, kc(c).SASLUsername, kc(c).SASLPassword = "GSSAPI", "u", "p" }, `sasl_mechanism "GSSAPI" is not one of`)
	f(func(c *conf.Sink) { kc(c).SASLMechanism, kc(c).SASLUsername = "PLAIN", "u" }, "needs sasl_username and sasl_password")
	f(func(c *conf.Sink) { kc(c).SASLUsername, kc(c).SASLPassword = "u", "p" }, "need sasl_mechanism")
	f(func(c *conf.Sink) { kc(c).TLSCA = "/nonexistent/ca.pem" }, "tls_ca: cannot read CA file")
	f(func(c *conf.Sink) { kc(c).TLSCert = "/nonexistent/c.pem" }, "set both tls_cert and tls_key")
}

// The TLS settings reach the wire: Check against a TLS listener requiring
// client certificates completes the handshake with wharf's certificate and
// then sends a Kafka request (ApiVersions) inside the TLS session.
func TestTLSReachesTheBroker(t *testing.T) {
	ca := testpki.NewCA(t, "broker CA")
	srvCert, srvKey := ca.Issue(t, "broker", true)
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type seen struct {
		cn     string
		apiKey int16
		err    error
	}
	got := make(chan seen, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					got <- seen{err: err}
					return
				}
				var hdr [6]byte // int32 size, int16 api key
				if _, err := io.ReadFull(bufio.NewReader(tc), hdr[:]); err != nil {
					got <- seen{err: err}
					return
				}
				got <- seen{cn: tc.ConnectionState().PeerCertificates[0].Subject.CommonName, apiKey: int16(binary.BigEndian.Uint16(hdr[4:]))}
			}()
		}
	}()
	cert, key := ca.Issue(t, "wharf-producer", false)
	s, err := newFromConf("out", &conf.Sink{Options: &Config{Brokers: []string{ln.Addr().String()}, Topic: "t", ClientTLS: conf.ClientTLS{TLSCA: ca.File, TLSCert: cert, TLSKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s.(*Sink).Check(ctx) // fails: the listener is no broker; what it saw matters
	select {
	case sw := <-got:
		const apiVersions = 18
		if sw.err != nil || sw.cn != "wharf-producer" || sw.apiKey != apiVersions {
			t.Fatalf("listener saw %+v; want a handshake with CN wharf-producer, then ApiVersions (18)", sw)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reached the TLS listener")
	}
}
