package kafka

import (
	"crypto/tls"
	"slices"
	"testing"

	"wharf/conf"
)

// Regression: a kafka sink with TLS offered Go's default TLS 1.2 suites,
// CBC with SHA-1 among them; now the ECDHE AEAD suites unless tls_ciphers
// says otherwise. (The handshake itself is tested on real sockets in
// sinks/syslog, which builds its client config the same way.)
func TestTLSCiphers(t *testing.T) {
	f := func(ciphers []string, want ...uint16) {
		t.Helper()
		s, err := newFromConf("out", &conf.Sink{Options: &Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "logs", TLS: true, ClientTLS: conf.ClientTLS{TLSCiphers: ciphers}}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := s.(*Sink).opt.tls.CipherSuites; !slices.Equal(got, want) {
			t.Errorf("tls_ciphers %v: CipherSuites %v, want %v", ciphers, got, want)
		}
	}
	f(nil, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
	f([]string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA)
	if _, err := newFromConf("out", &conf.Sink{Options: &Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "logs", ClientTLS: conf.ClientTLS{TLSCiphers: []string{"RC4-MD5"}}}}); err == nil {
		t.Error("an unknown suite name was accepted")
	}
}
