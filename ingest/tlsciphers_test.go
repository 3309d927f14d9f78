package ingest

import (
	"crypto/tls"
	"testing"

	"wharf/internal/testpki"
)

// Regression: tls:// binds offered Go's default TLS 1.2 suites, CBC with
// SHA-1 MACs among them. Now only ECDHE AEAD suites unless tls_ciphers
// lists more.
func TestTLSCiphers(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	const cbc = tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
	handshake := func(addr string, suite uint16) error {
		c, err := dialTLS(t, addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err == nil {
			c.Close()
		}
		return err
	}
	l, _, _ := listen(t, "tls", tlsFrontend(t, ca))
	if err := handshake(l.Addr(), cbc); err == nil {
		t.Error("a TLS 1.2 client offering only ECDHE-ECDSA-AES128-SHA (CBC, SHA-1) was accepted by default")
	}
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		if err := handshake(l.Addr(), s); err != nil {
			t.Errorf("%s refused: %v", tls.CipherSuiteName(s), err)
		}
	}
	// A site with old senders lists the suite it needs.
	fe := tlsFrontend(t, ca)
	fe.TLSCiphers = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"}
	l2, _, _ := listen(t, "tls", fe)
	if err := handshake(l2.Addr(), cbc); err != nil {
		t.Errorf("tls_ciphers lists the CBC suite, yet it was refused: %v", err)
	}
}
